"""Catalogues, typed parameters, rendering and the QueryProvider surface (nothing is run here)."""

from __future__ import annotations

import inspect
import warnings
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from huntbook.config import Config
from huntbook.drivers.base import kql_literal, sql_literal
from huntbook.errors import ParameterError, QueryError, QueryNotFoundError
from huntbook.queries import (
    CatalogueWarning,
    Param,
    Raw,
    Slot,
    canonical_environment,
    load_catalogue,
    load_file,
    normalize_family,
    parse_time,
    parse_timespan,
    tokenize,
)
from huntbook.session import QueryProvider

NOW = datetime(2024, 5, 10, 12, 30, tzinfo=UTC)
PACKAGED = {
    "process": {
        "host_processes",
        "account_processes",
        "logon_session_processes",
        "encoded_commands",
        "command_line_search",
        "process_children",
        "rare_processes",
        "processes_by_hash",
        "url_command_lines",
    },
    "authentication": {
        "account_logons",
        "host_logons",
        "failed_logons",
        "password_spray",
        "brute_force",
        "logons_from_ip",
        "rare_logon_sources",
    },
    "network": {"ip_connections", "host_connections", "hourly_traffic", "top_destinations"},
    "dns": {"domain_queries", "host_dns"},
    "alerts": {"list_alerts", "alerts_for_ip"},
    "events": {"host_events", "event_counts", "events_by_key"},
}


class NoConnectStore:
    """A store that must never be opened."""

    def __init__(self) -> None:
        self.connects = 0

    def connect(self) -> Any:
        self.connects += 1
        raise AssertionError("connect() called")


@pytest.fixture
def qp() -> QueryProvider:
    return QueryProvider("local", store=NoConnectStore(), config=Config())


# ------------------------------------------------------------------------------ times
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("now", NOW),
        ("NOW", NOW),
        ("today", datetime(2024, 5, 10, tzinfo=UTC)),
        ("yesterday", datetime(2024, 5, 9, tzinfo=UTC)),
        ("-2d", NOW - timedelta(days=2)),
        ("-30m", NOW - timedelta(minutes=30)),
        ("-1h", NOW - timedelta(hours=1)),
        ("-1w", NOW - timedelta(weeks=1)),
        ("+1d", NOW + timedelta(days=1)),
        ("now-2d", NOW - timedelta(days=2)),
        ("now - 90s", NOW - timedelta(seconds=90)),
        ("today-1d", datetime(2024, 5, 9, tzinfo=UTC)),
        ("-1.5h", NOW - timedelta(minutes=90)),
        (-1, NOW - timedelta(days=1)),
        (0.5, NOW + timedelta(hours=12)),
        ("-1", NOW - timedelta(days=1)),
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02 05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        (datetime(2024, 1, 2, 3), datetime(2024, 1, 2, 3, tzinfo=UTC)),
        (date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
    ],
)
def test_parse_time(value: Any, expected: datetime) -> None:
    result = parse_time(value, NOW)
    assert result == expected and result.tzinfo is not None and result.utcoffset() == timedelta(0)


def test_parse_time_pandas_and_numpy() -> None:
    import numpy as np
    import pandas as pd

    assert parse_time(pd.Timestamp("2024-01-02 03:00", tz="Europe/Paris")) == datetime(
        2024, 1, 2, 2, tzinfo=UTC
    )
    assert parse_time(pd.Timestamp("2024-01-02 03:00")) == datetime(2024, 1, 2, 3, tzinfo=UTC)
    assert parse_time(np.datetime64("2024-01-02T03:00")) == datetime(2024, 1, 2, 3, tzinfo=UTC)


