"""huntbook.entities: construction, normalisation, stable keys, DataFrames in and out, HTML, infer."""

from __future__ import annotations

import ipaddress
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from huntbook.entities import (
    ENTITY_TYPES,
    Account,
    Alert,
    Dns,
    Email,
    Entity,
    File,
    FileHash,
    GeoLocation,
    Host,
    IpAddress,
    NetworkConnection,
    Process,
    RegistryKey,
    Url,
    entity,
    infer,
    to_frame,
)
from huntbook.errors import DataError

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"
SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# ----------------------------------------------------------------------------------------------- construction


def test_ip_address_is_normalised() -> None:
    assert IpAddress(" 203.0.113.66 ").address == "203.0.113.66"
    assert IpAddress("2001:DB8:0:0:0:0:0:0001").address == "2001:db8::1"
    assert IpAddress("[2001:db8::1]") == IpAddress("2001:db8::1")
    assert IpAddress("2001:DB8::1").key == "ip:2001:db8::1"
    assert IpAddress("10.0.0.1").version == 4
    assert not IpAddress("10.0.0.1").is_global
    assert IpAddress("8.8.8.8").is_global


@pytest.mark.parametrize("bad", ["999.1.1.1", "not-an-ip", "", "   ", "1.2.3.4 5"])
def test_invalid_ip_raises_data_error_naming_the_value(bad: str) -> None:
    with pytest.raises(DataError) as info:
        IpAddress(bad)
    if bad.strip():
        assert repr(bad) in str(info.value) or bad in str(info.value)


def test_ip_address_rejects_non_strings() -> None:
    with pytest.raises(DataError, match="string"):
        IpAddress(1234)  # type: ignore[arg-type]


def test_host_splits_fqdn_and_compares_case_insensitively() -> None:
    host = Host("WS01.Corp.Local")
    assert (host.name, host.domain) == ("WS01", "Corp.Local")
    assert host.fqdn == "WS01.Corp.Local"
    assert host.key == "host:ws01.corp.local"
    assert Host("ws01", "corp.local") == host
    assert Host("WS01") != host
    assert Host("10.1.2.3").name == "10.1.2.3"  # an address is not split
    with pytest.raises(DataError):
        Host("a\\b")


@pytest.mark.parametrize(
    ("text", "name", "domain"),
    [
        ("CORP\\jsmith", "jsmith", "CORP"),
        ("jsmith@corp.local", "jsmith", "corp.local"),
        ("jsmith", "jsmith", None),
    ],
)
def test_account_parses_domain_forms(text: str, name: str, domain: str | None) -> None:
    account = Account(text)
    assert (account.name, account.domain) == (name, domain)


def test_account_key_and_equality() -> None:
    assert Account("CORP\\JSmith").key == "account:corp\\jsmith"
    assert Account("jsmith", domain="corp") == Account("CORP\\JSMITH")
    assert Account("jsmith", sid="S-1-5-21-1").sid == "S-1-5-21-1"
    assert str(Account("CORP\\jsmith")) == "CORP\\jsmith"
    with pytest.raises(DataError):
        Account("CORP\\")


def test_file_hash_infers_algorithm() -> None:
    assert FileHash(MD5).algorithm == "md5"
    assert FileHash(SHA1).algorithm == "sha1"
    assert FileHash(SHA256.upper()).algorithm == "sha256"
    assert FileHash(SHA256.upper()).value == SHA256
    assert FileHash(SHA256).key == "hash:sha256:" + SHA256
    assert FileHash(SHA1, algorithm="SHA-1").algorithm == "sha1"


@pytest.mark.parametrize("bad", ["abc", "z" * 32, MD5 + "0", SHA1[:-1]])
def test_invalid_hash_raises(bad: str) -> None:
    with pytest.raises(DataError, match="digest"):
        FileHash(bad)


def test_hash_algorithm_mismatch_raises() -> None:
    with pytest.raises(DataError, match="md5"):
        FileHash(MD5, algorithm="sha256")


