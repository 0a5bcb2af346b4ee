"""Investigations: one call summarises a host, an account, an IP address, logon sessions, network flows
or a URL/domain from the catalogue queries of any backend (``hb.investigate``)::

    import huntbook as hb

    qp = hb.QueryProvider("local", store="~/hunts/case-42/store")
    found = hb.investigate.host(qp, "WS01", start="-2d", end="now", skip=["sigma"])
    found.save("host-WS01.html")  # or .md; found.to_json(); in Jupyter it renders itself
    hb.investigate.list()          # every investigation, its parts and the queries they need

An investigation is a list of parts; each part names the catalogue queries it needs (``family.name``).
A part whose queries the backend's catalogue lacks is skipped, and a part that fails records its error:
both are notes in the :class:`~huntbook.report.Findings` (``findings.notes``), and the other parts still
run. Every query run is recorded (``findings.queries``: name, parameters, rows, seconds, text). Results
are read by their ASIM column names; the CIM names of Splunk results (``dest``, ``user``, ``process``,
``src_ip`` ...) are renamed to them first.
"""

from __future__ import annotations

import builtins
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from huntbook.errors import HuntbookError, MissingExtraError, ParameterError
from huntbook.queries import parse_time
from huntbook.report import Finding, Findings, cell_text, plural

if TYPE_CHECKING:
    from datetime import datetime

    import pandas as pd

__all__ = [
    "INVESTIGATIONS",
    "Investigation",
    "Part",
    "account",
    "asim_columns",
    "host",
    "ip",
    "list",
    "logon_sessions",
    "network",
    "run",
    "traffic_anomalies",
    "url",
]

# CIM field (Splunk Add-ons) -> ASIM column, per family of the query that returned it.
_CIM: Mapping[str, Mapping[str, str]] = {
    "process": {
        "dest": "DvcHostname",
        "user": "TargetUsername",
        "src_user": "ActorUsername",
        "process": "TargetProcessCommandLine",
        "process_path": "TargetProcessName",
        "process_id": "TargetProcessId",
        "parent_process": "ActingProcessCommandLine",
        "parent_process_path": "ActingProcessName",
        "parent_process_id": "ActingProcessId",
        "process_hash": "TargetProcessSHA256",
        "SubjectLogonId": "ActorSessionId",
        "TargetLogonId": "TargetUserSessionId",
        "EventCode": "EventOriginalType",
    },
    "authentication": {
        "host": "DvcHostname",
        "dest": "TargetHostname",
        "user": "TargetUsername",
        "src_ip": "SrcIpAddr",
        "src_port": "SrcPortNumber",
        "src_nt_host": "SrcHostname",
        "Logon_Type": "LogonType",
        "authentication_method": "LogonMethod",
        "action": "EventResult",
        "TargetLogonId": "TargetSessionId",
        "EventCode": "EventOriginalType",
    },
    "network": {
        "host": "DvcHostname",
        "src_ip": "SrcIpAddr",
        "src_port": "SrcPortNumber",
        "dest_ip": "DstIpAddr",
        "dest_port": "DstPortNumber",
        "dest_host": "DstHostname",
        "transport": "NetworkProtocol",
        "app": "NetworkApplicationProtocol",
        "bytes_out": "SrcBytes",
        "bytes_in": "DstBytes",
        "session_id": "NetworkSessionId",
    },
    "dns": {
        "host": "DvcHostname",
        "src_ip": "SrcIpAddr",
        "dest_ip": "DstIpAddr",
        "query": "DnsQuery",
        "record_type": "DnsQueryTypeName",
        "reply_code": "DnsResponseCodeName",
        "answer": "DnsResponseName",
    },
}
_RESULTS = {"success": "Success", "failure": "Failure"}
_ENCODED_TECHNIQUES = ["T1059.001", "T1027"]


def asim_columns(frame: pd.DataFrame, family: str) -> pd.DataFrame:
    """``frame`` with the CIM columns of a ``family`` query (Splunk) renamed to ASIM names (a copy; a
    column whose ASIM name is already there is left alone). ASIM frames come back unchanged."""
    mapping = {
        cim: asim
        for cim, asim in _CIM.get(family, {}).items()
        if cim in frame.columns and asim not in frame.columns
    }
    if not mapping:
        return frame
    out = frame.rename(columns=mapping)
    if mapping.get("action") == "EventResult":
        out["EventResult"] = out["EventResult"].map(lambda v: _RESULTS.get(str(v).lower(), v))
    if "DnsResponseName" in mapping.values():
        out["DnsResponseName"] = out["DnsResponseName"].map(
            lambda v: ";".join(map(str, v)) if isinstance(v, builtins.list | tuple) else v
        )
    return out


_INTERNAL = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 127.0.0.0/8 169.254.0.0/16 100.64.0.0/10 0.0.0.0/8 "
        "224.0.0.0/3 ::1/128 fc00::/7 fe80::/10 ff00::/8"
    ).split()
)


def _public(value: object) -> bool:
    """An address outside the internal ranges (RFC 1918, loopback, link-local, CGNAT, multicast, ULA):
    documentation ranges count as external, as they stand for internet hosts in examples and tests."""
    try:
        address = ipaddress.ip_address(str(value).strip())
    except ValueError:
        return False
    return not any(address.version == n.version and address in n for n in _INTERNAL)


def _rounded(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    return frame.round({c: digits for c in frame.select_dtypes("float").columns})


def _short(host: object) -> str:
    return str(host).split(".", 1)[0].upper()


def _user(account: object) -> str:
    """``CORP\\jsmith`` / ``jsmith@corp.local`` -> ``jsmith`` (lower-case)."""
    text = str(account).strip().lower()
    return text.rsplit("\\", 1)[-1].split("@", 1)[0]


# ---------------------------------------------------------------------------------------------------------
# The registry


@dataclass
class Context:
    """What a part sees: the provider, the target, the range, the options, and the findings so far."""

    qp: Any
    target: str
    start: datetime
    end: datetime
    options: Mapping[str, Any]
    findings: Findings
    state: dict[str, Any] = field(default_factory=dict)

    def query(self, name: str, **params: Any) -> pd.DataFrame:
        """Run catalogue query ``name`` over the range, record it, return it with ASIM column names."""
        values = {"start": self.start, "end": self.end, **params}
        began = time.perf_counter()
        frame = self.qp.run(name, **values)
        seconds = time.perf_counter() - began
        text = frame.attrs.get("query") if hasattr(frame, "attrs") else None
        shown = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in values.items()}
        self.findings.queries.append(
            {
                "query": name,
                "parameters": shown,
                "rows": len(frame),
                "seconds": round(seconds, 3),
                "text": text,
            }
        )
        renamed = asim_columns(frame, name.split(".", 1)[0])
        renamed.attrs.update(frame.attrs)
        return renamed

    def note(self, text: str) -> None:
        """Add a note to the findings."""
        self.findings.notes.append(text)


