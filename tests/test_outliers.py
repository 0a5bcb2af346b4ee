"""huntbook.outliers: per-column rarity scores with the fields that made a row stand out."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import huntbook.outliers as outliers
from huntbook.errors import DataError


def logons(n: int = 500, seed: int = 1) -> pd.DataFrame:
    rng = random.Random(seed)
    return pd.DataFrame(
        {
            "EventKey": [f"k{i}" for i in range(n)],  # unique: an id, never a reason
            "TimeGenerated": pd.date_range("2026-10-05", periods=n, freq="min", tz="UTC"),
            "TargetUsername": [rng.choice(["jsmith", "mjones", "agarcia"]) for _ in range(n)],
            "LogonType": [rng.choice([2, 3, 3, 3, 10]) for _ in range(n)],
            "Bytes": [rng.gauss(5000, 300) for _ in range(n)],
        }
    )


def test_rare_category_scores_highest_and_is_named() -> None:
    df = logons()
    df.loc[42, "TargetUsername"] = "svc_backup"
    out = outliers.find(df)
    assert out["outlier_score"].idxmax() == 42
    assert out.loc[42, "outlier_reason"].startswith("TargetUsername=svc_backup (1 of 500 rows)")
    assert "EventKey" not in " ".join(out["outlier_reason"])  # near-unique column left out by default
    assert "TimeGenerated" not in " ".join(out["outlier_reason"])


def test_numeric_extremes_on_both_sides() -> None:
    df = logons()
    df.loc[7, "Bytes"] = 9e9
    df.loc[8, "Bytes"] = -5.0
    out = outliers.find(df, ["Bytes"])
    top_two = set(out["outlier_score"].nlargest(2).index)
    assert top_two == {7, 8}
    assert "(top 0.2%)" in out.loc[7, "outlier_reason"]
    assert "(bottom 0.2%)" in out.loc[8, "outlier_reason"]


def test_few_distinct_numbers_are_categories() -> None:
    df = logons()
    df.loc[3, "LogonType"] = 9
    out = outliers.find(df, ["LogonType"])
    assert out["outlier_score"].idxmax() == 3
    assert out.loc[3, "outlier_reason"] == "LogonType=9 (1 of 500 rows)"


def test_common_rows_score_zero() -> None:
    df = pd.DataFrame({"a": ["x"] * 9 + ["y"], "b": ["p"] * 10})
    out = outliers.find(df)
    assert (out.loc[:8, "outlier_score"] == 0).all()
    assert (out.loc[:8, "outlier_reason"] == "").all()
    assert out.loc[9, "outlier_score"] > 0


def test_input_unchanged_and_index_kept() -> None:
    df = logons().set_index(pd.RangeIndex(100, 600))
    before = df.copy(deep=True)
    out = outliers.find(df, reasons=1)
    pd.testing.assert_frame_equal(df, before)
    assert out.index.equals(df.index)
    assert (out["outlier_reason"].str.count(";") == 0).all()


def test_missing_values_are_handled() -> None:
    df = logons(n=50)
    df.loc[1, "TargetUsername"] = None
    df.loc[2, "Bytes"] = np.nan
    out = outliers.find(df, ["TargetUsername", "Bytes"])
    assert out.loc[1, "outlier_score"] > 0
    assert np.isfinite(out["outlier_score"]).all()


def test_bad_input() -> None:
    with pytest.raises(DataError, match="no column 'x'"):
        outliers.find(logons(), ["x"])
    with pytest.raises(DataError):
        outliers.find(pd.DataFrame({"lists": [[1], [2]]}), ["lists"])
    empty = outliers.find(logons().iloc[:0])
    assert empty.empty and "outlier_score" in empty.columns


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from("abcd"), st.integers(-1000, 1000)), min_size=1, max_size=80),
    st.integers(0, 1000),
)
def test_laws(rows: list[tuple[str, int]], seed: int) -> None:
    """Scores are non-negative, shuffling rows does not change them, and a row's score is the sum of
    its columns' scores."""
    df = pd.DataFrame(rows, columns=["cat", "num"])
    out = outliers.find(df, ["cat", "num"], max_categories=5)
    assert (out["outlier_score"] >= 0).all()
    shuffled = outliers.find(df.sample(frac=1.0, random_state=seed), ["cat", "num"], max_categories=5)
    np.testing.assert_allclose(out["outlier_score"], shuffled.loc[df.index, "outlier_score"])
    parts = (
        outliers.find(df, ["cat"])["outlier_score"]
        + outliers.find(df, ["num"], max_categories=5)["outlier_score"]
    )
    np.testing.assert_allclose(out["outlier_score"], parts)