@pytest.mark.parametrize("value", ["tomorrowish", "-2x", "now+", "", [1], True, float("nan")])
def test_parse_time_rejects(value: Any) -> None:
    with pytest.raises(ParameterError, match=r"start=.*(not a time|not a finite)"):
        parse_time(value, NOW, name="start")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1h", timedelta(hours=1)),
        ("30m", timedelta(minutes=30)),
        ("1.5h", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("01:30:00", timedelta(minutes=90)),
        (timedelta(seconds=5), timedelta(seconds=5)),
        (90, timedelta(seconds=90)),
        (0.5, timedelta(seconds=0.5)),
    ],
)
def test_parse_timespan(value: Any, expected: timedelta) -> None:
    assert parse_timespan(value) == expected


def test_parse_timespan_rejects() -> None:
    with pytest.raises(ParameterError, match=r"split_by='soon' \(str\) is not a timespan.*'1h'"):
        parse_timespan("soon", name="split_by")


# ------------------------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    ("ptype", "value", "expected"),
    [
        ("str", "WS01", "WS01"),
        ("str", 42, "42"),
        ("int", "12", 12),
        ("int", 12.0, 12),
        ("float", "1.5", 1.5),
        ("bool", "yes", True),
        ("bool", 0, False),
        ("list", "a, b,,c", ["a", "b", "c"]),
        ("list", ("x", 2), ["x", 2]),
        ("list", {"b", "a"}, ["a", "b"]),
        ("timespan", "2h", timedelta(hours=2)),
        ("identifier", "SecurityEvent", "SecurityEvent"),
        ("identifier", "db.Table_1", "db.Table_1"),
        ("datetime", "-1d", NOW - timedelta(days=1)),
    ],
)
def test_coercion(ptype: str, value: Any, expected: Any) -> None:
    assert Param("p", ptype).coerce(value, NOW) == expected


def test_fragment_is_raw() -> None:
    value = Param("add_query_items", "fragment").coerce("| take 5")
    assert isinstance(value, Raw) and value == "| take 5"


@pytest.mark.parametrize(
    ("ptype", "value", "message"),
    [
        ("int", "ten", r"limit='ten' is a str, expected int"),
        ("int", 1.5, r"limit=1\.5 is a float, expected int"),
        ("int", True, r"limit=True is a bool, expected int"),
        ("float", "x", r"limit='x' is a str, expected float"),
        ("float", float("inf"), "not a finite number"),
        ("bool", "maybe", r"limit='maybe' is a str, expected bool"),
        ("str", ["a"], r"limit=\['a'\] is a list, expected str"),
        ("str", "a\x00b", "NUL character at position 1"),
        ("list", [], "empty list"),
        ("list", {"a": 1}, "is a dict, expected list"),
        ("list", [object()], "list items must be"),
        ("identifier", "x; drop", "not a valid table or column name"),
        ("identifier", "1abc", "not a valid table or column name"),
        ("fragment", 3, "is a int, expected fragment"),
        ("timespan", "-1h", "not a timespan"),
    ],
)
def test_coercion_errors_name_parameter_and_type(ptype: str, value: Any, message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        Param("limit", ptype, "How many").coerce(value, NOW)


def test_none_is_accepted_only_when_it_is_the_default() -> None:
    assert Param("event_id", "int", default=None).coerce(None) is None
    with pytest.raises(
        ParameterError, match=r"start=None is not a valid datetime.*omit it to use the default.*-7d"
    ):
        Param("start", "datetime", default="-7d").coerce(None)
    with pytest.raises(ParameterError, match="it is required"):
        Param("host_name", "str").coerce(None)


# ------------------------------------------------------------------------------ literals
def test_sql_literals() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=UTC)
    assert sql_literal("it's", "str") == "'it''s'"
    assert sql_literal("a\\b", "str") == "'a\\b'"  # DuckDB strings have no backslash escapes
    assert sql_literal("it's", "str", "'") == "it''s"
    assert sql_literal('say "hi"', "str", '"') == 'say ""hi""'
    assert sql_literal("a\\'b", "str", "E'") == "a\\\\\\'b"
    assert sql_literal(when, "datetime") == "TIMESTAMPTZ '2024-01-02 03:04:05.000600+00:00'"
    assert sql_literal(when, "datetime", "'") == "2024-01-02 03:04:05.000600+00:00"
    assert sql_literal(["a'", 1, True], "list") == "'a''', 1, TRUE"
    assert sql_literal(timedelta(hours=1), "timespan") == "INTERVAL '3600000000 microseconds'"
    assert (sql_literal(None, "int"), sql_literal(False, "bool"), sql_literal(2.5, "float")) == (
        "NULL",
        "FALSE",
        "2.5",
    )
    assert sql_literal("SecurityEvent", "identifier") == "SecurityEvent"
    with pytest.raises(QueryError, match=r"cannot place a value inside a \$\$ literal"):
        sql_literal("x", "str", "$$")