def test_url_host_and_key() -> None:
    url = Url("HTTPS://Example.COM:8443/Path/A?q=1")
    assert url.host == "example.com"
    assert url.scheme == "https"
    assert url.path == "/Path/A"
    assert url.key == "url:https://example.com:8443/Path/A?q=1"
    assert Url("https://example.com/Path/A?q=1") != Url("https://example.com/path/a?q=1")
    for bad in ("example.com/x", "http://", "not a url"):
        with pytest.raises(DataError):
            Url(bad)


def test_dns_lower_cased_without_trailing_dot() -> None:
    assert Dns("Evil.Example.COM.").domain == "evil.example.com"
    assert Dns("Evil.Example.COM.").key == "dns:evil.example.com"
    for bad in ("a..b", "-a.com", "a b.com", "x/y.com"):
        with pytest.raises(DataError):
            Dns(bad)


def test_email() -> None:
    email = Email("Alice.B@Example.COM")
    assert email.address == "alice.b@example.com"
    assert (email.user, email.domain) == ("alice.b", "example.com")
    for bad in ("alice", "@example.com", "a@b", "a@@b.com"):
        with pytest.raises(DataError):
            Email(bad)


def test_registry_key_hive_spellings_share_a_key() -> None:
    long = RegistryKey("HKEY_LOCAL_MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run", "Upd")
    short = RegistryKey("hklm\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run\\", "upd")
    kernel = RegistryKey("\\REGISTRY\\MACHINE\\Software\\Microsoft\\Windows\\CurrentVersion\\Run", "UPD")
    assert long.key == short.key == kernel.key
    assert long.key == "registry:hklm\\software\\microsoft\\windows\\currentversion\\run!upd"
    assert long.hive == "HKLM"
    with pytest.raises(DataError, match="hive"):
        RegistryKey("HKEY_NOWHERE\\x")


def test_file_windows_and_posix_paths() -> None:
    win = File("C:\\Windows\\System32\\CMD.exe")
    assert win.name == "CMD.exe"
    assert win.directory == "C:\\Windows\\System32"
    assert win == File("c:\\windows\\system32\\cmd.exe")
    posix = File("/usr/bin/Python")
    assert posix.name == "Python"
    assert posix.directory == "/usr/bin"
    assert posix != File("/usr/bin/python")


def test_process_converts_host_pid_and_start() -> None:
    process = Process(
        "ws01.corp.local", "0x1A4", "C:\\Windows\\System32\\cmd.exe", start="2024-05-01T12:00:00+02:00"
    )
    assert process.host == Host("WS01.corp.local")
    assert process.pid == 420
    assert process.image == "cmd.exe"
    assert process.start == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert process.key == "process:ws01.corp.local:420:cmd.exe@2024-05-01T10:00:00+00:00"
    assert Process(None, "4242").key == "process:-:4242:-"
    naive = Process("ws01", 1, start=datetime(2024, 5, 1, 10, 0))
    assert naive.start is not None and naive.start.tzinfo is not None
    with pytest.raises(DataError, match="integer"):
        Process("ws01", "twelve")


def test_process_parent_is_kept() -> None:
    parent = Process(Host("ws01"), 4, "System")
    child = Process(Host("ws01"), 420, "smss.exe", parent=parent)
    assert child.parent == parent
    assert child.parent is not None and child.parent.pid == 4


def test_network_connection() -> None:
    flow = NetworkConnection("10.0.0.5", "2001:DB8::9", dst_port="443", protocol="TCP", src_port=51000.0)  # type: ignore[arg-type]
    assert flow.src == IpAddress("10.0.0.5")
    assert flow.dst.address == "2001:db8::9"
    assert (flow.dst_port, flow.protocol, flow.src_port) == (443, "tcp", 51000)
    assert flow.key == "netconn:10.0.0.5:51000->[2001:db8::9]:443/tcp"
    with pytest.raises(DataError, match="port"):
        NetworkConnection("10.0.0.5", "10.0.0.6", dst_port=70000)  # type: ignore[arg-type]