@dataclass(frozen=True)
class Part:
    """One part of an investigation: the catalogue queries it needs, what it does, and whether it runs
    unless asked not to (``default=False``: only with ``include=[name]``, e.g. online lookups)."""

    name: str
    description: str
    queries: tuple[str, ...]
    run: Callable[[Context], None]
    default: bool = True


@dataclass(frozen=True)
class Investigation:
    """A named investigation of one kind of target, made of :class:`Part` objects."""

    name: str
    target: str
    description: str
    parts: tuple[Part, ...]
    label: str = ""  # the name in titles (default: the name, capitalised)

    def __call__(
        self,
        qp: Any,
        target: str,
        start: Any = "-7d",
        end: Any = "now",
        *,
        skip: Iterable[str] = (),
        include: Iterable[str] = (),
        **options: Any,
    ) -> Findings:
        """Run the parts against ``qp`` (a QueryProvider) for ``target`` over ``[start, end)``.

        ``skip``: part names not to run; ``include``: parts that are off by default to run too
        (:func:`list` shows both). Other keyword arguments are options of the parts."""
        target = str(target).strip()
        if not target:
            raise ParameterError(f"investigate.{self.name} needs a target", hint=f"a {self.target}")
        names = {p.name for p in self.parts}
        skipped, included = set(skip), set(include)
        unknown = (skipped | included) - names
        if unknown:
            raise ParameterError(
                f"investigate.{self.name} has no part {', '.join(sorted(unknown))}",
                where="skip/include",
                hint=f"parts: {', '.join(p.name for p in self.parts)}",
            )
        begin, finish = parse_time(start, name="start"), parse_time(end, name="end")
        findings = Findings(
            title=f"{self.label or self.name.replace('_', ' ').capitalize()} investigation: {target}",
            subtitle=f"{begin.isoformat()} to {finish.isoformat()}, {getattr(qp, 'environment', 'backend')}",
        )
        context = Context(qp, target, begin, finish, options, findings)
        available = set(qp.list_queries())
        for part in self.parts:
            if part.name in skipped or (not part.default and part.name not in included):
                findings.notes.append(f"{part.name}: not run (skipped)")
                continue
            missing = [q for q in part.queries if q not in available]
            if missing:
                findings.notes.append(
                    f"{part.name}: skipped, the {getattr(qp, 'environment', '')} catalogue has no "
                    f"{', '.join(missing)}"
                )
                continue
            try:
                part.run(context)
            except (HuntbookError, KeyError, ValueError, TypeError) as exc:
                findings.notes.append(f"{part.name}: failed: {type(exc).__name__}: {exc}")
        return findings


def _finding(ctx: Context, title: str, **details: Any) -> Finding:
    return ctx.findings.add(title, **details)


def _chart(ctx: Context, build: Callable[[], Any]) -> Any:
    """A :mod:`huntbook.vis` chart, or None (with a note) without the 'vis' extra or when charts are off."""
    if not ctx.options.get("charts", True):
        return None
    try:
        return build()
    except MissingExtraError as exc:
        ctx.note(f"chart left out: {exc}")
        return None


def _entities(kind: str, values: Iterable[object]) -> builtins.list[Any]:
    from huntbook import entities

    return [entities.entity(kind, v) for v in dict.fromkeys(str(v) for v in values if str(v).strip())]