def test_kql_literals() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert kql_literal('a"b\\c\nd\re\tf', "str") == '"a\\"b\\\\c\\nd\\re\\tf"'
    assert kql_literal("it's", "str", "'") == "it\\'s"
    assert kql_literal('say "hi"', "str", '@"') == 'say ""hi""'
    assert kql_literal("it's", "str", "@'") == "it''s"
    assert kql_literal(when, "datetime") == "2024-01-02T03:04:05Z"
    assert kql_literal(when.replace(microsecond=5), "datetime") == "2024-01-02T03:04:05.000005Z"
    assert kql_literal(["a", 'b"', 3], "list") == '"a", "b\\"", 3'
    assert kql_literal(timedelta(hours=1), "timespan") == "3600s"
    assert kql_literal(timedelta(milliseconds=1500), "timespan") == "1.5s"
    assert kql_literal(None, "datetime") == "datetime(null)" and kql_literal(True, "bool") == "true"
    with pytest.raises(ParameterError, match="line break"):
        kql_literal("a\nb", "str", "@'")


# ------------------------------------------------------------------------------ tokenizer
def test_tokenize_marks_quoted_slots_and_keeps_other_braces() -> None:
    template = 'T | where a == \'{x}\' and b == {x} and c == @"{x}" | extend d = dynamic({"k": {{1}}}) // {x}'
    segments = tokenize(template, ["x"], "kql")
    slots = [s for s in segments if isinstance(s, Slot)]
    assert slots == [Slot("x", "'"), Slot("x", None), Slot("x", '@"')]
    text = "".join(s if isinstance(s, str) else "<>" for s in segments)
    assert text == 'T | where a == \'<>\' and b == <> and c == @"<>" | extend d = dynamic({"k": {1}}) // {x}'


def test_tokenize_sql_strings_comments_and_escapes() -> None:
    template = "SELECT '{x}', 'it''s {x}', \"{x}\", E'\\'{x}', {y} -- {x} '\n/* {x} ' */ {x} {unknown} '{x}'"
    slots = [s for s in tokenize(template, ["x", "y"], "sql") if isinstance(s, Slot)]
    assert slots == [
        Slot("x", "'"),
        Slot("x", "'"),
        Slot("x", '"'),
        Slot("x", "E'"),
        Slot("y"),
        Slot("x"),
        Slot("x", "'"),
    ]


def test_dollar_quoted_sql_strings_refuse_values(tmp_path: Path) -> None:
    assert [s for s in tokenize("SELECT $$ {x} $$", ["x"], "sql") if isinstance(s, Slot)] == [Slot("x", "$$")]
    (tmp_path / "d.yaml").write_text(
        "metadata: {data_families: [d], format: huntbook}\n"
        "sources:\n  q: {args: {query: 'SELECT $$ {x} $$'}, parameters: {x: {type: str}}}\n",
        encoding="utf-8",
    )
    provider = QueryProvider("local", query_paths=[tmp_path], config=Config())
    with pytest.raises(QueryError, match=r"cannot place a value inside a \$\$ literal"):
        provider.d.q(x="$$; DROP TABLE t; --", print_query=True)