def test_alert_identity() -> None:
    when = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    by_id = Alert("Mimikatz", severity="High", alert_id="A-1")
    assert by_id.key == "alert:id:a-1"
    assert Alert("Other title", alert_id="a-1") == by_id
    alert = Alert("Mimikatz", time=when, host="WS01")  # type: ignore[arg-type]
    assert alert.host == Host("ws01")
    assert alert.key == "alert:mimikatz|2024-05-01T10:00:00+00:00|ws01"


def test_geolocation() -> None:
    geo = GeoLocation(
        country_code="us",
        country="United States",
        city="Ashburn",
        latitude=39.0,
        longitude=-77.5,
        asn="AS14618",
    )  # type: ignore[arg-type]
    assert geo.country_code == "US"
    assert geo.asn == 14618
    assert "Ashburn" in str(geo)
    assert (
        geo.key == GeoLocation(country_code="US", city="ashburn", latitude=39, longitude=-77.5, asn=14618).key
    )
    with pytest.raises(DataError):
        GeoLocation(latitude=91.0)
    with pytest.raises(DataError):
        GeoLocation(country_code="USA")


# ----------------------------------------------------------------------------------------------- identity


SAMPLES: list[Entity] = [
    IpAddress("203.0.113.66"),
    Host("ws01.corp.local"),
    Account("CORP\\jsmith", sid="S-1-5-21-1"),
    Process("ws01", 420, "cmd.exe", command_line="cmd /c whoami", start="2024-05-01T10:00:00Z"),  # type: ignore[arg-type]
    File("C:\\Users\\Public\\upd.exe"),
    FileHash(SHA256),
    Url("http://cdn.example.net/a.ps1"),
    Dns("cdn.example.net"),
    Email("a@example.com"),
    RegistryKey("HKCU\\Software\\Run", "upd"),
    NetworkConnection(IpAddress("10.0.0.5"), IpAddress("203.0.113.9"), 443, "tcp"),
    Alert("Suspicious PowerShell", "High", host=Host("ws01")),
    GeoLocation("NL", "Netherlands", "Amsterdam", 52.37, 4.89, 1136, "KPN"),
]


@pytest.mark.parametrize("item", SAMPLES, ids=lambda e: type(e).__name__)
def test_entities_are_frozen_slotted_hashable_and_pickle_stable(item: Entity) -> None:
    assert item.entity_type == type(item).__name__
    assert ENTITY_TYPES[item.entity_type] is type(item)
    assert not hasattr(item, "__dict__")
    first_field = next(iter(item.as_dict()))
    with pytest.raises(AttributeError):
        setattr(item, first_field, "x")
    clone = pickle.loads(pickle.dumps(item))
    assert clone == item
    assert clone.key == item.key
    assert hash(clone) == hash(item)
    assert len({item, clone}) == 1
    assert item.key.split(":", 1)[0] in {
        "ip", "host", "account", "process", "file", "hash", "url", "dns", "email", "registry", "netconn",
        "alert", "geo",
    }  # fmt: skip
    assert repr(item).startswith(f"{item.entity_type}(")


def test_keys_are_stable_across_processes() -> None:
    code = (
        "from huntbook.entities import *\n"
        "print(Account('CORP\\\\JSmith').key, IpAddress('2001:DB8::1').key, Dns('A.com.').key, "
        f"FileHash('{SHA256.upper()}').key)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [
        Account("corp\\jsmith").key,
        IpAddress("2001:db8::1").key,
        Dns("a.com").key,
        FileHash(SHA256).key,
    ]


def test_entities_sort_by_type_and_key() -> None:
    items = [Dns("b.com"), IpAddress("10.0.0.2"), Dns("a.com"), IpAddress("10.0.0.1")]
    assert sorted(items) == [Dns("a.com"), Dns("b.com"), IpAddress("10.0.0.1"), IpAddress("10.0.0.2")]
    assert Dns("a.com") != "a.com"


