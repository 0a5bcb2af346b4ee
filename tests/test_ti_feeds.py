"""``local_feeds``: CSV/TSV, plain lists, STIX 2.1 bundles and MISP exports matched offline."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from huntbook.config import Config
from huntbook.errors import ConfigError
from huntbook.ti import RESULT_COLUMNS, _default_names, lookup
from huntbook.ti.feeds import FeedWarning, LocalFeeds, _pattern_values

SHA256 = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
MD5 = "44d88612fea8a8f36de82e1278abb02f"
SHA1 = "3395856ce81f2b7382dee72602f798b642f14140"


def _write(folder: Path, name: str, content: str | dict[str, Any] | list[Any]) -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def _by_ioc(provider: LocalFeeds, items: list[tuple[str, str]]) -> dict[str, Any]:
    return {result.ioc: result for result in provider.lookup_many(items)}


# ----------------------------------------------------------------------------------------------- CSV / lists


def test_csv_feed_reads_its_columns(tmp_path: Path) -> None:
    feed = _write(
        tmp_path,
        "abuse-list.csv",
        "# exported 2024-06-01\n"
        "Indicator,Type,Severity,Confidence,Description,Source,Reference\n"
        "198.51.100.7,ip,critical,,Emotet C2,abuse.ch,https://feodotracker.example/198.51.100.7\n"
        "evil.example,domain,,35,Phishing kit,,\n"
        'https://Bad.Example/login,url,medium,,"Credential phish, EN",phishtank,\n'
        "invoice.pdf,filename,high,,not an indicator type,,\n"
        f"{MD5.upper()},md5,,,EICAR,,\n"
        ",ip,high,,empty value,,\n",
    )
    provider = LocalFeeds({"paths": [str(feed)]})
    got = _by_ioc(
        provider,
        [
            ("198.51.100.7", "ipv4"),
            ("evil.example", "dns"),
            ("https://bad.example/login", "url"),
            ("invoice.pdf", "dns"),
            (MD5, "md5"),
            ("198.51.100.8", "ipv4"),
        ],
    )
    emotet = got["198.51.100.7"]
    assert (emotet.status, emotet.severity) == ("ok", "high")
    assert emotet.summary == "in feed abuse-list.csv: Emotet C2 (source: abuse.ch)"
    assert emotet.reference == "https://feodotracker.example/198.51.100.7"
    assert (got["evil.example"].severity, got["evil.example"].reference) == (
        "low",
        str(feed),
    )  # confidence 35
    assert got["https://bad.example/login"].severity == "medium"
    assert "Credential phish, EN" in got["https://bad.example/login"].summary
    assert got[MD5].status == "ok" and got[MD5].severity == "high"  # no severity: default_severity
    assert got["invoice.pdf"].status == "not_found"  # a filename row is no dns entry
    assert got["198.51.100.8"].status == "not_found"
    assert got["198.51.100.8"].summary == "not in any feed (1 files, 4 entries)"
    [info] = provider.feeds
    assert (info.format, info.entries, info.skipped) == ("csv", 4, 2)


def test_tsv_and_a_header_in_a_comment_line(tmp_path: Path) -> None:
    _write(tmp_path, "iocs.tsv", "ioc\tcomment\tconfidence\n203.0.113.5\tcobalt strike\t90\n")
    _write(
        tmp_path,
        "urlhaus.csv",
        "################\n"
        "# abuse.ch URLhaus dump\n"
        "# id,dateadded,url,url_status,last_online,threat,tags,urlhaus_link,reporter\n"
        '"1","2024-06-01 10:00:00","http://mal.example/bin.sh","online","","malware_download",'
        '"mirai","https://urlhaus.example/url/1/","anon"\n',
    )
    provider = LocalFeeds({"paths": [str(tmp_path)]})
    got = _by_ioc(provider, [("203.0.113.5", "ipv4"), ("http://mal.example/bin.sh", "url")])
    assert got["203.0.113.5"].summary == "in feed iocs.tsv: cobalt strike"
    assert got["203.0.113.5"].severity == "high"
    assert got["http://mal.example/bin.sh"].status == "ok"
    assert "malware_download" in got["http://mal.example/bin.sh"].summary
    assert "(source: anon)" in got["http://mal.example/bin.sh"].summary
    assert {f.format for f in provider.feeds} == {"tsv", "csv"}


def test_plain_list_with_comments_and_defanged_forms(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "blocklist.txt",
        "# analyst list\n"
        "\n"
        "hxxp://bad[.]example/x.php\n"
        "bad2[.]example   # seen 2024-05\n"
        "0.0.0.0 tracker.example\n"
        "192.0.2[.]44\n"
        "user[@]phish[.]example\n"
        "[2001:DB8::66]\n",
    )
    provider = LocalFeeds({"paths": str(tmp_path / "blocklist.txt")})
    items = [
        ("http://bad.example/x.php", "url"),
        ("bad2.example", "dns"),
        ("tracker.example", "dns"),
        ("192.0.2.44", "ipv4"),
        ("user@phish.example", "email"),
        ("2001:db8::66", "ipv6"),
        ("0.0.0.0", "ipv4"),
        ("seen", "dns"),
    ]
    got = _by_ioc(provider, items)
    assert [got[ioc].status for ioc, _ in items] == ["ok"] * 6 + ["not_found"] * 2
    assert provider.feeds[0].format == "list"
    assert got["bad2.example"].summary == "in feed blocklist.txt"


def test_headerless_csv_takes_the_first_column(tmp_path: Path) -> None:
    _write(tmp_path, "c2.csv", "198.51.100.9,Qakbot,2024-01-01\n198.51.100.10,IcedID,2024-01-02\n")
    got = _by_ioc(LocalFeeds({"paths": [tmp_path]}), [("198.51.100.10", "ipv4"), ("2024-01-02", "dns")])
    assert got["198.51.100.10"].status == "ok"
    assert got["2024-01-02"].status == "not_found"


def test_gzipped_feed_and_home_folder_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "ips.txt.gz").write_bytes(gzip.compress(b"198.51.100.77\n"))
    (tmp_path / "feeds" / "notes.md").write_text("198.51.100.78\n")  # not a feed extension in a folder
    (tmp_path / "feeds" / ".hidden.txt").write_text("198.51.100.79\n")
    provider = LocalFeeds({"paths": "~/feeds"})
    got = _by_ioc(provider, [(f"198.51.100.{n}", "ipv4") for n in (77, 78, 79)])
    assert [got[f"198.51.100.{n}"].status for n in (77, 78, 79)] == ["ok", "not_found", "not_found"]


# ----------------------------------------------------------------------------------------------- STIX


def _indicator(ident: str, pattern: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "indicator",
        "spec_version": "2.1",
        "id": f"indicator--{ident}",
        "created": "2024-01-01T00:00:00.000Z",
        "modified": "2024-01-01T00:00:00.000Z",
        "pattern": pattern,
        "pattern_type": "stix",
        "valid_from": "2024-01-01T00:00:00Z",
        **fields,
    }


STIX_BUNDLE = {
    "type": "bundle",
    "id": "bundle--5d0092c5-5f74-4287-9642-33f4c354e56d",
    "objects": [
        {
            "type": "identity",
            "spec_version": "2.1",
            "id": "identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
            "name": "ACME CERT",
            "identity_class": "organization",
        },
        _indicator(
            "a1",
            "[ipv4-addr:value = '198.51.100.1'] OR [domain-name:value = 'c2.evil.example']",
            name="Emotet C2",
            labels=["emotet"],
            confidence=85,
            created_by_ref="identity--f431f809-377b-45e0-aa1c-6a4751cae5ff",
        ),
        _indicator("a2", "[file:hashes.'SHA-256' = '" + SHA256 + "' OR file:hashes.MD5 = '" + MD5 + "']"),
        _indicator("a3", "[url:value = 'http://evil.example/it\\'s.php']", confidence=50),
        _indicator("a4", "[email-addr:value = 'ceo@phish.example']", indicator_types=["benign"]),
        _indicator("a5", "[ipv4-addr:value IN ('203.0.113.10', '203.0.113.11')]"),
        _indicator(
            "a6",
            "[network-traffic:dst_ref.type = 'ipv4-addr' AND network-traffic:dst_ref.value = '203.0.113.20']",
        ),
        _indicator("a7", "[file:hashes.'SHA-1' = '" + SHA1 + "' AND file:name = 'dropper.exe']"),
        _indicator("a8", "[ipv4-addr:value = '203.0.113.30']", revoked=True),
        _indicator("a9", "rule x { condition: true }", pattern_type="yara", name="198.51.100.200"),
        _indicator("a10", "[ipv4-addr:value NOT = '203.0.113.40']"),
        {"type": "ipv4-addr", "spec_version": "2.1", "id": "ipv4-addr--b1", "value": "192.0.2.50"},
        {"type": "domain-name", "spec_version": "2.1", "id": "domain-name--b2", "value": "Observed.Example"},
        {
            "type": "file",
            "spec_version": "2.1",
            "id": "file--b3",
            "name": "x.dll",
            "hashes": {"SHA-256": "a" * 64},
        },
        {
            "type": "malware",
            "spec_version": "2.1",
            "id": "malware--c1",
            "name": "198.51.100.99",
            "is_family": True,
        },
    ],
}


def test_stix_bundle_matches_exactly_the_iocs_it_holds(tmp_path: Path) -> None:
    _write(tmp_path, "bundle.json", STIX_BUNDLE)
    provider = LocalFeeds({"paths": [tmp_path / "bundle.json"]})
    inside = {
        ("198.51.100.1", "ipv4"): ("high", "indicator--a1"),
        ("c2.evil.example", "dns"): ("high", "indicator--a1"),
        (SHA256, "sha256"): ("high", "indicator--a2"),
        (MD5, "md5"): ("high", "indicator--a2"),
        ("http://evil.example/it's.php", "url"): ("medium", "indicator--a3"),
        ("ceo@phish.example", "email"): ("info", "indicator--a4"),
        ("203.0.113.10", "ipv4"): ("high", "indicator--a5"),
        ("203.0.113.11", "ipv4"): ("high", "indicator--a5"),
        ("203.0.113.20", "ipv4"): ("high", "indicator--a6"),
        (SHA1, "sha1"): ("medium", "indicator--a7"),  # partial: the file name must match too
        ("192.0.2.50", "ipv4"): ("high", "ipv4-addr--b1"),
        ("observed.example", "dns"): ("high", "domain-name--b2"),
        ("a" * 64, "sha256"): ("high", "file--b3"),
    }
    outside = [
        ("203.0.113.30", "ipv4"),  # revoked
        ("198.51.100.200", "ipv4"),  # only the name of a YARA indicator
        ("203.0.113.40", "ipv4"),  # negated comparison
        ("198.51.100.99", "ipv4"),  # a malware object's name
        ("evil.example", "dns"),  # parent of a listed domain, not listed itself
        ("dropper.exe", "dns"),
    ]
    results = provider.lookup_many([*inside, *outside])
    got = {(r.ioc, r.ioc_type): r for r in results}
    assert {item: (got[item].severity, got[item].reference) for item in inside} == inside
    assert all(got[item].status == "ok" for item in inside)
    assert [got[item].status for item in outside] == ["not_found"] * len(outside)
    emotet = got[("198.51.100.1", "ipv4")]
    assert emotet.summary == "in feed bundle.json: Emotet C2 [emotet] (source: ACME CERT)"
    [raw] = json.loads(emotet.raw)
    assert raw["confidence"] == 85 and raw["labels"] == ["emotet"] and raw["matched"] == "exact"
    assert "part of a compound pattern" in got[(SHA1, "sha1")].summary
    assert provider.feeds[0].format == "stix"
    assert provider.feeds[0].skipped == 3  # revoked, YARA, NOT


def test_stix_expired_indicator_is_reported_low(tmp_path: Path) -> None:
    bundle = {
        "type": "bundle",
        "id": "bundle--1",
        "objects": [
            _indicator("old", "[ipv4-addr:value = '198.51.100.61']", valid_until="2001-01-01T00:00:00Z"),
            _indicator("new", "[ipv4-addr:value = '198.51.100.62']", valid_until="2999-01-01T00:00:00Z"),
        ],
    }
    _write(tmp_path, "bundle.json", bundle)
    got = _by_ioc(LocalFeeds({"paths": [tmp_path]}), [("198.51.100.61", "ipv4"), ("198.51.100.62", "ipv4")])
    assert (got["198.51.100.61"].status, got["198.51.100.61"].severity) == ("ok", "low")
    assert "expired 2001-01-01T00:00:00Z" in got["198.51.100.61"].summary
    assert json.loads(got["198.51.100.61"].raw)[0]["expired"] is True
    assert got["198.51.100.62"].severity == "high"
    assert "expired" not in got["198.51.100.62"].summary


def test_bare_array_of_stix_objects(tmp_path: Path) -> None:
    _write(tmp_path, "objects.json", [_indicator("x", "[domain-name:value = 'array.example']")])
    got = _by_ioc(LocalFeeds({"paths": [tmp_path]}), [("array.example", "dns")])
    assert got["array.example"].reference == "indicator--x"


@pytest.mark.parametrize(
    ("pattern", "values", "partial"),
    [
        ("[ipv4-addr:value = '1.2.3.4']", [("ip", "1.2.3.4")], False),
        (
            "[ipv6-addr:value = '2001:db8::1'] OR [url:value = 'http://x.example/']",
            [
                ("ip", "2001:db8::1"),
                ("url", "http://x.example/"),
            ],
            False,
        ),
        (
            "[file:hashes.'SHA-256' = 'ab' AND file:hashes.MD5 = 'cd']",
            [("hash", "ab"), ("hash", "cd")],
            False,
        ),
        ("[ipv4-addr:value ISSUBSET '10.0.0.0/8']", [("ip", "10.0.0.0/8")], False),
        ("[email-message:from_ref.value = 'a@b.example']", [(None, "a@b.example")], False),
        (
            "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'y.example']",
            [
                ("ip", "1.2.3.4"),
                ("dns", "y.example"),
            ],
            True,
        ),
        ("[ipv4-addr:value = '1.2.3.4'] REPEATS 5 TIMES WITHIN 10 MINUTES", [("ip", "1.2.3.4")], True),
        (
            "[domain-name:value = 'z.example'] START t'2024-01-01T00:00:00Z' STOP t'2025-01-01T00:00:00Z'",
            [("dns", "z.example")],
            False,
        ),
        ("[url:value LIKE 'http://%.example/']", [], False),
        ("[ipv4-addr:value != '1.2.3.4']", [], False),
        ("[file:name = 'a\\\\b.exe']", [], False),
    ],
)
def test_stix_pattern_values(pattern: str, values: list[tuple[str | None, str]], partial: bool) -> None:
    assert _pattern_values(pattern) == (values, partial)


def test_stix_string_escapes() -> None:
    assert _pattern_values(r"[url:value = 'http://x.example/a\'b\\c']") == (
        [("url", "http://x.example/a'b\\c")],
        False,
    )


# ----------------------------------------------------------------------------------------------- MISP


MISP_EVENT = {
    "Event": {
        "id": "42",
        "uuid": "5f6a1b2c-0000-4000-8000-00000000aaaa",
        "info": "Phishing wave June",
        "threat_level_id": "2",
        "analysis": "2",
        "date": "2024-06-01",
        "Orgc": {"id": "1", "name": "CIRCL", "uuid": "55f6ea5e-2c60-40e5-964f-47a8950d210f"},
        "Tag": [{"name": "tlp:green"}],
        "Attribute": [
            {
                "type": "ip-dst",
                "category": "Network activity",
                "value": "198.51.100.81",
                "to_ids": True,
                "uuid": "a-1",
                "comment": "C2",
            },
            {
                "type": "ip-src|port",
                "category": "Network activity",
                "value": "198.51.100.82|4444",
                "to_ids": True,
                "uuid": "a-2",
            },
            {
                "type": "domain|ip",
                "category": "Network activity",
                "value": "mail.phish.example|198.51.100.83",
                "to_ids": True,
                "uuid": "a-3",
            },
            {
                "type": "url",
                "category": "Payload delivery",
                "value": "https://phish.example/o365/",
                "to_ids": True,
                "uuid": "a-4",
            },
            {"type": "md5", "category": "Payload delivery", "value": MD5, "to_ids": False, "uuid": "a-5"},
            {
                "type": "email-src",
                "category": "Payload delivery",
                "value": "Billing@Phish.Example",
                "to_ids": True,
                "uuid": "a-6",
            },
            {
                "type": "ip-dst",
                "category": "Network activity",
                "value": "198.51.100.84",
                "to_ids": True,
                "deleted": True,
                "uuid": "a-7",
            },
            {"type": "text", "category": "Other", "value": "198.51.100.85", "to_ids": False, "uuid": "a-8"},
            {
                "type": "mutex",
                "category": "Artifacts dropped",
                "value": "Global\\evil.example",
                "to_ids": True,
                "uuid": "a-9",
            },
            {
                "type": "ip-dst",
                "category": "Network activity",
                "value": "10.20.0.0/16",
                "to_ids": True,
                "uuid": "a-10",
            },
        ],
        "Object": [
            {
                "name": "file",
                "meta-category": "file",
                "uuid": "o-1",
                "Attribute": [
                    {
                        "type": "filename|sha256",
                        "object_relation": "filename",
                        "value": f"loader.exe|{SHA256}",
                        "to_ids": True,
                        "uuid": "o-1-a",
                    },
                    {
                        "type": "hostname",
                        "object_relation": "host",
                        "value": "cdn.phish.example",
                        "to_ids": True,
                        "uuid": "o-1-b",
                    },
                ],
            }
        ],
    }
}


def test_misp_event_matches_exactly_its_attributes(tmp_path: Path) -> None:
    _write(tmp_path, "misp-event.json", MISP_EVENT)
    provider = LocalFeeds({"paths": [tmp_path]})
    inside = {
        ("198.51.100.81", "ipv4"): "medium",
        ("198.51.100.82", "ipv4"): "medium",
        ("mail.phish.example", "dns"): "medium",
        ("198.51.100.83", "ipv4"): "medium",
        ("https://phish.example/o365/", "url"): "medium",
        (MD5, "md5"): "low",  # to_ids false
        ("billing@phish.example", "email"): "medium",
        ("10.20.30.40", "ipv4"): "medium",  # inside 10.20.0.0/16
        (SHA256, "sha256"): "medium",
        ("cdn.phish.example", "dns"): "medium",
    }
    outside = [
        ("198.51.100.84", "ipv4"),  # deleted
        ("198.51.100.85", "ipv4"),  # a text attribute
        ("evil.example", "dns"),  # inside a mutex name
        ("phish.example", "dns"),  # parent of listed hosts
        ("loader.exe", "dns"),
        ("10.21.0.1", "ipv4"),
    ]
    got = {(r.ioc, r.ioc_type): r for r in provider.lookup_many([*inside, *outside])}
    assert {item: got[item].severity for item in inside} == inside
    assert all(got[item].status == "ok" for item in inside)
    assert [got[item].status for item in outside] == ["not_found"] * len(outside)
    c2 = got[("198.51.100.81", "ipv4")]
    assert c2.reference == "5f6a1b2c-0000-4000-8000-00000000aaaa"
    assert c2.summary == "in feed misp-event.json: Phishing wave June - C2 (source: CIRCL)"
    assert "(to_ids: false)" in got[(MD5, "md5")].summary
    [raw] = json.loads(got[(SHA256, "sha256")].raw)
    assert (raw["misp_object"], raw["misp_attribute"], raw["tags"]) == ("file", "o-1-a", ["tlp:green"])
    assert provider.feeds[0].format == "misp"


def test_misp_response_list_and_attribute_search(tmp_path: Path) -> None:
    events = {
        "response": [
            {
                "Event": {
                    "uuid": "e-1",
                    "info": "low event",
                    "threat_level_id": "3",
                    "Attribute": [{"type": "domain", "value": "low.example", "to_ids": True}],
                }
            },
            {
                "Event": {
                    "uuid": "e-2",
                    "info": "undefined level",
                    "threat_level_id": "4",
                    "Attribute": [{"type": "sha1", "value": SHA1, "to_ids": "1"}],
                }
            },
        ]
    }
    search = {
        "response": {
            "Attribute": [
                {
                    "type": "ip-dst",
                    "value": "198.51.100.90",
                    "to_ids": True,
                    "Event": {"uuid": "e-3", "info": "from a search", "threat_level_id": "1"},
                }
            ]
        }
    }
    _write(tmp_path, "events.json", events)
    _write(tmp_path, "search.json", search)
    got = _by_ioc(
        LocalFeeds({"paths": [tmp_path], "default_severity": "medium"}),
        [("low.example", "dns"), (SHA1, "sha1"), ("198.51.100.90", "ipv4")],
    )
    assert (got["low.example"].severity, got["low.example"].reference) == ("low", "e-1")
    assert got[SHA1].severity == "medium"  # threat level 4 (undefined): default_severity
    assert (got["198.51.100.90"].severity, got["198.51.100.90"].reference) == ("high", "e-3")


# ----------------------------------------------------------------------------------------------- matching


def test_cidr_entries_match_addresses_inside(tmp_path: Path) -> None:
    _write(tmp_path, "nets.csv", "value,description\n10.0.0.0/8,lab range\n2001:db8:bad::/48,v6 block\n")
    _write(tmp_path, "more.txt", "192.0.2.0/28\n192.0.2.99/32\n")
    stix = {
        "type": "bundle",
        "id": "bundle--2",
        "objects": [_indicator("n", "[ipv4-addr:value ISSUBSET '172.16.0.0/12']")],
    }
    _write(tmp_path, "nets.json", stix)
    provider = LocalFeeds({"paths": [tmp_path]})
    items = [
        ("10.200.3.4", "ipv4"),
        ("2001:DB8:BAD:0:0:0:0:1", "ipv6"),
        ("192.0.2.15", "ipv4"),
        ("192.0.2.99", "ipv4"),
        ("172.31.255.255", "ipv4"),
        ("11.0.0.1", "ipv4"),
        ("192.0.2.16", "ipv4"),
        ("172.32.0.0", "ipv4"),
        ("2001:db8:bae::1", "ipv6"),
    ]
    got = _by_ioc(provider, items)
    assert [got[ioc].status for ioc, _ in items] == ["ok"] * 5 + ["not_found"] * 4
    assert got["10.200.3.4"].summary == "in feed nets.csv: lab range [in 10.0.0.0/8]"
    assert json.loads(got["192.0.2.99"].raw)[0]["matched"] == "exact"  # a /32 is one address
    assert json.loads(got["172.31.255.255"].raw)[0]["matched"] == "in 172.16.0.0/12"


def test_dns_iocs_match_listed_parent_domains(tmp_path: Path) -> None:
    _write(tmp_path, "domains.txt", "evil.example\n")
    items = [("a.b.evil.example", "dns"), ("notevil.example", "dns"), ("example", "dns")]
    got = _by_ioc(LocalFeeds({"paths": [tmp_path]}), items)
    assert got["a.b.evil.example"].status == "ok"
    assert got["a.b.evil.example"].summary == "in feed domains.txt [parent domain evil.example]"
    assert [got["notevil.example"].status, got["example"].status] == ["not_found", "not_found"]
    strict = _by_ioc(LocalFeeds({"paths": [tmp_path], "match_subdomains": False}), items)
    assert strict["a.b.evil.example"].status == "not_found"


def test_values_are_normalised_on_both_sides(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "mixed.txt",
        f"Evil.Example.\n2001:0DB8:0000:0000:0000:0000:0000:0066\n{SHA256.upper()}\nHTTPS://Bad.Example\n",
    )
    items = [
        ("EVIL.example", "dns"),
        ("2001:db8::66", "ipv6"),
        (SHA256, "sha256"),
        ("https://bad.example/", "url"),
        ("https://bad.example/Path", "url"),
    ]
    got = _by_ioc(LocalFeeds({"paths": [tmp_path]}), items)
    assert [got[ioc].status for ioc, _ in items] == ["ok", "ok", "ok", "ok", "not_found"]
    assert got["EVIL.example"].ioc == "EVIL.example"  # the IoC is reported as asked


def test_several_hits_take_the_highest_severity_and_list_every_entry(tmp_path: Path) -> None:
    _write(tmp_path, "a.csv", "ioc,severity,description\n198.51.100.5,low,scanner\n")
    _write(
        tmp_path,
        "b.csv",
        "ioc,severity,description\n198.51.100.5,high,C2 server\n198.51.0.0/16,medium,bad net\n",
    )
    [result] = LocalFeeds({"paths": [tmp_path]}).lookup_many([("198.51.100.5", "ipv4")])
    assert result.severity == "high"
    assert result.summary == "in feed b.csv: C2 server (+2 more in a.csv, b.csv)"
    raw = json.loads(result.raw)
    assert [(e["feed"], e["severity"], e["matched"]) for e in raw] == [
        ("b.csv", "high", "exact"),
        ("b.csv", "medium", "in 198.51.0.0/16"),
        ("a.csv", "low", "exact"),
    ]


# ---------------------------------------------------------------------------------------- failures, settings


def test_a_broken_file_is_reported_and_the_others_still_match(tmp_path: Path) -> None:
    _write(tmp_path, "good.csv", "indicator\n198.51.100.3\n")
    _write(tmp_path, "broken.json", '{"type": "bundle", "objects": [')
    _write(tmp_path, "other.json", {"hello": "world"})
    _write(tmp_path, "prose.txt", "These are my notes about the case.\nNothing to see here.\n")
    (tmp_path / "blob.csv").write_bytes(b"\x00\x01\x02binary")
    provider = LocalFeeds({"paths": [tmp_path, tmp_path / "missing.csv"]})
    with pytest.warns(FeedWarning) as caught:
        [result] = provider.lookup_many([("198.51.100.3", "ipv4")])
    assert (result.status, result.severity) == ("ok", "high")
    reasons = {Path(e.path).name: e.reason for e in provider.feed_errors}
    assert set(reasons) == {"broken.json", "other.json", "prose.txt", "blob.csv", "missing.csv"}
    assert reasons["broken.json"].startswith("broken JSON (line 1")
    assert "neither a STIX 2.1 bundle nor a MISP" in reasons["other.json"]
    assert reasons["prose.txt"].startswith("unknown format")
    assert reasons["blob.csv"] == "unknown format: a binary file"
    assert reasons["missing.csv"] == "no such file or folder"
    assert len(caught) == 5 and all("local_feeds: skipped" in str(w.message) for w in caught)
    assert [f.path for f in provider.feeds] == [str(tmp_path / "good.csv")]


def test_no_readable_feed_gives_error_rows(tmp_path: Path) -> None:
    _write(tmp_path, "broken.json", "{")
    with pytest.warns(FeedWarning):
        results = LocalFeeds({"paths": [tmp_path]}).lookup_many(
            [("198.51.100.3", "ipv4"), ("x.example", "dns")]
        )
    assert [r.status for r in results] == ["error", "error"]
    assert "no feed could be read" in results[0].summary and "broken.json" in results[0].summary


def test_no_paths_gives_not_found_naming_the_setting() -> None:
    results = LocalFeeds({}).lookup_many([("198.51.100.3", "ipv4"), ("x", "windows_path")])
    assert [(r.status, r.summary) for r in results] == [
        ("not_found", "no feeds configured (providers.local_feeds.paths)"),
        ("unsupported", "local_feeds has no windows_path look-up"),
    ]
    assert "local_feeds" in _default_names(Config())


def test_bad_default_severity_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="default_severity"):
        LocalFeeds({"paths": ["x"], "default_severity": "urgent"})


def test_feeds_are_read_once_lazily_and_on_reload(tmp_path: Path) -> None:
    feed = _write(tmp_path, "list.txt", "198.51.100.1\n")
    provider = LocalFeeds({"paths": [feed]})
    assert provider.feeds == []  # nothing read before the first look-up
    assert provider.lookup_many([("198.51.100.1", "ipv4")])[0].status == "ok"
    feed.write_text("198.51.100.2\n")
    assert provider.lookup_many([("198.51.100.2", "ipv4")])[0].status == "not_found"  # indexed once
    provider.reload()
    assert provider.lookup_many([("198.51.100.2", "ipv4")])[0].status == "ok"


# ----------------------------------------------------------------------------------------------- hb.ti.lookup


def test_through_hb_ti_lookup_on_a_frame(tmp_path: Path) -> None:
    _write(tmp_path, "bundle.json", STIX_BUNDLE)
    _write(tmp_path, "misp.json", MISP_EVENT)
    frame = pd.DataFrame(
        {
            "DstIp": ["198.51.100.1", "198.51.100.81", "192.0.2.1", None],
            "Host": ["a", "b", "c", "d"],
        }
    )
    before = frame.copy()
    out = lookup(
        frame,
        providers=["local_feeds"],
        column="DstIp",
        settings={"local_feeds": {"paths": [str(tmp_path)]}},
        config=Config(),
        cache=False,
    )
    pd.testing.assert_frame_equal(frame, before)
    assert list(out.columns) == RESULT_COLUMNS
    assert out[["ioc", "status", "severity"]].values.tolist() == [
        ["198.51.100.1", "ok", "high"],
        ["198.51.100.81", "ok", "medium"],
        ["192.0.2.1", "not_found", "info"],
    ]
    assert set(out["provider"]) == {"local_feeds"}


def test_through_hb_ti_lookup_on_values_with_defanged_input(tmp_path: Path) -> None:
    _write(tmp_path, "iocs.csv", "domain,description\nevil.example,phishing\n")
    values = ["hxxps://x.example/a", "sub.evil[.]example", "EVIL.EXAMPLE"]
    out = lookup(
        values,
        providers=["local_feeds"],
        settings={"local_feeds": {"paths": [str(tmp_path / "iocs.csv")]}},
        config=Config(),
        cache=False,
    )
    assert out[["ioc", "ioc_type", "status"]].values.tolist() == [
        ["https://x.example/a", "url", "not_found"],
        ["sub.evil.example", "dns", "ok"],
        ["EVIL.EXAMPLE", "dns", "ok"],
    ]
    assert values == ["hxxps://x.example/a", "sub.evil[.]example", "EVIL.EXAMPLE"]


def test_a_hundred_thousand_iocs(tmp_path: Path) -> None:
    ips = [f"100.{64 + i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(90_000)]  # 100.64.0.0 + i
    in_block = range(65536 + 32768, 65536 + 32768 + 4096)  # 100.65.128.0/20
    feed = [ips[i] for i in range(0, 90_000, 7)] + ["100.65.128.0/20"]
    feed += [f"host{i}.feed.example" for i in range(0, 20_000, 5)]
    (tmp_path / "big.txt").write_text("\n".join(feed) + "\n")
    queries = [(ip, "ipv4") for ip in ips] + [(f"x.host{i}.feed.example", "dns") for i in range(10_000)]
    results = LocalFeeds({"paths": [tmp_path]}).lookup_many(queries)
    assert len(results) == 100_000
    assert [r.ioc for r in results] == [ioc for ioc, _ in queries]
    expected = {ips[i] for i in range(90_000) if i % 7 == 0 or i in in_block}
    expected |= {f"x.host{i}.feed.example" for i in range(0, 10_000, 5)}
    assert {r.ioc for r in results if r.status == "ok"} == expected
    assert {r.status for r in results} == {"ok", "not_found"}