def test_tokenize_rejects_unterminated_string() -> None:
    with pytest.raises(QueryError, match="unterminated string literal"):
        tokenize("SELECT 'abc {x}", ["x"], "sql")


# ------------------------------------------------------------------------------ packaged catalogue
def test_packaged_catalogue_loads_every_query(qp: QueryProvider) -> None:
    assert qp.catalogue_errors == []
    assert {f: {q.__name__ for q in qp.families[f]} for f in qp.families} == PACKAGED
    for spec in map(qp.query_spec, qp.list_queries()):
        assert spec.description and spec.language == "sql" and spec.dialect == "huntbook"
        assert all(p.description for p in spec.parameters.values()), spec.qualified_name
        if spec.time_range:
            assert "TimeGenerated >= {start} AND TimeGenerated < {end}" in spec.query.replace(
                "p.", ""
            ).replace("a.", "")
            assert (spec.parameters["start"].default, spec.parameters["end"].default) == ("-7d", "now")


@pytest.mark.parametrize("name", sorted(f"{f}.{n}" for f, names in PACKAGED.items() for n in names))
def test_every_packaged_query_renders(qp: QueryProvider, name: str) -> None:
    spec = qp.query_spec(name)
    params = {
        p.name: {"str": "v", "list": ["a", "b"], "int": 3}[p.type]
        for p in spec.parameters.values()
        if p.required
    }
    text = (
        qp.render(name, **params, start="2024-01-01", end="2024-01-02")
        if spec.time_range
        else qp.render(name, **params)
    )
    assert "{" not in text.replace("{2", "")  # no placeholder left (regex quantifiers like {2} are fine)
    if spec.time_range:
        assert (
            "TIMESTAMPTZ '2024-01-01 00:00:00+00:00'" in text
            and "TIMESTAMPTZ '2024-01-02 00:00:00+00:00'" in text
        )


def test_print_query_runs_nothing() -> None:
    store = NoConnectStore()
    provider = QueryProvider("local", store=store, config=Config())
    text = provider.process.host_processes(
        host_name="WS01", start="2024-01-01", end="2024-01-02", print_query=True
    )
    assert isinstance(text, str) and "lower('WS01')" in text and "FROM process_events" in text
    assert provider.run("dns.domain_queries", domain="x.org", print_query=True).count("'x.org'") == 2
    assert store.connects == 0 and not provider.driver.connected


def test_defaults_are_relative_to_call_time(qp: QueryProvider) -> None:
    spec = qp.query_spec("alerts.list_alerts")
    bound = spec.bind({}, NOW)
    assert (bound["start"], bound["end"]) == (NOW - timedelta(days=7), NOW)


# ------------------------------------------------------------------------------ discovery
def test_tab_completion_and_docstrings(qp: QueryProvider) -> None:
    assert PACKAGED["process"] <= set(dir(qp.process))
    assert set(PACKAGED) <= set(dir(qp))
    query = qp.process.logon_session_processes
    assert query.__name__ == "logon_session_processes"
    assert query.__doc__ is not None
    for text in (
        "logon_session_id : str",
        "host_name : str, default ''",
        "start : datetime, default '-7d'",
        "print_query",
        "split_by",
        "timeout",
        "Processes of a logon session",
    ):
        assert text in query.__doc__
    signature = inspect.signature(query)
    assert list(signature.parameters)[:4] == ["logon_session_id", "host_name", "start", "end"]
    assert signature.parameters["host_name"].default == ""
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in signature.parameters.values())
    assert "ip_address" in qp.query_help("network.ip_connections")


