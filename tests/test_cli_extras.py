"""``huntbook ti``, ``geoip``, ``pivots`` and ``upload`` as real subprocesses, offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd

import huntbook as hb
from test_cli import huntbook


def _config(tmp_path: Path, feed: Path) -> Path:
    config = tmp_path / "huntbook.yaml"
    config.write_text(f"providers:\n  local_feeds:\n    paths: [{feed}]\ncache_dir: {tmp_path / 'cache'}\n")
    return config


def test_ti_reads_values_and_files_and_rolls_up(tmp_path: Path) -> None:
    feed = tmp_path / "feed.txt"
    feed.write_text("203.0.113.66\nevil-cdn.com\n", encoding="utf-8")
    _config(tmp_path, feed)
    notes = tmp_path / "notes.txt"
    notes.write_text("saw a beacon to evil-cdn[.]com and 198.51.100.7\n", encoding="utf-8")
    args = ("ti", "203.0.113.66", "--file", str(notes), "-P", "local_feeds", "-f", "json")
    done = huntbook(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = pd.read_json(io.StringIO(done.stdout), lines=True)
    assert dict(zip(rows["ioc"], rows["status"], strict=True)) == {
        "203.0.113.66": "ok",
        "evil-cdn.com": "ok",
        "198.51.100.7": "not_found",
    }
    assert "3 IoCs, 3 answers, 0 failed" in done.stderr
    rolled = huntbook("ti", "203.0.113.66", "-P", "local_feeds", "--rollup", "-f", "json", cwd=tmp_path)
    assert json.loads(rolled.stdout.splitlines()[0])["flagged_by"] == "local_feeds"
    listed = huntbook("ti", "--list", "-f", "csv", cwd=tmp_path)
    assert {"virustotal", "local_feeds", "iporigin"} <= set(pd.read_csv(io.StringIO(listed.stdout))["name"])


def test_ti_errors_are_one_line(tmp_path: Path) -> None:
    done = huntbook("ti", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: no values given")
    unknown = huntbook("ti", "1.2.3.4", "-P", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no huntbook.ti plugin named 'nope'" in unknown.stderr


def test_geoip_matches_the_library_and_adds_hosting(tmp_path: Path) -> None:
    done = huntbook("geoip", "8.8.8.8", "10.0.0.1", "--hosting", "-f", "json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = pd.read_json(io.StringIO(done.stdout), lines=True)
    direct = hb.enrich.geoip(["8.8.8.8"]).iloc[0]
    assert rows["ip"].tolist() == ["8.8.8.8", "10.0.0.1"]
    assert rows.loc[0, "country_code"] == direct["country_code"] and bool(rows.loc[1, "is_private"])
    assert rows.loc[1, "category"] == "reserved"


def test_pivots_lists_a_menu(tmp_path: Path) -> None:
    done = huntbook("pivots", "IpAddress", "-f", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    names = set(pd.read_csv(io.StringIO(done.stdout))["name"])
    assert {"geoip", "whois", "hosting", "ti", "network_ip_connections"} <= names
    every = huntbook("pivots", "-f", "csv", cwd=tmp_path)
    kinds = set(pd.read_csv(io.StringIO(every.stdout))["entity_type"])
    assert {"IpAddress", "Dns", "FileHash", "Url"} <= kinds


def test_upload_to_a_store_prints_the_receipt_and_adds_nothing_twice(tmp_path: Path) -> None:
    rows = tmp_path / "verdicts.csv"
    pd.DataFrame(
        {"TimeGenerated": ["2026-10-06T02:00:00Z"] * 3, "ioc": ["203.0.113.66", "a.example", "b.example"]}
    ).to_csv(rows, index=False)
    store = tmp_path / "store"
    first = huntbook("upload", str(rows), "--to", "local", "--store", str(store), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "sent 3, accepted 3" in first.stderr
    again = huntbook("upload", str(rows), "--to", "local", "--store", str(store), cwd=tmp_path)
    assert again.returncode == 0 and "accepted 0" in again.stderr and "duplicates 3" in again.stderr
    counted = huntbook(
        "query", "--store", str(store), "--sql", "SELECT count(*) AS n FROM events", "-f", "csv"
    )
    assert pd.read_csv(io.StringIO(counted.stdout))["n"].tolist() == [3]
    missing = huntbook("upload", str(tmp_path / "nope.csv"), "--to", "local", "--store", str(store))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