def _grouped(frame: pd.DataFrame, keys: Sequence[str], count: str = "EventKey") -> pd.DataFrame:
    """Rows per ``keys`` with first and last seen, most first."""
    keys = [k for k in keys if k in frame.columns]
    if frame.empty or not keys:
        import pandas as pd

        return pd.DataFrame(columns=[*keys, "Events", "FirstSeen", "LastSeen"])
    column = count if count in frame.columns else "TimeGenerated"
    out = (
        frame.groupby(keys, dropna=False)
        .agg(Events=(column, "size"), FirstSeen=("TimeGenerated", "min"), LastSeen=("TimeGenerated", "max"))
        .reset_index()
    )
    return out.sort_values(["Events", "FirstSeen"], ascending=[False, True]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------------------
# Shared parts


def _logon_summary(ctx: Context, logons: pd.DataFrame, what: str) -> None:
    """Logons by account, source and outcome; successes from internet sources stand out."""
    import pandas as pd

    table = _grouped(logons, ["TargetUsername", "DvcHostname", "SrcIpAddr", "LogonType", "EventResult"])
    results = logons["EventResult"] if "EventResult" in logons else pd.Series("", index=logons.index)
    success = logons[results == "Success"]
    public = success[success["SrcIpAddr"].map(_public)] if "SrcIpAddr" in success else success.head(0)
    failures = int((results == "Failure").sum())
    facts = {
        "Logon events": len(logons),
        "Failures": failures,
        "Accounts": logons["TargetUsername"].nunique() if "TargetUsername" in logons else 0,
        "Sources": logons["SrcIpAddr"].nunique() if "SrcIpAddr" in logons else 0,
    }
    finding = _finding(
        ctx,
        f"Logons {what}",
        severity="medium" if len(public) else "info",
        summary=(
            f"{len(public):,} successful logons from internet addresses "
            f"({', '.join(sorted(set(public['SrcIpAddr'])))})."
            if len(public)
            else "No successful logon from an internet address."
        ),
        facts=facts,
        techniques=["T1078", "T1021.001"] if len(public) else [],
        entities=_entities("Account", public.get("TargetUsername", []))
        + _entities("IpAddress", public.get("SrcIpAddr", [])),
    )
    finding.add_table(table, logons.attrs.get("query"), title="By account, host, source, type and outcome")
    if len(public):
        shown = [
            c
            for c in (
                "TimeGenerated",
                "DvcHostname",
                "TargetUsername",
                "SrcIpAddr",
                "LogonType",
                "TargetSessionId",
            )
            if c in public.columns
        ]
        finding.add_table(public.loc[:, shown], "", title="Successful logons from internet addresses")
    ctx.state["logons"] = logons


def _account_spray(ctx: Context) -> None:
    """Password spraying (a source failing as many accounts) that named the account, or whose source the
    account then logged on from (a guessed password does not fail)."""
    account = _user(ctx.target)
    spray = ctx.query("authentication.password_spray", min_accounts=int(ctx.options.get("min_accounts", 5)))
    logons = ctx.state.get("logons")
    sources = (
        set(logons["SrcIpAddr"].dropna().astype(str))
        if logons is not None and "SrcIpAddr" in logons
        else set()
    )
    if len(spray):
        named = spray["Accounts"].map(lambda names: account in {_user(n) for n in names})
        spray = spray.assign(
            NamesAccount=named, AccountLoggedOnFrom=spray["Source"].astype(str).isin(sources)
        )
        spray = spray[spray["NamesAccount"] | spray["AccountLoggedOnFrom"]]
    hit = len(spray) and bool(spray["AccountLoggedOnFrom"].any())
    _finding(
        ctx,
        f"Password spraying and {ctx.target}",
        severity="high" if hit else "medium" if len(spray) else "info",
        summary=f"{len(spray):,} spraying sources named {ctx.target} or were a source of its logons"
        + ("; the account logged on from a spraying source." if hit else "."),
        techniques=["T1110.003"] if len(spray) else [],
        entities=_entities("IpAddress", spray.get("Source", [])),
    ).add_table(spray, spray.attrs.get("query"))


def _encoded(ctx: Context, procs: pd.DataFrame, where: str) -> None:
    """Encoded commands decoded (``huntbook.decode``) and the IoCs in them (``huntbook.iocs``)."""
    from huntbook import decode, iocs

    if procs.empty:
        _finding(ctx, f"Encoded commands {where}", summary="No encoded command.")
        return
    decoded = decode.add_decoded(procs, "TargetProcessCommandLine", name="Decoded")
    found = iocs.extract(decoded, columns=["Decoded"]) if decoded["Decoded"].notna().any() else None
    shown = [
        c
        for c in (
            "TimeGenerated",
            "DvcHostname",
            "ActorUsername",
            "TargetUsername",
            "ActorSessionId",
            "TargetProcessCommandLine",
            "Decoded",
        )
        if c in decoded.columns
    ]
    values = found[["ioc_type", "value"]].drop_duplicates() if found is not None and len(found) else None
    finding = _finding(
        ctx,
        f"Encoded commands {where}",
        severity="high",
        summary=f"{len(procs):,} command lines with an encoded command, decoded; "
        f"{0 if values is None else len(values):,} IoCs in them.",
        techniques=_ENCODED_TECHNIQUES,
        entities=_entities("Host", decoded.get("DvcHostname", [])),
    )
    finding.add_table(decoded[shown], procs.attrs.get("query"))
    if values is not None:
        finding.add_table(values.reset_index(drop=True), "", title="IoCs in the decoded commands")
        kinds = {"url": "Url", "dns": "Dns", "ipv4": "IpAddress"}
        for kind, entity in kinds.items():
            finding.entities += _entities(entity, values.loc[values["ioc_type"] == kind, "value"])
    ctx.state["decoded"] = decoded


def _process_summary(ctx: Context, procs: pd.DataFrame, where: str) -> None:
    """Process images by count (rarest first) and the rare command lines."""
    rare_below = int(ctx.options.get("rare_count", 2))
    images = _grouped(procs, ["TargetProcessName"])
    rare = images[images["Events"] <= rare_below] if len(images) else images
    finding = _finding(
        ctx,
        f"Processes {where}",
        summary=f"{len(procs):,} processes, {len(images):,} images; {len(rare):,} images started at most "
        f"{rare_below} times.",
        facts={"Processes": len(procs), "Images": len(images)},
    )
    finding.add_table(images.sort_values("Events", kind="stable").head(50), procs.attrs.get("query"))
    if len(rare):
        lines = procs[procs["TargetProcessName"].isin(rare["TargetProcessName"])]
        shown = [
            c
            for c in (
                "TimeGenerated",
                "DvcHostname",
                "ActorUsername",
                "TargetProcessName",
                "TargetProcessCommandLine",
            )
            if c in lines.columns
        ]
        finding.add_table(lines[shown], "", title="Command lines of the rare images")


def _peers(ctx: Context, conns: pd.DataFrame, where: str) -> pd.DataFrame:
    """Network peers of an address: connections and bytes per peer, port and protocol."""
    table = conns.head(0)
    if len(conns):
        table = (
            conns.assign(SrcBytes=conns.get("SrcBytes", 0), DstBytes=conns.get("DstBytes", 0))
            .groupby(
                [
                    c
                    for c in ("SrcIpAddr", "DstIpAddr", "DstPortNumber", "NetworkApplicationProtocol")
                    if c in conns
                ],
                dropna=False,
            )
            .agg(
                Connections=("TimeGenerated", "size"),
                BytesOut=("SrcBytes", "sum"),
                BytesIn=("DstBytes", "sum"),
                FirstSeen=("TimeGenerated", "min"),
                LastSeen=("TimeGenerated", "max"),
            )
            .reset_index()
            .sort_values(["BytesOut", "Connections"], ascending=False)
            .reset_index(drop=True)
        )
    external = sorted(
        {str(v) for c in ("SrcIpAddr", "DstIpAddr") if c in table for v in table[c] if _public(v)}
    )
    _finding(
        ctx,
        f"Network peers {where}",
        severity="low" if external else "info",
        summary=f"{len(conns):,} network sessions; internet peers: {', '.join(external) or 'none'}.",
        entities=_entities("IpAddress", external),
    ).add_table(table, conns.attrs.get("query"))
    return table


def _host_addresses(ctx: Context, host: str) -> builtins.list[str]:
    """The host's addresses: ``ips=`` from the options, else the sources of its machine account's logons."""
    given = ctx.options.get("ips")
    if given:
        return [given] if isinstance(given, str) else [str(v) for v in given]
    logons = ctx.query("authentication.account_logons", account_name=f"{_short(host)}$")
    ips: Iterable[str] = logons["SrcIpAddr"].dropna().astype(str) if "SrcIpAddr" in logons else ()
    return sorted({ip for ip in ips if ip not in ("", "-", "::1", "127.0.0.1")})


def traffic_anomalies(hourly: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """(hour, destination) cells of ``network.hourly_traffic`` that sent far more (BytesOut) than usual.

    A robust z-score per destination over every hour of the range (hours without traffic count as 0):
    (bytes - median) / (1.4826 * MAD + floor), the floor being the median of all non-zero cells so that
    a usually silent destination does not score on a few bytes. Best first.
    """
    import pandas as pd

    grid = hourly.pivot_table(index="TimeGenerated", columns="DstIpAddr", values="BytesOut", aggfunc="sum")
    if grid.empty:
        return pd.DataFrame(columns=["TimeGenerated", "DstIpAddr", "BytesOut", "Median", "Score"])
    hours = pd.date_range(grid.index.min(), grid.index.max(), freq="h", name="TimeGenerated")
    grid = grid.reindex(hours).fillna(0.0)
    median = grid.median()
    mad = (grid - median).abs().median()
    floor = float(hourly.loc[hourly["BytesOut"] > 0, "BytesOut"].median())
    cells = grid.reset_index().melt(id_vars="TimeGenerated", var_name="DstIpAddr", value_name="BytesOut")
    cells["Median"] = cells["DstIpAddr"].map(median)
    cells["Score"] = (
        (cells["BytesOut"] - cells["Median"]) / (1.4826 * cells["DstIpAddr"].map(mad) + floor)
    ).round(1)
    cells = cells.astype({"BytesOut": "int64", "Median": "int64"})
    return cells.sort_values(["Score", "BytesOut"], ascending=False).head(top).reset_index(drop=True)


def _traffic(ctx: Context, ip: str) -> None:
    """Traffic per hour with an address, and the (hour, destination) cells that stand out."""
    hourly = ctx.query("network.hourly_traffic", ip_address=ip)
    finding = _finding(
        ctx, f"Traffic over time with {ip}", summary=f"{len(hourly):,} (hour, destination) cells."
    )
    finding.add_table(hourly, hourly.attrs.get("query"))
    if len(hourly) < 2:
        return
    ranked = traffic_anomalies(hourly, top=10)
    finding.add_table(ranked, "", title="The (hour, destination) cells that sent most above their median")
    top = ranked.iloc[0]
    if _public(top["DstIpAddr"]) and float(top["Score"]) >= float(ctx.options.get("threshold", 50.0)):
        finding.severity = "medium"
        finding.techniques = ["T1041"]
        finding.summary += (
            f" In the hour from {cell_text(top['TimeGenerated'])}, {int(top['BytesOut']):,} bytes went to "
            f"{top['DstIpAddr']} (its median hour: {int(top['Median']):,}; score {top['Score']})."
        )
        finding.entities += _entities("IpAddress", [top["DstIpAddr"]])
    from huntbook import vis

    chart = _chart(
        ctx, lambda: vis.values(hourly, "BytesOut", group_by="DstIpAddr", title=f"Bytes sent, {ip}")
    )
    if chart is not None:
        finding.add_chart(chart, f"Bytes sent per hour, {ip}")


def _sessions_processes(ctx: Context, logons: pd.DataFrame, where: str) -> None:
    """What ran in the logon sessions that ``logons`` opened (successful logons with a logon id)."""
    if not {"EventResult", "DvcHostname", "TargetSessionId"} <= set(logons.columns):
        ctx.note(f"sessions: the logons {where} have no logon ids (TargetSessionId)")
        return
    ok = logons[logons["EventResult"] == "Success"]
    ids = ok[["DvcHostname", "TargetSessionId"]].dropna().drop_duplicates()
    frames = []
    limit = int(ctx.options.get("max_sessions", 5))
    for host, logon_id in ids.head(limit).itertuples(index=False, name=None):
        frames.append(
            ctx.query(
                "process.logon_session_processes", logon_session_id=str(logon_id), host_name=_short(host)
            )
        )
    import pandas as pd

    procs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if len(ids) > limit:
        ctx.note(f"sessions: {len(ids) - limit} more logon sessions {where} not read (max_sessions={limit})")
    shown = [
        c
        for c in (
            "TimeGenerated",
            "DvcHostname",
            "ActorUsername",
            "ActorSessionId",
            "TargetProcessCommandLine",
        )
        if c in procs.columns
    ]
    _finding(
        ctx,
        f"Processes of the logon sessions {where}",
        severity="medium" if len(procs) else "info",
        summary=f"{len(ids):,} logon sessions, {len(procs):,} processes in them.",
        entities=_entities("Host", ids["DvcHostname"] if len(ids) else []),
    ).add_table(procs[shown] if shown else procs)
    if len(procs) and "TargetProcessCommandLine" in procs:
        from huntbook import decode

        marked = decode.add_decoded(procs, "TargetProcessCommandLine", name="Decoded")
        hits = procs[marked["Decoded"].notna()]
        if len(hits):
            _encoded(ctx, hits, f"in the logon sessions {where}")


def _alerts(ctx: Context, alerts: pd.DataFrame, where: str) -> None:
    _finding(
        ctx,
        f"Alerts {where}",
        severity="medium" if len(alerts) else "info",
        summary=f"{len(alerts):,} alerts.",
    ).add_table(alerts, alerts.attrs.get("query"))


def _sigma(ctx: Context, host: str | None) -> None:
    """huntbook's bundled Sigma rules over the LocalStore (other backends: their alerts)."""
    from pathlib import Path

    from huntbook import sigma

    store = getattr(getattr(ctx.qp, "driver", None), "store", None)
    if store is None:
        ctx.note("sigma: skipped, Sigma rules run on a LocalStore (other backends: see the alerts part)")
        return
    rules = ctx.options.get("sigma_rules") or [Path(__file__).with_name("rules")]
    hits = sigma.hunt(store, sigma.load(rules, progress=False), progress=False)
    if host is not None and len(hits):
        hits = hits[hits["Computer"].map(_short) == _short(host)]
    stamps = hits["TimeGenerated"] if len(hits) else None
    if stamps is not None:
        import pandas as pd

        start, end = pd.Timestamp(ctx.start), pd.Timestamp(ctx.end)
        hits = hits[(stamps >= start) & (stamps < end)]
    techniques = sorted({t for tags in hits.get("techniques", []) for t in tags}) if len(hits) else []
    _finding(
        ctx,
        "Sigma rules" + (f" on {host}" if host else ""),
        severity="high" if len(hits) else "info",
        summary=f"{len(hits):,} hits of {hits['title'].nunique() if len(hits) else 0} bundled Sigma rules.",
        techniques=techniques,
    ).add_table(sigma.summary(hits) if len(hits) else hits[["title", "level"]] if "title" in hits else hits)


# ---------------------------------------------------------------------------------------------------------
# Host


def _host_logons(ctx: Context) -> None:
    _logon_summary(ctx, ctx.query("authentication.host_logons", host_name=ctx.target), f"on {ctx.target}")


def _host_failures(ctx: Context) -> None:
    """Failed logons, and explicit-credential attempts (4648: Windows logs no outcome), by source; a
    source trying many accounts is spraying."""
    import pandas as pd

    failed = ctx.query("authentication.failed_logons", host_name=ctx.target)
    logons = ctx.state.get("logons")
    explicit = (
        logons[pd.to_numeric(logons["EventOriginalType"], errors="coerce") == 4648]
        if logons is not None and "EventOriginalType" in logons
        else failed.head(0)
    )
    attempts = (
        pd.concat([f for f in (failed, explicit) if len(f)], ignore_index=True) if len(explicit) else failed
    )
    table = _grouped(attempts, ["SrcIpAddr", "SrcHostname"])
    if len(attempts) and "TargetUsername" in attempts:
        accounts = attempts.groupby("SrcIpAddr", dropna=False)["TargetUsername"].nunique()
        table = table.assign(Accounts=table["SrcIpAddr"].map(accounts))
    least = int(ctx.options.get("min_accounts", 5))
    many = table[table["Accounts"] >= least] if "Accounts" in table else table.head(0)
    _finding(
        ctx,
        f"Failed logons on {ctx.target}",
        severity="high" if len(many) else "low" if len(attempts) else "info",
        summary=f"{plural(len(failed), 'failed logon')} and "
        f"{plural(len(explicit), 'explicit-credential attempt')} from {plural(len(table), 'source')}; "
        f"{plural(len(many), 'source')} tried {least} or more accounts (password spraying).",
        techniques=["T1110.003"] if len(many) else [],
        entities=_entities("IpAddress", many.get("SrcIpAddr", [])),
    ).add_table(table, failed.attrs.get("query"))


def _host_processes(ctx: Context) -> None:
    procs = ctx.query("process.host_processes", host_name=ctx.target)
    ctx.state["processes"] = procs
    _process_summary(ctx, procs, f"on {ctx.target}")


def _host_encoded(ctx: Context) -> None:
    _encoded(ctx, ctx.query("process.encoded_commands", host_name=ctx.target), f"on {ctx.target}")


def _host_alerts(ctx: Context) -> None:
    alerts = ctx.query("alerts.list_alerts")
    if len(alerts) and "DvcHostname" in alerts:
        alerts = alerts[alerts["DvcHostname"].map(_short) == _short(ctx.target)]
    elif len(alerts):  # no host column (Sentinel's SecurityAlert): the host named anywhere in the alert
        name = _short(ctx.target).lower()
        text = alerts.astype(str).agg(" ".join, axis=1).str.lower()
        alerts = alerts[text.str.contains(name, regex=False)]
    _alerts(ctx, alerts, f"on {ctx.target}")


def _host_network(ctx: Context) -> None:
    import pandas as pd

    ips = _host_addresses(ctx, ctx.target)
    ctx.state["ips"] = ips
    frames = [ctx.query("network.host_connections", host_name=ctx.target)]
    frames += [ctx.query("network.ip_connections", ip_address=ip) for ip in ips[:3]]
    conns = (
        pd.concat([f for f in frames if len(f)], ignore_index=True)
        if any(len(f) for f in frames)
        else frames[0]
    )
    where = f"of {ctx.target}" + (f" ({', '.join(ips)})" if ips else "")
    _peers(ctx, conns, where)


def _host_anomalies(ctx: Context) -> None:
    ips = ctx.state.get("ips") or _host_addresses(ctx, ctx.target)
    if not ips:
        ctx.note(f"anomalies: no address of {ctx.target} known (pass ips=[...])")
        return
    for ip in ips[:3]:
        _traffic(ctx, ip)


HOST = Investigation(
    "host",
    "host",
    "What happened on a host: logons, failures, processes, encoded commands, alerts and Sigma hits, "
    "network peers and traffic anomalies",
    (
        Part(
            "logons", "Logons by account, source and outcome", ("authentication.host_logons",), _host_logons
        ),
        Part(
            "failures",
            "Failed logons by source (spraying)",
            ("authentication.failed_logons",),
            _host_failures,
        ),
        Part(
            "processes", "Processes by image, rare ones first", ("process.host_processes",), _host_processes
        ),
        Part(
            "encoded",
            "Encoded commands, decoded, and their IoCs",
            ("process.encoded_commands",),
            _host_encoded,
        ),
        Part("alerts", "Alerts of the host", ("alerts.list_alerts",), _host_alerts),
        Part("sigma", "Bundled Sigma rules (LocalStore)", (), lambda ctx: _sigma(ctx, ctx.target)),
        Part(
            "network",
            "Network peers of the host's addresses",
            ("authentication.account_logons", "network.host_connections", "network.ip_connections"),
            _host_network,
        ),
        Part(
            "anomalies",
            "Hourly traffic of the host's addresses and the hours that stand out",
            ("authentication.account_logons", "network.hourly_traffic"),
            _host_anomalies,
        ),
    ),
)


# ---------------------------------------------------------------------------------------------------------
# Account


def _account_logons(ctx: Context) -> None:
    logons = ctx.query("authentication.account_logons", account_name=ctx.target)
    _logon_summary(ctx, logons, f"of {ctx.target}")
    if len(logons) and "SrcIpAddr" in logons:
        ok = logons[logons["EventResult"] == "Success"]
        counts = ok.groupby(["DvcHostname", "SrcIpAddr"], dropna=False).size()
        rare = counts[counts <= int(ctx.options.get("rare_count", 3))].reset_index(name="Logons")
        _finding(
            ctx,
            f"Rare logon sources of {ctx.target}",
            severity="medium" if rare["SrcIpAddr"].map(_public).any() else "info",
            summary=f"{len(rare):,} (host, source) pairs seen at most {ctx.options.get('rare_count', 3)} "
            "times.",
            entities=_entities("IpAddress", rare["SrcIpAddr"].dropna()),
        ).add_table(rare, "")


def _account_processes(ctx: Context) -> None:
    procs = ctx.query("process.account_processes", account_name=ctx.target)
    _process_summary(ctx, procs, f"of {ctx.target}")


def _account_encoded(ctx: Context) -> None:
    procs = ctx.query("process.encoded_commands")
    want = _user(ctx.target)
    if len(procs):
        mine = procs[["ActorUsername", "TargetUsername"]].map(
            lambda v: isinstance(v, str) and _user(v) == want
        )
        procs = procs[mine.any(axis=1)]
    _encoded(ctx, procs, f"run by {ctx.target}")


ACCOUNT = Investigation(
    "account",
    "account",
    "Where and when an account logged on, its failures and rare sources, its processes and encoded "
    "commands, and whether it was sprayed",
    (
        Part(
            "logons",
            "Logons by host, source and outcome; rare sources",
            ("authentication.account_logons",),
            _account_logons,
        ),
        Part(
            "spray",
            "Password spraying that included the account",
            ("authentication.password_spray",),
            _account_spray,
        ),
        Part(
            "processes",
            "Processes by image, rare ones first",
            ("process.account_processes",),
            _account_processes,
        ),
        Part(
            "encoded",
            "Encoded commands of the account, decoded",
            ("process.encoded_commands",),
            _account_encoded,
        ),
    ),
)


# ---------------------------------------------------------------------------------------------------------
# IP address


def _ip_context(ctx: Context) -> None:
    from huntbook import enrich

    geo, tags = enrich.geoip([ctx.target]), enrich.hosting([ctx.target])
    row = {**geo.iloc[0].to_dict(), **tags.iloc[0].to_dict()}
    facts = {
        k: row.get(k)
        for k in ("country_code", "city", "asn", "asn_name", "category", "provider")
        if row.get(k)
    }
    _finding(
        ctx,
        f"Context of {ctx.target}",
        summary=(
            "An internet address."
            if _public(ctx.target)
            else "Not an internet address (private, reserved or documentation range)."
        ),
        facts=facts,
        entities=_entities("IpAddress", [ctx.target]),
    ).add_table(geo.merge(tags, on="ip", how="left"), title="GeoIP and hosting tags (offline)")


def _ip_whois(ctx: Context) -> None:
    from huntbook import enrich

    _finding(ctx, f"Registration (RDAP) of {ctx.target}").add_table(enrich.whois([ctx.target]))


def _ti_providers(ctx: Context) -> builtins.list[str]:
    given = ctx.options.get("ti_providers")
    if given:
        return [given] if isinstance(given, str) else [*given]
    config = getattr(ctx.qp, "config", None)
    feeds = (getattr(config, "providers", {}) or {}).get("local_feeds", {})
    settings = (ctx.options.get("ti_settings") or {}).get("local_feeds", {})
    return ["local_feeds"] if feeds.get("paths") or settings.get("paths") else []


def _ti(ctx: Context, values: Sequence[str]) -> None:
    from huntbook import ti

    providers = _ti_providers(ctx)
    if not providers:
        ctx.note("ti: skipped, no provider configured (providers.local_feeds.paths, or ti_providers=[...])")
        return
    results = ti.lookup(
        [*values],
        providers,
        settings=ctx.options.get("ti_settings"),
        config=getattr(ctx.qp, "config", None),
        cache=False,
        progress=False,
    )
    verdicts = ti.rollup(results)
    flagged = verdicts[verdicts["flagged_by"] != ""]
    _finding(
        ctx,
        "Threat intelligence",
        severity="high" if len(flagged) else "info",
        summary=f"{len(verdicts):,} IoCs looked up with {', '.join(providers)}; {len(flagged):,} flagged.",
    ).add_table(verdicts)


def _ip_connections(ctx: Context) -> None:
    _peers(ctx, ctx.query("network.ip_connections", ip_address=ctx.target), f"of {ctx.target}")


def _ip_logons(ctx: Context) -> None:
    logons = ctx.query("authentication.logons_from_ip", ip_address=ctx.target)
    _logon_summary(ctx, logons, f"from {ctx.target}")


def _ip_sessions(ctx: Context) -> None:
    logons = ctx.state.get("logons")
    if logons is None:
        logons = ctx.query("authentication.logons_from_ip", ip_address=ctx.target)
    _sessions_processes(ctx, logons, f"opened from {ctx.target}")


IP = Investigation(
    "ip",
    "IP address",
    "An IP address: GeoIP, ownership and TI, the hosts that talked to it, its traffic over time, the "
    "logons from it and what their sessions ran, its alerts",
    (
        Part("context", "GeoIP and hosting tags (offline)", (), _ip_context),
        Part("whois", "RDAP registration (online)", (), _ip_whois, default=False),
        Part("ti", "Threat intelligence (configured providers only)", (), lambda ctx: _ti(ctx, [ctx.target])),
        Part("connections", "Hosts that talked to it", ("network.ip_connections",), _ip_connections),
        Part(
            "traffic", "Traffic per hour", ("network.hourly_traffic",), lambda ctx: _traffic(ctx, ctx.target)
        ),
        Part("logons", "Logons from it", ("authentication.logons_from_ip",), _ip_logons),
        Part(
            "sessions",
            "What the logon sessions it opened ran",
            ("authentication.logons_from_ip", "process.logon_session_processes"),
            _ip_sessions,
        ),
        Part(
            "alerts",
            "Alerts naming it",
            ("alerts.alerts_for_ip",),
            lambda ctx: _alerts(
                ctx, ctx.query("alerts.alerts_for_ip", ip_address=ctx.target), f"for {ctx.target}"
            ),
        ),
    ),
    label="IP address",
)


# ---------------------------------------------------------------------------------------------------------
# Logon sessions


def _rare_sessions(ctx: Context) -> None:
    from huntbook import proctree, sessions

    procs = ctx.query("process.host_processes", host_name=ctx.target)
    keyed = procs[
        procs["ActorSessionId"].notna() & (procs["ActorSessionId"].astype(str).str.lower() != "0x3e7")
    ]
    if keyed.empty:
        _finding(ctx, f"Rare logon sessions on {ctx.target}", summary="No user logon session with processes.")
        return
    grouped = sessions.sessionize(keyed, by=["ActorSessionId"], gap=ctx.options.get("gap", "12h"))
    ranked = sessions.score(grouped, "session", "TargetProcessName", time_column="TimeGenerated")
    owners = grouped.groupby("session").agg(
        LogonId=("ActorSessionId", "first"),
        Account=("ActorUsername", "first"),
        Start=("TimeGenerated", "min"),
    )
    ranked = ranked.join(owners, on="session")
    logons = ctx.query("authentication.host_logons", host_name=ctx.target)
    if "TargetSessionId" in logons and len(logons):
        sources = (
            logons[logons["EventResult"] == "Success"]
            .assign(LogonId=lambda f: f["TargetSessionId"].astype(str).str.lower())
            .drop_duplicates("LogonId")
            .set_index("LogonId")[["SrcIpAddr", "LogonType"]]
        )
        ranked = ranked.assign(key=ranked["LogonId"].astype(str).str.lower()).join(sources, on="key")
        ranked = ranked.drop(columns="key")
    ranked = ranked.reset_index(drop=True)
    top = ranked.head(int(ctx.options.get("top", 3)))
    public = top[top["SrcIpAddr"].map(_public)] if "SrcIpAddr" in top else top.head(0)
    finding = _finding(
        ctx,
        f"Rare logon sessions on {ctx.target}",
        severity="medium" if len(public) else "info",
        summary=f"{len(ranked):,} logon sessions scored by a Markov model of their process sequences "
        "(lowest score = rarest); the process trees of the rarest follow.",
        entities=_entities("Account", top["Account"].dropna())
        + _entities("IpAddress", public.get("SrcIpAddr", [])),
    )
    finding.add_table(_rounded(ranked).head(20), procs.attrs.get("query"))
    tree = proctree.build(procs)
    for row in top.itertuples(index=False):
        mine = tree[(tree["ActorSessionId"] == row.LogonId) & ~tree["inferred"]]
        if mine.empty:
            continue
        whole = proctree.tree_of(tree, mine.iloc[0]["proc_key"])
        shown = [
            c
            for c in ("TimeGenerated", "depth", "path", "ActorUsername", "TargetProcessCommandLine")
            if c in whole
        ]
        finding.add_table(
            whole[shown], "", title=f"Process tree of logon session {row.LogonId} ({row.Account})"
        )
    hits = grouped[grouped["ActorSessionId"].isin(top["LogonId"])]
    from huntbook import decode

    encoded = hits[decode.add_decoded(hits, "TargetProcessCommandLine", name="Decoded")["Decoded"].notna()]
    if len(encoded):
        _encoded(ctx, encoded, f"in the rarest logon sessions on {ctx.target}")


LOGON_SESSIONS = Investigation(
    "logon_sessions",
    "host",
    "The rarest logon sessions on a host (by their process sequences), their sources, process trees and "
    "decoded commands",
    (
        Part(
            "rarity",
            "Sessions scored by rarity, with their process trees",
            ("process.host_processes", "authentication.host_logons"),
            _rare_sessions,
        ),
    ),
)


# ---------------------------------------------------------------------------------------------------------
# Network flows


def _addresses(ctx: Context) -> builtins.list[str]:
    try:
        ipaddress.ip_address(ctx.target)
    except ValueError:
        if "ips" not in ctx.state:
            ctx.state["ips"] = _host_addresses(ctx, ctx.target)
        return [str(v) for v in ctx.state["ips"]]
    return [ctx.target]


def _flows(ctx: Context) -> None:
    import pandas as pd

    ips = _addresses(ctx)
    frames = [ctx.query("network.ip_connections", ip_address=ip) for ip in ips[:3]]
    conns = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    ctx.state["conns"] = conns
    if conns.empty:
        ctx.note(
            f"flows: no network session of {ctx.target}"
            + ("" if ips else " (no address known; pass ips=[...])")
        )
        return
    _peers(ctx, conns, f"of {ctx.target} ({', '.join(ips)})")


def _beacons(ctx: Context) -> None:
    from huntbook import timeseries

    conns = ctx.state.get("conns")
    if conns is None or conns.empty:
        return
    found = timeseries.beacons(conns, min_connections=int(ctx.options.get("min_connections", 20)), top=10)
    _finding(
        ctx,
        f"Beaconing of {ctx.target}",
        severity="medium" if len(found) else "info",
        summary="Source/destination pairs ranked by how regular their connection intervals and sizes are.",
        techniques=["T1071"] if len(found) else [],
        entities=_entities("IpAddress", found.get("DstIpAddr", [])),
    ).add_table(_rounded(found))


def _network_traffic(ctx: Context) -> None:
    for address in _addresses(ctx)[:3]:
        _traffic(ctx, address)


def _top_destinations(ctx: Context) -> None:
    top = ctx.query("network.top_destinations", limit=int(ctx.options.get("limit", 10)))
    _finding(ctx, "Top external destinations (whole network)").add_table(top, top.attrs.get("query"))


NETWORK = Investigation(
    "network",
    "host or IP address",
    "Network flows of a host or an address: peers, ports and bytes, beaconing, traffic over time, and "
    "the network's top destinations",
    (
        Part(
            "flows",
            "Sessions by peer, port and protocol",
            ("network.ip_connections", "authentication.account_logons"),
            _flows,
        ),
        Part("beacons", "Regular (beacon-like) pairs", ("network.ip_connections",), _beacons),
        Part(
            "traffic",
            "Traffic per hour and the hours that stand out",
            ("network.hourly_traffic", "authentication.account_logons"),
            _network_traffic,
        ),
        Part("top", "Top external destinations", ("network.top_destinations",), _top_destinations),
    ),
)


# ---------------------------------------------------------------------------------------------------------
# URL or domain

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def _domain(target: str) -> str:
    from urllib.parse import urlsplit

    return (urlsplit(target).hostname or "") if _SCHEME.match(target) else target.strip().lower().rstrip(".")


def _url_dns(ctx: Context) -> None:
    domain = _domain(ctx.target)
    queries = ctx.query("dns.domain_queries", domain=domain)
    answers = sorted(
        {
            a
            for v in queries.get("DnsResponseName", [])
            if isinstance(v, str)
            for a in v.split(";")
            if _ip_text(a)
        }
    )
    ctx.state["answers"] = answers
    table = _grouped(queries, ["SrcIpAddr", "DnsQuery"])
    _finding(
        ctx,
        f"DNS queries for {domain}",
        severity="low" if len(queries) else "info",
        summary=f"{len(queries):,} queries from {len(table):,} clients; it resolved to "
        f"{', '.join(answers) or 'nothing'}.",
        entities=_entities("Dns", [domain]) + _entities("IpAddress", answers),
    ).add_table(table, queries.attrs.get("query"))


def _ip_text(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip())
    except ValueError:
        return False
    return True


def _url_commands(ctx: Context) -> None:
    from huntbook import decode

    domain = _domain(ctx.target)
    plain = (
        ctx.query("process.url_command_lines", url=ctx.target)
        if _SCHEME.match(ctx.target) and "process.url_command_lines" in set(ctx.qp.list_queries())
        else ctx.query("process.command_line_search", pattern=domain)
    )
    encoded = ctx.query("process.encoded_commands")
    if len(encoded):
        decoded = decode.add_decoded(encoded, "TargetProcessCommandLine", name="Decoded")
        names = [domain, *ctx.state.get("answers", [])]
        text = decoded["Decoded"].fillna("").str.lower()
        encoded = encoded[[any(n in t for n in names) for t in text]]
    shown = [
        c for c in ("TimeGenerated", "DvcHostname", "ActorUsername", "TargetProcessCommandLine") if c in plain
    ]
    _finding(
        ctx,
        f"Command lines naming {domain}",
        severity="medium" if len(plain) else "info",
        summary=f"{len(plain):,} command lines name it in plain text.",
        entities=_entities("Host", plain.get("DvcHostname", [])),
    ).add_table(plain[shown] if shown else plain, plain.attrs.get("query"))
    _encoded(ctx, encoded, f"that decode to {' or '.join(names)}")


def _url_whois(ctx: Context) -> None:
    from huntbook import enrich

    _finding(ctx, f"Registration (RDAP) of {_domain(ctx.target)}").add_table(
        enrich.whois([_domain(ctx.target)])
    )


def _url_ti(ctx: Context) -> None:
    _ti(ctx, [ctx.target, *([_domain(ctx.target)] if _SCHEME.match(ctx.target) else [])])


URL = Investigation(
    "url",
    "URL or domain",
    "A URL or a domain: who resolved it and to what, the command lines (plain or encoded) that name it, "
    "threat intelligence",
    (
        Part("dns", "DNS queries and answers", ("dns.domain_queries",), _url_dns),
        Part(
            "processes",
            "Command lines naming it, encoded ones decoded",
            ("process.command_line_search", "process.encoded_commands"),
            _url_commands,
        ),
        Part("ti", "Threat intelligence (configured providers only)", (), _url_ti),
        Part(
            "whois",
            "RDAP registration of the domain (online)",
            (),
            _url_whois,
            default=False,
        ),
    ),
    label="URL/domain",
)


#: Every investigation by name.
INVESTIGATIONS: Mapping[str, Investigation] = {
    i.name: i for i in (HOST, ACCOUNT, IP, LOGON_SESSIONS, NETWORK, URL)
}
host = HOST
account = ACCOUNT
ip = IP
logon_sessions = LOGON_SESSIONS
network = NETWORK
url = URL


def run(kind: str, qp: Any, target: str, start: Any = "-7d", end: Any = "now", **options: Any) -> Findings:
    """Run the investigation named ``kind`` (``host``, ``account``, ``ip`` ...): :class:`Investigation`."""
    key = kind.strip().lower().replace("-", "_")
    key = {"logon_session": "logon_sessions", "domain": "url", "address": "ip"}.get(key, key)
    if key not in INVESTIGATIONS:
        raise ParameterError(f"no investigation {kind!r}", hint=f"one of {', '.join(INVESTIGATIONS)}")
    return INVESTIGATIONS[key](qp, target, start, end, **options)


def list() -> pd.DataFrame:
    """One row per investigation: name, target type, description, parts (off-by-default ones marked),
    the catalogue queries they need."""
    import pandas as pd

    rows = [
        {
            "name": i.name,
            "target": i.target,
            "description": i.description,
            "parts": ", ".join(p.name + ("" if p.default else " (off)") for p in i.parts),
            "queries": ", ".join(dict.fromkeys(q for p in i.parts for q in p.queries)),
        }
        for i in INVESTIGATIONS.values()
    ]
    return pd.DataFrame(rows, columns=["name", "target", "description", "parts", "queries"])