def test_list_search_browse(qp: QueryProvider) -> None:
    assert qp.list_queries() == sorted(f"{f}.{n}" for f, names in PACKAGED.items() for n in names)
    assert qp.search("spray") == ["authentication.password_spray"]
    assert qp.search("DNS host") == ["dns.host_dns"]
    assert "network.top_destinations" in qp.search("network_sessions")
    assert qp.search("no such words") == []
    table = qp.browse()
    assert list(table.columns[:4]) == ["query", "family", "name", "description"]
    assert len(table) == len(qp.list_queries())
    row = table.set_index("query").loc["authentication.password_spray"]
    assert "min_accounts (int, default 5)" in row["parameters"] and row["required"] == ""
    assert repr(qp) == "QueryProvider(environment='local', driver=LocalDriver, queries=27, connected=False)"


# ------------------------------------------------------------------------------ errors
def test_unknown_query_suggests(qp: QueryProvider) -> None:
    with pytest.raises(
        QueryNotFoundError, match=r"no local query named 'process.host_proceses'.*host_processes"
    ):
        qp.run("process.host_proceses")
    with pytest.raises(QueryNotFoundError, match="qp.list_queries"):
        qp.run("zzz")
    with pytest.raises(AttributeError, match=r"no query process.host_proc\. did you mean host_processes"):
        _ = qp.process.host_proc
    with pytest.raises(AttributeError, match="no attribute or query family 'proces'"):
        _ = qp.proces


def test_bare_name_and_family_case(qp: QueryProvider) -> None:
    assert qp.query_spec("password_spray").qualified_name == "authentication.password_spray"
    assert qp.query_spec("Authentication.password_spray").qualified_name == "authentication.password_spray"
    assert qp.Process is qp.process


def test_parameter_errors_name_the_fix(qp: QueryProvider) -> None:
    with pytest.raises(
        ParameterError, match=r"unknown parameter 'hots'.*valid parameters: host_name \(host/"
    ):
        qp.process.host_processes(hots="WS01", print_query=True)
    with pytest.raises(
        ParameterError, match=r"missing required parameter 'host_name'.*host_processes\(host_name="
    ):
        qp.process.host_processes(print_query=True)
    with pytest.raises(ParameterError, match=r"min_accounts='many' is a str, expected int"):
        qp.authentication.password_spray(min_accounts="many", print_query=True)
    with pytest.raises(ParameterError, match="start=None is not a valid datetime"):
        qp.alerts.list_alerts(start=None, print_query=True)
    with pytest.raises(ParameterError, match="is after end"):
        qp.alerts.list_alerts(start="now", end="-1d", print_query=True)
    with pytest.raises(ParameterError, match="given twice"):
        qp.process.host_processes(host="a", host_name="b", print_query=True)
    with pytest.raises(ParameterError, match="timeout=0 is not a positive number"):
        qp.alerts.list_alerts(timeout=0)
    with pytest.raises(TypeError):
        qp.process.host_processes("WS01")  # type: ignore[call-arg]


# ------------------------------------------------------------------------------ user catalogues
GOOD = """
metadata:
  data_families: [Custom.Hunts]
  format: huntbook
sources:
  by_ids:
    description: Events with these ids
    args:
      query: "SELECT * FROM events WHERE EventID IN ({ids}) AND Channel = {channel}"
    parameters:
      ids: {description: Event ids, type: list}
      channel: {description: Channel, type: str, default: Security, aliases: [log]}
"""
OVERRIDE = """
metadata:
  data_environments: [local]
  data_families: [process]
  format: huntbook
sources:
  host_processes:
    description: Team version
    args: {query: "SELECT 1 WHERE {host_name} <> ''"}
    parameters:
      host_name: {description: Host, type: str}
"""
BAD_ENTRY = """
metadata: {data_families: [broken], format: huntbook}
sources:
  ok_query:
    description: Fine
    args: {query: "SELECT 1"}
  bad_type:
    description: Unknown type
    args: {query: "SELECT {x}"}
    parameters:
      x: {description: X, type: tuple}
  no_query:
    description: Missing text
    args: {}
  unused:
    description: Declares an unused parameter
    args: {query: "SELECT 1"}
    parameters:
      y: {description: Y, type: int}
  bad_default:
    description: Bad default
    args: {query: "SELECT {n}"}
    parameters:
      n: {description: N, type: int, default: many}
  reserved:
    args: {query: "SELECT {timeout}"}
    parameters:
      timeout: {description: T, type: int}
"""
BAD_YAML = "metadata:\n  data_families: [x]\nsources:\n  q:\n    args: {query: 'SELECT 1'\n  bad: [\n"