def test_repr_and_str_are_readable() -> None:
    assert repr(IpAddress("203.0.113.66")) == "IpAddress('203.0.113.66')"
    assert str(IpAddress("203.0.113.66")) == "203.0.113.66"
    assert repr(Account("CORP\\jsmith")) == "Account('jsmith', domain='CORP')"
    assert str(Process("ws01", 7, "cmd.exe")) == "cmd.exe (7) on ws01"


@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_ip_key_is_stable_and_round_trips(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    entity_ = IpAddress(str(address))
    assert entity_.key == f"ip:{address.compressed}"
    assert IpAddress(address.exploded).key == entity_.key
    rebuilt = IpAddress(entity_.key.removeprefix("ip:"))
    assert rebuilt == entity_
    assert ipaddress.ip_address(rebuilt.address) == address


# ----------------------------------------------------------------------------------------------- HTML


def test_repr_html_escapes_every_value() -> None:
    payload = "<script>alert(1)</script>"
    account = Account(f"CORP\\{payload}")
    url = Url(f"http://example.com/{payload}".replace(" ", ""))
    for item in (account, url):
        page = item._repr_html_()
        assert "<script>" not in page
        assert "&lt;script&gt;" in page
        assert item.entity_type in page


# ----------------------------------------------------------------------------------------------- DataFrames


def test_from_frame_one_column_skips_missing_and_keeps_input() -> None:
    frame = pd.DataFrame({"SrcIpAddr": ["10.0.0.1", None, float("nan"), "", "10.0.0.1", "bogus"]})
    before = frame.copy()
    ips = IpAddress.from_frame(frame, "SrcIpAddr")
    assert ips == [IpAddress("10.0.0.1"), IpAddress("10.0.0.1")]
    assert IpAddress.from_frame(frame, "SrcIpAddr", unique=True) == [IpAddress("10.0.0.1")]
    pd.testing.assert_frame_equal(frame, before)


def test_from_frame_raise_names_the_row() -> None:
    frame = pd.DataFrame({"ip": ["10.0.0.1", "bogus"]}, index=["a", "b"])
    with pytest.raises(DataError, match="bogus") as info:
        IpAddress.from_frame(frame, "ip", errors="raise")
    assert info.value.where == "row 'b'"


def test_from_frame_missing_column_lists_columns() -> None:
    frame = pd.DataFrame({"SrcIpAddr": ["10.0.0.1"], "DstIpAddr": ["10.0.0.2"]})
    with pytest.raises(DataError, match="SrcIp") as info:
        IpAddress.from_frame(frame, "SrcIp")
    assert info.value.where == "SrcIp"
    assert "DstIpAddr" in str(info.value)
    with pytest.raises(DataError, match="no column given"):
        IpAddress.from_frame(frame)
    with pytest.raises(DataError, match="no field"):
        Account.from_frame(frame, user="SrcIpAddr")


def test_from_frame_several_columns() -> None:
    frame = pd.DataFrame({"User": ["jsmith", "admin", None], "Domain": ["CORP", None, "CORP"]})
    accounts = Account.from_frame(frame, name="User", domain="Domain")
    assert accounts == [Account("CORP\\jsmith"), Account("admin")]


def test_from_frame_uses_asim_columns() -> None:
    frame = pd.DataFrame(
        {
            "TimeGenerated": pd.to_datetime(["2024-05-01T10:00:00Z", "2024-05-01T10:01:00Z"]),
            "DvcHostname": ["WS01", "WS02"],
            "TargetProcessId": ["0x1a4", "4242"],
            "TargetProcessName": ["C:\\Windows\\System32\\cmd.exe", None],
            "TargetProcessCommandLine": ["cmd /c whoami", None],
        }
    )
    before = frame.copy()
    processes = Process.from_frame(frame)
    assert [(str(p.host), p.pid, p.name) for p in processes] == [
        ("WS01", 420, "C:\\Windows\\System32\\cmd.exe"),
        ("WS02", 4242, None),
    ]
    assert processes[0].start == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert type(processes[0].start) is datetime
    pd.testing.assert_frame_equal(frame, before)
    flows = NetworkConnection.from_frame(
        pd.DataFrame({"SrcIpAddr": ["10.0.0.5"], "DstIpAddr": ["10.0.0.9"], "DstPortNumber": [445]})
    )
    assert flows == [NetworkConnection("10.0.0.5", "10.0.0.9", 445)]  # type: ignore[arg-type]
    assert Dns.from_frame(pd.DataFrame({"DnsQuery": ["Evil.COM", None]})) == [Dns("evil.com")]


def test_to_frame_round_trip() -> None:
    frame = to_frame(SAMPLES)
    before = frame.copy()
    assert list(frame.columns[:2]) == ["entity_type", "key"]
    assert len(frame) == len(SAMPLES)
    assert frame["key"].tolist() == [item.key for item in SAMPLES]
    for cls in {type(item) for item in SAMPLES}:
        rebuilt = cls.from_frame(frame)
        assert rebuilt == [item for item in SAMPLES if type(item) is cls], cls
    pd.testing.assert_frame_equal(frame, before)


def test_to_frame_flattens_nested_entities() -> None:
    parent = Process("ws01", 4, "System")
    frame = to_frame([Process("ws01.corp", 420, "smss.exe", parent=parent)])
    assert frame.loc[0, "host"] == "ws01.corp"
    assert frame.loc[0, "parent"] == parent.key
    assert to_frame([]).columns.tolist() == ["entity_type", "key"]
    with pytest.raises(DataError):
        to_frame(["10.0.0.1"])  # type: ignore[list-item]


# ------------------------------------------------------------------------------------------ entity(), infer()


def test_entity_by_name() -> None:
    assert entity("IpAddress", "1.2.3.4") == IpAddress("1.2.3.4")
    assert entity("dns", "Example.com") == Dns("example.com")
    assert entity("Account", {"name": "jsmith", "domain": "CORP"}).key == "account:corp\\jsmith"
    with pytest.raises(DataError, match="unknown entity type"):
        entity("Nope", "x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.66", IpAddress("203.0.113.66")),
        ("2001:db8::1", IpAddress("2001:db8::1")),
        ("https://evil.example.com/x", Url("https://evil.example.com/x")),
        (MD5, FileHash(MD5)),
        (SHA256, FileHash(SHA256)),
        ("HKLM\\Software\\Run", RegistryKey("HKLM\\Software\\Run")),
        ("C:\\Users\\Public\\upd.exe", File("C:\\Users\\Public\\upd.exe")),
        ("\\\\fileserver\\share\\x.ps1", File("\\\\fileserver\\share\\x.ps1")),
        ("/tmp/x.sh", File("/tmp/x.sh")),
        ("alice@example.com", Email("alice@example.com")),
        ("CORP\\jsmith", Account("CORP\\jsmith")),
        ("evil.example.com", Dns("evil.example.com")),
    ],
)
def test_infer_examples(text: str, expected: Entity) -> None:
    found = infer(text)
    assert found == expected
    assert type(found) is type(expected)


@pytest.mark.parametrize("text", ["", "hello", "1.2.3", "not a thing at all", "a\x00b"])
def test_infer_returns_none_when_unsure(text: str) -> None:
    assert infer(text) is None


def test_infer_on_hostile_input_uses_simple_checks() -> None:
    # Linear checks only: long odd inputs come back at once (no regex backtracking) and never raise.
    for text in ("a" * 100_000 + "!", "." * 100_000, "@" * 50_000, "1." * 50_000, "a." * 200 + "com"):
        assert infer(text) is None
    assert infer("\\\\" + "x\\" * 10_000) == File("\\\\" + "x\\" * 10_000)


# ----------------------------------------------------------------------------------------------- import


def test_import_does_not_load_pandas() -> None:
    code = "import sys, huntbook.entities; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_other_timezones_normalise_to_utc() -> None:
    east = timezone(timedelta(hours=5))
    a = Alert("x", time=datetime(2024, 1, 1, 15, 0, tzinfo=east))
    b = Alert("x", time=datetime(2024, 1, 1, 10, 0, tzinfo=UTC))
    assert a == b
    assert a.time is not None and a.time.tzinfo == UTC
