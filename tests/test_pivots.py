"""Pivot menus and functions: context, TI, catalogue queries and @pivot, on values, lists and frames."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

import huntbook as hb
from huntbook import api, demo
from huntbook.entities import Dns, FileHash, IpAddress, Url
from huntbook.errors import DataError
from huntbook.pivoting import Pivot, PivotMenu, pivot, user_pivots


@pytest.fixture(scope="module")
def demo_qp(tmp_path_factory: pytest.TempPathFactory) -> hb.QueryProvider:
    root = tmp_path_factory.mktemp("pivot-demo")
    evidence = demo.generate(root / "evidence", days=3, scale=0.2)
    store = hb.LocalStore(root / "store")
    store.ingest([root / "evidence" / "windows", root / "evidence" / "zeek"], progress=False)
    qp = hb.QueryProvider("local", store=store)
    qp.truth = evidence["truth"]  # type: ignore[attr-defined]
    return qp


@pytest.fixture()
def allow_list() -> Iterator[None]:
    @pivot(["IpAddress", "Dns"], key_column="value")
    def allow_listed(values: list[str]) -> pd.DataFrame:
        """Whether the value is on the team's allow list."""
        return pd.DataFrame({"value": values, "allowed": [v.startswith("10.") for v in values]})

    yield
    user_pivots().remove("IpAddress.allow_listed")
    user_pivots().remove("Dns.allow_listed")


def test_ip_menu_lists_context_ti_and_local_queries() -> None:
    menu = hb.pivots(IpAddress("203.0.113.66"))
    names = set(menu.list())
    assert {"geoip", "whois", "hosting", "ti", "ti_virustotal", "ti_local_feeds", "ti_iporigin"} <= names
    assert {"network_ip_connections", "authentication_logons_from_ip", "alerts_alerts_for_ip"} <= names
    table = menu.browse()
    assert list(table.columns) == ["name", "source", "description"]
    assert {"context", "ti", "query"} <= set(table["source"])  # user pivots of other modules may join
    assert table["description"].str.len().min() > 0
    assert "geoip" in dir(menu) and "browse" in dir(menu)


@pytest.mark.parametrize(
    ("entity", "expected"),
    [
        (Dns("cdn-update-check.com"), {"ti", "whois", "dns_domain_queries", "ti_otx"}),
        (Url("http://203.0.113.66/stage2.ps1"), {"ti", "ti_urlhaus", "process_url_command_lines"}),
        (
            FileHash("44d88612fea8a8f36de82e1278abb02f"),
            {"ti", "ti_malwarebazaar", "process_processes_by_hash"},
        ),
    ],
)
def test_url_dns_hash_menus_have_ti_and_queries(entity: object, expected: set[str]) -> None:
    assert expected <= set(hb.pivots(entity).list())  # type: ignore[arg-type]


def test_menus_are_read_only_and_suggest_names() -> None:
    menu = hb.pivots("IpAddress")
    with pytest.raises(AttributeError, match="read-only"):
        menu.geoip = None  # type: ignore[misc]
    with pytest.raises(AttributeError, match="Did you mean geoip"):
        menu.geoipp  # noqa: B018
    assert not hasattr(IpAddress("10.0.0.1"), "geoip"), "entities are never patched"
    with pytest.raises(DataError, match="cannot tell"):
        hb.pivots("not an entity at all")
    assert isinstance(hb.pivots("198.51.100.7"), PivotMenu)  # a bare value is inferred


def test_user_pivot_on_value_list_and_frame_with_joins(allow_list: None) -> None:
    menu = hb.pivots(IpAddress("10.0.0.5"))
    assert menu.allow_listed().to_dict("records") == [{"value": "10.0.0.5", "allowed": True}]
    assert menu.allow_listed(["10.1.1.1", "8.8.8.8", "10.1.1.1"])["value"].tolist() == ["10.1.1.1", "8.8.8.8"]
    frame = pd.DataFrame({"SrcIpAddr": ["10.0.0.5", "8.8.8.8", "10.0.0.5", None], "n": [1, 2, 3, 4]})
    before = frame.copy()
    function = hb.pivot_function("IpAddress.allow_listed")
    left = function(frame, column="SrcIpAddr", join="left")
    inner = function(frame, column="SrcIpAddr", join="inner")
    pd.testing.assert_frame_equal(frame, before)
    assert left["n"].tolist() == [1, 2, 3, 4] and left["allowed"].tolist()[:3] == [True, False, True]
    assert pd.isna(left["allowed"].iloc[3])
    assert inner["n"].tolist() == [1, 2, 3]
    chained = frame.hb.pivot("IpAddress.allow_listed", column="SrcIpAddr", join="left").hb.pivot(
        "IpAddress.allow_listed", column="SrcIpAddr", join="left"
    )
    assert "allow_listed_allowed" in chained.columns and len(chained) == 4
    assert "allow_listed" in hb.pivots("Dns").list()
    with pytest.raises(DataError, match="join="):
        function(frame, column="SrcIpAddr", join="outer")
    with pytest.raises(DataError, match="column="):
        function(frame)
    with pytest.raises(DataError, match="no column"):
        function(frame, column="nope")


def test_pivot_function_names_and_errors() -> None:
    assert isinstance(hb.pivot_function("IpAddress.geoip"), Pivot)
    with pytest.raises(DataError, match="did you mean geoip"):
        hb.pivot_function("IpAddress.geoipp")
    with pytest.raises(DataError, match="EntityType.pivot"):
        hb.pivot_function("geoip")
    table = api.pivot_table()
    assert {"IpAddress", "Dns", "Url", "FileHash", "Host", "Account"} <= set(table["entity_type"])


def test_geoip_and_ti_pivots_run_offline(tmp_path: Path) -> None:
    geo = hb.pivots(IpAddress("8.8.8.8")).geoip()
    assert geo["ip"].tolist() == ["8.8.8.8"]
    assert geo["country_code"].iloc[0] == hb.enrich.geoip(["8.8.8.8"])["country_code"].iloc[0]
    feed = tmp_path / "bad.txt"
    feed.write_text("203.0.113.66\n", encoding="utf-8")
    settings = {"local_feeds": {"paths": [str(feed)]}}
    hit = hb.pivots(IpAddress("203.0.113.66")).ti_local_feeds(settings=settings, cache=False)
    assert hit[["ioc", "status"]].values.tolist() == [["203.0.113.66", "ok"]]


def test_query_pivots_run_on_the_provider_with_the_value(demo_qp: hb.QueryProvider) -> None:
    truth = demo_qp.truth  # type: ignore[attr-defined]
    attacker = truth["attacker_ip"]
    menu = hb.pivots(IpAddress(attacker), provider=demo_qp)
    conns = menu.network_ip_connections(start="2026-10-01", end="2026-10-31")
    assert len(conns) > 0 and set(conns["pivot_value"]) == {attacker}
    direct = demo_qp.network.ip_connections(ip_address=attacker, start="2026-10-01", end="2026-10-31")
    assert len(conns) == len(direct)
    logons = menu.authentication_logons_from_ip(start="2026-10-01", end="2026-10-31")
    assert (logons["SrcIpAddr"] == attacker).all() and len(logons) > 0