def test_user_folder_loads_overrides_and_collects_errors(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "override.yml").write_text(OVERRIDE, encoding="utf-8")
    (tmp_path / "bad_entry.yaml").write_text(BAD_ENTRY, encoding="utf-8")
    (tmp_path / "bad_yaml.yaml").write_text(BAD_YAML, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a catalogue", encoding="utf-8")
    with pytest.warns(CatalogueWarning) as record:
        provider = QueryProvider("local", store=NoConnectStore(), query_paths=[tmp_path], config=Config())
    messages = [str(w.message) for w in record]
    assert any("process.host_processes" in m and "overrides" in m for m in messages)
    assert provider.query_spec("process.host_processes").description == "Team version"
    assert provider.custom_hunts.by_ids(ids=[4624, 4625], log="x'y", print_query=True) == (
        "SELECT * FROM events WHERE EventID IN (4624, 4625) AND Channel = 'x''y'"
    )
    assert provider.query_spec("broken.ok_query").description == "Fine"
    errors = {e.where: e.message for e in provider.catalogue_errors}
    bad = str(tmp_path / "bad_entry.yaml")
    assert "unknown type 'tuple'" in errors[f"{bad}:bad_type"]
    assert "missing query text" in errors[f"{bad}:no_query"]
    assert "y declared but not used" in errors[f"{bad}:unused"]
    assert "bad default for parameter 'n'" in errors[f"{bad}:bad_default"]
    assert "reserved" in errors[f"{bad}:reserved"]
    yaml_error = next(e for e in provider.catalogue_errors if "invalid YAML" in e.message)
    assert yaml_error.where is not None and yaml_error.where.startswith(f"{tmp_path / 'bad_yaml.yaml'}:")
    assert yaml_error.where.rsplit(":", 1)[1].isdigit() and yaml_error.hint
    assert len(provider.catalogue_errors) == 6


def test_config_query_paths_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD, encoding="utf-8")
    provider = QueryProvider("local", config=Config(query_paths=(tmp_path,)))
    assert "custom_hunts.by_ids" in provider.list_queries()
    with pytest.warns(CatalogueWarning, match="does not exist"):
        provider = QueryProvider("local", config=Config(), query_paths=[tmp_path / "missing"])
    assert len(provider.catalogue_errors) == 1 and len(provider.list_queries()) == 27


MSTICPY_SENTINEL = """
metadata:
  version: 1
  description: Kql Sentinel Windows Logon Event Queries
  data_environments: [LogAnalytics]
  data_families: [WindowsSecurity]
  tags: ["process", "windows"]
  aliases:
    - &logon_filter '| where EventID in (4624, 4625)'
defaults:
  metadata:
    data_source: "security_event"
  parameters:
    table: {description: Table name, type: str, default: "SecurityEvent"}
    event_filter: {description: Event subset, type: str, default: *logon_filter}
    start: {description: Query start time, type: datetime}
    end: {description: Query end time, type: datetime}
    add_query_items: {description: Additional query clauses, type: str, default: ""}
sources:
  list_logons_by_ips:
    description: Logons from IPs
    metadata:
      pivot: {short_name: logons}
    args:
      query: '
        {table}
        {event_filter}
        | where TimeGenerated >= datetime({start})
        | where TimeGenerated <= datetime({end})
        | where Computer has "{host_name}"
        $<ip_condition>$
        | extend Meta = dynamic({"a": 1})
        {add_query_items}'
    parameters:
      host_name: {description: Name of host, type: str, default: ""}
      ip_list: {description: IPs, type: list}
    query_macros:
      ip_condition:
        description: IP filter
        value: '| where IpAddress in ({ip_list})'
"""


def test_msticpy_file_environment_mapping(tmp_path: Path) -> None:
    path = tmp_path / "kql_sent_winevent_logon.yaml"
    path.write_text(MSTICPY_SENTINEL, encoding="utf-8")
    assert load_catalogue("local", [tmp_path], packaged=False).queries == {}
    for environment in ("sentinel", "MSSentinel", "LogAnalytics"):
        catalogue = load_catalogue(environment, [tmp_path], packaged=False)
        assert list(catalogue.queries) == ["windowssecurity.list_logons_by_ips"] and catalogue.errors == []
    specs, errors = load_file(path)
    assert errors == [] and specs[0].environment == "sentinel" and specs[0].language == "kql"


def test_msticpy_rendering_of_macros_fragments_and_lists(tmp_path: Path) -> None:
    path = tmp_path / "q.yaml"
    path.write_text(MSTICPY_SENTINEL, encoding="utf-8")
    spec = load_catalogue("sentinel", [path], packaged=False).queries["windowssecurity.list_logons_by_ips"]
    assert {n: p.type for n, p in spec.parameters.items()} == {
        "host_name": "str",
        "ip_list": "list",
        "table": "identifier",
        "event_filter": "fragment",
        "start": "datetime",
        "end": "datetime",
        "add_query_items": "fragment",
    }
    bound = spec.bind(
        {
            "ip_list": ["10.0.0.1", 'x")|take 1//'],
            "start": "2024-01-01",
            "end": "2024-01-02",
            "add_query_items": "| take 10",
        },
        NOW,
    )
    text = " ".join(spec.render(bound, kql_literal).split())
    assert text == (
        "SecurityEvent | where EventID in (4624, 4625) "
        "| where TimeGenerated >= datetime(2024-01-01T00:00:00Z) "
        '| where TimeGenerated <= datetime(2024-01-02T00:00:00Z) | where Computer has "" '
        '| where IpAddress in ("10.0.0.1", "x\\")|take 1//") | extend Meta = dynamic({"a": 1}) | take 10'
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("MSSentinel", "sentinel"),
        ("LogAnalytics", "sentinel"),
        ("Kusto", "kusto"),
        ("Splunk", "splunk"),
        ("LocalData", "local"),
        ("local", "local"),
        ("Elastic", "elastic"),
        ("Custom", "custom"),
    ],
)
def test_canonical_environment(name: str, expected: str) -> None:
    assert canonical_environment(name) == expected


def test_normalize_family() -> None:
    assert normalize_family("WindowsSecurity") == "windowssecurity"
    assert normalize_family("Azure.Sentinel-Logs") == "azure_sentinel_logs"
    assert normalize_family("365d") == "_365d"


def test_environment_less_user_file_is_offered_everywhere(tmp_path: Path) -> None:
    (tmp_path / "any.yaml").write_text(GOOD, encoding="utf-8")
    for environment, language in (("local", "sql"), ("kusto", "kql"), ("splunk", "spl")):
        spec = load_catalogue(environment, [tmp_path], packaged=False).queries["custom_hunts.by_ids"]
        assert (spec.environment, spec.language) == (environment, language)


def test_unsupported_language_is_skipped_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "spl.yaml").write_text(
        "metadata: {data_families: [x], language: spl}\nsources:\n  q: {args: {query: 'search *'}}\n",
        encoding="utf-8",
    )
    provider = QueryProvider("local", query_paths=[tmp_path], config=Config())
    assert "x.q" not in provider.list_queries()
    assert [e.message for e in provider.catalogue_errors] == [
        "spl query skipped: the local driver runs sql, kql"
    ]


def test_packaged_catalogue_is_warning_free() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalogue = load_catalogue("local")
    assert len(catalogue.queries) == 27 and catalogue.errors == []
