"""From raw records to the LocalStore's tables, in DuckDB SQL.

Every record arrives as JSON object text (``raw``). For each source format a :class:`Layout`
names the JSON paths of the fields huntbook understands; one ``json_extract_string`` call per
record pulls them all (one parse), into a table of plain columns (``x``). The per-table mappings
below turn those columns into the ASIM-named tables of :mod:`huntbook.schema`. The mappings
are format-independent: a Windows 4688 reads the same whether it came from EVTX, Mordor JSON,
NXLog, Winlogbeat or a Log Analytics CSV export.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Final

from huntbook.schema import TABLES

__all__ = ["MACROS", "Layout", "extract_sql", "layout_for", "table_sql"]

# SQL helpers installed on the ingest connection.
MACROS: Final = """
CREATE OR REPLACE TEMP MACRO hb_nz(x) AS NULLIF(NULLIF(trim(CAST(x AS VARCHAR)), '-'), '');
CREATE OR REPLACE TEMP MACRO hb_int(x) AS TRY_CAST(hb_nz(x) AS INTEGER);
CREATE OR REPLACE TEMP MACRO hb_big(x) AS TRY_CAST(TRY_CAST(hb_nz(x) AS DOUBLE) AS BIGINT);
CREATE OR REPLACE TEMP MACRO hb_account(dom, usr) AS CASE
    WHEN hb_nz(usr) IS NULL THEN NULL
    WHEN hb_nz(dom) IS NULL OR contains(usr, '\\') THEN hb_nz(usr)
    ELSE hb_nz(dom) || '\\' || hb_nz(usr) END;
CREATE OR REPLACE TEMP MACRO hb_epoch(d) AS CASE
    WHEN d BETWEEN 1e8 AND 1e11 THEN to_timestamp(d)
    WHEN d BETWEEN 1e11 AND 1e14 THEN to_timestamp(d / 1000) END;
CREATE OR REPLACE TEMP MACRO hb_time(x) AS COALESCE(
    TRY_CAST(x AS TIMESTAMPTZ),
    hb_epoch(TRY_CAST(x AS DOUBLE)),
    CAST(try_strptime(x, ['%m/%d/%Y, %I:%M:%S.%g %p', '%m/%d/%Y, %I:%M:%S %p', '%m/%d/%Y %I:%M:%S %p',
                          '%m/%d/%Y %H:%M:%S', '%d/%m/%Y %H:%M:%S', '%Y-%m-%dT%H:%M:%S.%f%z',
                          '%Y-%m-%d %H:%M:%S.%f %Z']) AS TIMESTAMPTZ));
CREATE OR REPLACE TEMP MACRO hb_eid(x) AS COALESCE(
    TRY_CAST(x AS INTEGER), TRY_CAST(json_extract_string(TRY_CAST(x AS JSON), '$."#text"') AS INTEGER));
CREATE OR REPLACE TEMP MACRO hb_proto(x) AS CASE hb_nz(x)
    WHEN '6' THEN 'TCP' WHEN '17' THEN 'UDP' WHEN '1' THEN 'ICMP' WHEN '58' THEN 'ICMPV6'
    ELSE upper(hb_nz(x)) END;
CREATE OR REPLACE TEMP MACRO hb_hash(h, k) AS NULLIF(regexp_extract(h, k || '=([0-9A-Fa-f]+)', 1), '');
"""

# Windows EventData fields the mappings read. Logical name -> path under the data object,
# when the two differ.
_WINDOWS_FIELDS: Final = (
    # 4688 / 4689 / logon subjects and targets
    "SubjectUserSid SubjectUserName SubjectDomainName SubjectLogonId NewProcessId NewProcessName "
    "TokenElevationType ProcessId ProcessName CommandLine TargetUserSid TargetUserName TargetDomainName "
    "TargetLogonId ParentProcessName MandatoryLabel "
    # logons
    "LogonType LogonProcessName AuthenticationPackageName WorkstationName IpAddress IpPort Status SubStatus "
    "TargetServerName "
    # Sysmon
    "ProcessGuid Image CurrentDirectory User LogonId IntegrityLevel Hashes ParentProcessGuid ParentProcessId "
    "ParentImage ParentCommandLine ParentUser Protocol Initiated SourceIp SourcePort DestinationIp "
    "DestinationPort DestinationHostname QueryName QueryStatus QueryResults "
    # 5156 / 5157 (Windows Filtering Platform)
    "Application Direction SourceAddress DestAddress DestPort"
).split()

# Names that differ between the EVTX EventData and the flattened (NXLog/Mordor/LA) forms.
# 5156 writes the process id as ``ProcessID``; NXLog flattening keeps that key for its own
# logger pid and renames the event's one to ``ProcessId``.
_EVTX_ONLY: Final = {"WfpProcessId": "ProcessID"}
_FLAT_ONLY: Final = {"WfpProcessId": "ProcessId"}

_TIME_KEYS: Final = (
    "@timestamp",
    "TimeGenerated",
    "TimeGenerated [UTC]",
    "timestamp",
    "Timestamp",
    "EventTime",
    "time",
    "_time",
    "ts",
    "UtcTime",
    "TimeCreated",
    "date",
)

_ZEEK_FIELDS: Final = {
    "ts": "ts",
    "uid": "uid",
    "_path": "_path",
    "stream": '"@stream"',
    "system": '"@system"',
    "orig_h": '"id.orig_h"',
    "orig_p": '"id.orig_p"',
    "resp_h": '"id.resp_h"',
    "resp_p": '"id.resp_p"',
    "orig_h_": "id_orig_h",
    "orig_p_": "id_orig_p",
    "resp_h_": "id_resp_h",
    "resp_p_": "id_resp_p",
    "orig_h_n": "id.orig_h",  # nested {"id": {"orig_h": ...}}
    "orig_p_n": "id.orig_p",
    "resp_h_n": "id.resp_h",
    "resp_p_n": "id.resp_p",
    "proto": "proto",
    "service": "service",
    "duration": "duration",
    "orig_bytes": "orig_bytes",
    "resp_bytes": "resp_bytes",
    "orig_pkts": "orig_pkts",
    "resp_pkts": "resp_pkts",
    "conn_state": "conn_state",
    "local_orig": "local_orig",
    "query": "query",
    "qtype_name": "qtype_name",
    "rcode_name": "rcode_name",
    "answers": "answers",
}

_SURICATA_FIELDS: Final = {
    "timestamp": "timestamp",
    "event_type": "event_type",
    "flow_id": "flow_id",
    "host": "host",
    "src_ip": "src_ip",
    "src_port": "src_port",
    "dest_ip": "dest_ip",
    "dest_port": "dest_port",
    "proto": "proto",
    "app_proto": "app_proto",
    "direction": "direction",
    "sig_action": "alert.action",
    "sig_id": "alert.signature_id",
    "sig_name": "alert.signature",
    "sig_category": "alert.category",
    "sig_severity": "alert.severity",
    "flow_bytes_ts": "flow.bytes_toserver",
    "flow_bytes_tc": "flow.bytes_toclient",
    "flow_pkts_ts": "flow.pkts_toserver",
    "flow_pkts_tc": "flow.pkts_toclient",
    "flow_start": "flow.start",
    "flow_end": "flow.end",
    "flow_state": "flow.state",
    "nf_bytes": "netflow.bytes",
    "nf_pkts": "netflow.pkts",
    "nf_start": "netflow.start",
    "nf_end": "netflow.end",
    "dns_type": "dns.type",
    "dns_rrname": "dns.rrname",
    "dns_rrtype": "dns.rrtype",
    "dns_rcode": "dns.rcode",
    "dns_q_rrname": "dns.queries[0].rrname",
    "dns_q_rrtype": "dns.queries[0].rrtype",
    "dns_answers": "dns.answers",
}


@dataclass(frozen=True)
class Layout:
    """How to read one format: JSON paths of fields, and SQL for the ``events`` columns."""

    fmt: str
    family: str  # windows | zeek | suricata
    paths: dict[str, str]  # column name in x -> JSON path
    time: str
    event_id: str
    channel: str
    provider: str
    computer: str
    extra: dict[str, str] = field(default_factory=dict)  # more derived columns of x


def _q(key: str) -> str:
    """A JSON path step for ``key`` (quoted when it is not a plain identifier)."""
    return key if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else '"' + key.replace('"', '\\"') + '"'


def _coalesce(*cols: str) -> str:
    return f"COALESCE({', '.join(cols)})" if len(cols) > 1 else cols[0]


def _windows(fmt: str, system: dict[str, str], data_prefix: str, overrides: dict[str, str]) -> Layout:
    paths = {f"d_{name}": f"{data_prefix}.{_q(name)}" for name in _WINDOWS_FIELDS}
    paths.update({f"d_{name}": f"{data_prefix}.{_q(key)}" for name, key in overrides.items()})
    paths.update(system)
    times = [k for k in system if k.startswith("t_")]
    return Layout(
        fmt=fmt,
        family="windows",
        paths=paths,
        time=_coalesce(*(f"hb_time({t})" for t in times)),
        event_id="hb_eid(s_eid)",
        channel="hb_nz(s_channel)",
        provider=_coalesce(*(k for k in system if k.startswith("s_provider"))),
        computer=_coalesce(*(f"hb_nz({k})" for k in system if k.startswith("s_computer"))),
    )


def _flat_windows(fmt: str) -> Layout:
    system = {f"t_{i}": f"$.{_q(k)}" for i, k in enumerate(_TIME_KEYS)}
    system.update(
        {
            "s_eid": "$.EventID",
            "s_channel": "$.Channel",
            "s_provider": "$.SourceName",
            "s_provider2": "$.EventSourceName",
            "s_provider3": "$.ProviderName",
            "s_provider4": "$.Provider",
            "s_computer": "$.Hostname",
            "s_computer2": "$.Computer",
            "s_computer3": "$.hostname",
            "s_computer4": "$.host.name",
        }
    )
    return _windows(fmt, system, "$", _FLAT_ONLY)


def layout_for(fmt: str, source_name: str = "", variant: str | None = None) -> Layout:
    """The :class:`Layout` for a format.

    ``source_name`` names Zeek logs that carry no ``_path``; ``variant`` is what the store read
    from the source's head: the ``#path`` of a Zeek TSV log, or ``"legacy"`` for Winlogbeat 6.x
    (top-level ``event_data``, ``event_id``, ``log_name``, ``computer_name``). Layouts are
    shared between calls: do not change them.
    """
    if fmt in ("zeek_json", "zeek_tsv"):
        return _layout(fmt, variant or _zeek_path_from_name(source_name))
    return _layout(fmt, variant)


@functools.cache
def _layout(fmt: str, variant: str | None) -> Layout:
    """The layout of ``fmt``; ``variant`` is the Winlogbeat variant or the Zeek log name."""
    if fmt in ("evtx", "evtx_json"):
        system = {
            "t_sys": '$.Event.System.TimeCreated."#attributes".SystemTime',
            "s_eid": "$.Event.System.EventID",
            "s_channel": "$.Event.System.Channel",
            "s_provider": '$.Event.System.Provider."#attributes".Name',
            "s_computer": "$.Event.System.Computer",
        }
        return _windows(fmt, system, "$.Event.EventData", _EVTX_ONLY)
    if fmt == "winlogbeat":
        base = "$" if variant == "legacy" else "$.winlog"
        system = {
            "t_ts": '$."@timestamp"',
            "s_eid": f"{base}.event_id",
            "s_channel": f"{base}.channel" if variant != "legacy" else "$.log_name",
            "s_provider": f"{base}.provider_name" if variant != "legacy" else "$.source_name",
            "s_computer": f"{base}.computer_name",
            "s_computer2": "$.host.name",
        }
        return _windows(fmt, system, f"{base}.event_data", _EVTX_ONLY)
    if fmt in ("zeek_json", "zeek_tsv"):
        paths = {k: f"$.{v}" for k, v in _ZEEK_FIELDS.items()}
        log = f"COALESCE(hb_nz(_path), hb_nz(stream), {_sql_str(variant)})"
        return Layout(
            fmt=fmt,
            family="zeek",
            paths=paths,
            time="hb_time(ts)",
            event_id="CAST(NULL AS INTEGER)",
            channel=log,
            provider="'Zeek'",
            computer="hb_nz(system)",
        )
    if fmt == "suricata":
        paths = {k: f"$.{v}" for k, v in _SURICATA_FIELDS.items()}
        return Layout(
            fmt=fmt,
            family="suricata",
            paths=paths,
            time="hb_time(timestamp)",
            event_id="CAST(NULL AS INTEGER)",
            channel="hb_nz(event_type)",
            provider="'Suricata'",
            computer="hb_nz(host)",
        )
    return _flat_windows(fmt)


_ZEEK_LOGS: Final = (
    "conn dns http ssl x509 files smb_files smb_mapping dce_rpc kerberos ntlm rdp ssh ftp smtp notice weird "
    "dpd pe software known_hosts known_services known_certs ldap ldap_search modbus ntp ocsp rfb sip snmp "
    "socks syslog tunnel analyzer capture_loss packet_filter loaded_scripts stats reporter dhcp radius mysql "
    "irc"
).split()


def _zeek_path_from_name(name: str) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit("!", 1)[-1].lower()
    stem = base.split(".", 1)[0]
    for log in sorted(_ZEEK_LOGS, key=len, reverse=True):
        if stem == log or stem.endswith("_" + log) or stem.endswith("-" + log):
            return log
    return None


def _sql_str(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


_SINGLE_KEY = re.compile(r'^\$\.(?:"((?:[^"\\]|\\.)*)"|([A-Za-z_][A-Za-z0-9_]*))$')


def _top_key(path: str) -> str | None:
    """The key of a one-step JSON path (``$.a`` or ``$."a.b"``), else None."""
    m = _SINGLE_KEY.match(path)
    if not m:
        return None
    return m.group(2) if m.group(2) is not None else m.group(1).replace('\\"', '"')


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def extract_sql(layout: Layout, source: str, columns: list[str] | None = None) -> str:
    """SELECT producing ``x``: ``EventKey``, the ``events`` columns and every field of the layout.

    ``source`` has ``SourceFile``, ``SourceOffset`` and either ``raw`` (JSON text; ``columns`` is
    None) or the record's own ``columns`` (tabular sources: fields are read from the columns
    directly and ``raw`` is built from all of them).
    """
    names = list(layout.paths)
    if columns is None:
        # One parse for the record's own fields; a second one, for the event-data fields, only for
        # the event ids the table mappings read (most Windows records are of other ids).
        head = [n for n in names if not n.startswith("d_")]
        data = [n for n in names if n.startswith("d_")]
        inner = (
            f"SELECT SourceFile, SourceOffset, raw, {_unpack('v', head)} FROM (SELECT SourceFile, "
            f"SourceOffset, raw, json_extract_string(raw, [{_paths(layout, head)}]) AS v FROM {source})"
        )
        if data:
            wanted = ", ".join(str(i) for i in sorted(MAPPED_EVENT_IDS))
            inner = (
                f"SELECT * EXCLUDE (w), {_unpack('w', data)} FROM (SELECT *, CASE WHEN {layout.event_id} "
                f"IN ({wanted}) THEN json_extract_string(raw, [{_paths(layout, data)}]) END AS w "
                f"FROM ({inner}))"
            )
    else:
        present = set(columns)
        fields = []
        for n in names:
            key = _top_key(layout.paths[n])
            ref = f"CAST({_ident(key)} AS VARCHAR)" if key is not None and key in present else "NULL"
            fields.append(f'{ref} AS "{n}"')
        pack = ", ".join(f"{_sql_str(c)}: {_ident(c)}" for c in columns)
        inner = (
            f"SELECT SourceFile, SourceOffset, CAST(to_json({{{pack}}}) AS VARCHAR) AS raw, "
            f"{', '.join(fields)} FROM {source}"
        )
    return (
        f"SELECT md5(raw) AS EventKey, *, {layout.time} AS TimeGenerated, "
        f"{layout.event_id} AS EventID, "
        f"{layout.channel} AS Channel, {layout.provider} AS Provider, {layout.computer} AS Computer "
        f"FROM ({inner})"
    )


def _paths(layout: Layout, names: list[str]) -> str:
    return ", ".join(_sql_str(layout.paths[n]) for n in names)


def _unpack(column: str, names: list[str]) -> str:
    return ", ".join(f'{column}[{i + 1}] AS "{n}"' for i, n in enumerate(names))


def _select(table: str, exprs: dict[str, str], where: str) -> str:
    cols = []
    for col, typ in TABLES[table].items():
        expr = exprs.get(col, "NULL")
        cols.append(f'CAST({expr} AS {typ}) AS "{col}"')
    return f"SELECT {', '.join(cols)} FROM x WHERE {where}"


_SYSMON = "(Channel ILIKE '%sysmon%' OR Provider ILIKE '%sysmon%')"
_SECURITY = (
    "(Channel = 'Security' OR Provider = 'Microsoft-Windows-Security-Auditing' "
    "OR (Channel IS NULL AND Provider IS NULL))"
)

_BASE = {"TimeGenerated": "TimeGenerated", "EventKey": "EventKey", "DvcHostname": "Computer"}


def _win_product() -> str:
    return f"CASE WHEN {_SYSMON} THEN 'Sysmon' ELSE 'Security' END"


def _windows_tables() -> dict[str, list[str]]:
    base = {**_BASE, "EventProduct": _win_product(), "EventOriginalType": "CAST(EventID AS VARCHAR)"}
    subject = "hb_account(d_SubjectDomainName, d_SubjectUserName)"
    target = "hb_account(d_TargetDomainName, d_TargetUserName)"
    target_logon = (
        "CASE WHEN hb_nz(d_TargetLogonId) IN ('0x0', '0') THEN NULL ELSE hb_nz(d_TargetLogonId) END"
    )
    sec_proc = {
        **base,
        "TargetProcessId": "hb_nz(d_NewProcessId)",
        "TargetProcessCommandLine": "d_CommandLine",
        "TargetProcessTokenElevation": "hb_nz(d_TokenElevationType)",
        "TargetProcessIntegrityLevel": "hb_nz(d_MandatoryLabel)",
        "ActingProcessName": "hb_nz(d_ParentProcessName)",
        "ActingProcessId": "hb_nz(d_ProcessId)",
        "ActorUsername": subject,
        "ActorUserId": "hb_nz(d_SubjectUserSid)",
        "ActorSessionId": "lower(hb_nz(d_SubjectLogonId))",
        "TargetUsername": f"COALESCE({target}, {subject})",
        "TargetUserSessionId": f"lower(COALESCE({target_logon}, hb_nz(d_SubjectLogonId)))",
    }
    create_4688 = _select(
        "process_events",
        {**sec_proc, "EventType": "'ProcessCreated'", "TargetProcessName": "hb_nz(d_NewProcessName)"},
        f"EventID = 4688 AND {_SECURITY}",
    )
    exit_4689 = _select(
        "process_events",
        {
            **base,
            "EventType": "'ProcessTerminated'",
            "TargetProcessName": "hb_nz(d_ProcessName)",
            "TargetProcessId": "hb_nz(d_ProcessId)",
            "ActorUsername": subject,
            "ActorUserId": "hb_nz(d_SubjectUserSid)",
            "ActorSessionId": "lower(hb_nz(d_SubjectLogonId))",
            "TargetUsername": subject,
            "TargetUserSessionId": "lower(hb_nz(d_SubjectLogonId))",
        },
        f"EventID = 4689 AND {_SECURITY}",
    )
    sysmon_proc = {
        **base,
        "TargetProcessName": "hb_nz(d_Image)",
        "TargetProcessId": "hb_nz(d_ProcessId)",
        "TargetProcessGuid": "hb_nz(d_ProcessGuid)",
        "TargetUsername": "hb_nz(d_User)",
        "TargetUserSessionId": "lower(hb_nz(d_LogonId))",
    }
    create_sysmon = _select(
        "process_events",
        {
            **sysmon_proc,
            "EventType": "'ProcessCreated'",
            "TargetProcessCommandLine": "d_CommandLine",
            "TargetProcessCurrentDirectory": "hb_nz(d_CurrentDirectory)",
            "TargetProcessIntegrityLevel": "hb_nz(d_IntegrityLevel)",
            "TargetProcessMD5": "hb_hash(d_Hashes, 'MD5')",
            "TargetProcessSHA1": "hb_hash(d_Hashes, 'SHA1')",
            "TargetProcessSHA256": "hb_hash(d_Hashes, 'SHA256')",
            "TargetProcessIMPHASH": "hb_hash(d_Hashes, 'IMPHASH')",
            "ActingProcessName": "hb_nz(d_ParentImage)",
            "ActingProcessId": "hb_nz(d_ParentProcessId)",
            "ActingProcessGuid": "hb_nz(d_ParentProcessGuid)",
            "ActingProcessCommandLine": "d_ParentCommandLine",
            "ActorUsername": "COALESCE(hb_nz(d_ParentUser), hb_nz(d_User))",
        },
        f"EventID = 1 AND {_SYSMON}",
    )
    exit_sysmon = _select(
        "process_events",
        {**sysmon_proc, "EventType": "'ProcessTerminated'", "ActorUsername": "hb_nz(d_User)"},
        f"EventID = 5 AND {_SYSMON}",
    )

    logon_common = {
        **base,
        "EventProduct": "'Security'",
        "TargetUsername": target,
        "TargetUserId": "hb_nz(d_TargetUserSid)",
        "TargetSessionId": "lower(hb_nz(d_TargetLogonId))",
        "ActorUsername": subject,
        "TargetHostname": "Computer",
    }
    logon_detail = {
        **logon_common,
        "LogonType": "hb_int(d_LogonType)",
        "LogonMethod": "COALESCE(hb_nz(d_AuthenticationPackageName), hb_nz(d_LogonProcessName))",
        "SrcIpAddr": "hb_nz(d_IpAddress)",
        "SrcPortNumber": "NULLIF(hb_int(d_IpPort), 0)",
        "SrcHostname": "hb_nz(d_WorkstationName)",
    }
    auth = [
        _select(
            "authentication",
            {**logon_detail, "EventType": "'Logon'", "EventResult": "'Success'"},
            f"EventID = 4624 AND {_SECURITY}",
        ),
        _select(
            "authentication",
            {
                **logon_detail,
                "EventType": "'Logon'",
                "EventResult": "'Failure'",
                "EventResultDetails": "COALESCE(NULLIF(lower(hb_nz(d_SubStatus)), '0x0'), "
                "lower(hb_nz(d_Status)))",
            },
            f"EventID = 4625 AND {_SECURITY}",
        ),
        _select(
            "authentication",
            {
                **logon_detail,
                "EventType": "'Logon'",
                "EventResult": "'NA'",  # 4648 logs the attempt with explicit credentials, not its outcome
                "TargetHostname": "COALESCE(hb_nz(d_TargetServerName), Computer)",
                "TargetSessionId": "lower(hb_nz(d_SubjectLogonId))",
            },
            f"EventID = 4648 AND {_SECURITY}",
        ),
        _select(
            "authentication",
            {
                **logon_common,
                "EventType": "'Logoff'",
                "EventResult": "'Success'",
                "LogonType": "hb_int(d_LogonType)",
            },
            f"EventID IN (4634, 4647) AND {_SECURITY}",
        ),
        _select(
            "authentication",
            {
                **base,
                "EventProduct": "'Security'",
                "EventType": "'Elevate'",
                "EventResult": "'Success'",
                "TargetUsername": subject,
                "TargetUserId": "hb_nz(d_SubjectUserSid)",
                "TargetSessionId": "lower(hb_nz(d_SubjectLogonId))",
                "TargetHostname": "Computer",
            },
            f"EventID = 4672 AND {_SECURITY}",
        ),
    ]
    network = [
        _select(
            "network_sessions",
            {
                **base,
                "EventType": "'EndpointNetworkSession'",
                "SrcIpAddr": "hb_nz(d_SourceIp)",
                "SrcPortNumber": "hb_int(d_SourcePort)",
                "DstIpAddr": "hb_nz(d_DestinationIp)",
                "DstPortNumber": "hb_int(d_DestinationPort)",
                "DstHostname": "hb_nz(d_DestinationHostname)",
                "NetworkProtocol": "hb_proto(d_Protocol)",
                "NetworkDirection": "CASE lower(d_Initiated) WHEN 'true' THEN 'Outbound' "
                "WHEN 'false' THEN 'Inbound' END",
                "SrcProcessName": "hb_nz(d_Image)",
                "SrcProcessId": "hb_nz(d_ProcessId)",
                "SrcUsername": "hb_nz(d_User)",
            },
            f"EventID = 3 AND {_SYSMON}",
        ),
        _select(
            "network_sessions",
            {
                **base,
                "EventType": "'EndpointNetworkSession'",
                "SrcIpAddr": "hb_nz(d_SourceAddress)",
                "SrcPortNumber": "hb_int(d_SourcePort)",
                "DstIpAddr": "hb_nz(d_DestAddress)",
                "DstPortNumber": "hb_int(d_DestPort)",
                "NetworkProtocol": "hb_proto(d_Protocol)",
                "NetworkDirection": "CASE d_Direction WHEN '%%14593' THEN 'Outbound' "
                "WHEN '%%14592' THEN 'Inbound' ELSE hb_nz(d_Direction) END",
                "DvcAction": "CASE EventID WHEN 5156 THEN 'Allow' ELSE 'Deny' END",
                "SrcProcessName": "hb_nz(d_Application)",
                "SrcProcessId": "hb_nz(d_WfpProcessId)",
            },
            f"EventID IN (5156, 5157) AND {_SECURITY}",
        ),
    ]
    dns = [
        _select(
            "dns",
            {
                **base,
                "DnsQuery": "hb_nz(d_QueryName)",
                "DnsResponseCodeName": "CASE hb_nz(d_QueryStatus) WHEN '0' THEN 'NOERROR' WHEN '9003' THEN "
                "'NXDOMAIN' ELSE hb_nz(d_QueryStatus) END",
                "DnsResponseName": "hb_nz(d_QueryResults)",
                "SrcProcessName": "hb_nz(d_Image)",
                "SrcProcessId": "hb_nz(d_ProcessId)",
            },
            f"EventID = 22 AND {_SYSMON}",
        )
    ]
    return {
        "process_events": [create_4688, exit_4689, create_sysmon, exit_sysmon],
        "authentication": auth,
        "network_sessions": network,
        "dns": dns,
    }


def _zeek_tables() -> dict[str, list[str]]:
    base = {**_BASE, "DvcHostname": "Computer", "EventProduct": "'Zeek'", "EventOriginalType": "Channel"}
    ends = {
        "SrcIpAddr": "COALESCE(orig_h, orig_h_, orig_h_n)",
        "SrcPortNumber": "hb_int(COALESCE(orig_p, orig_p_, orig_p_n))",
        "DstIpAddr": "COALESCE(resp_h, resp_h_, resp_h_n)",
        "DstPortNumber": "hb_int(COALESCE(resp_p, resp_p_, resp_p_n))",
        "NetworkProtocol": "upper(hb_nz(proto))",
    }
    conn = _select(
        "network_sessions",
        {
            **base,
            **ends,
            "EventType": "'Flow'",
            "NetworkSessionId": "hb_nz(uid)",
            "NetworkApplicationProtocol": "hb_nz(service)",
            "NetworkDirection": "CASE lower(local_orig) WHEN 'true' THEN 'Outbound' END",
            "NetworkDuration": "TRY_CAST(hb_nz(duration) AS DOUBLE) * 1000",
            "SrcBytes": "hb_big(orig_bytes)",
            "DstBytes": "hb_big(resp_bytes)",
            "SrcPackets": "hb_big(orig_pkts)",
            "DstPackets": "hb_big(resp_pkts)",
            "DvcAction": "hb_nz(conn_state)",
        },
        "Channel = 'conn'",
    )
    answers = (
        "CASE WHEN TRY_CAST(answers AS JSON) IS NOT NULL AND json_type(TRY_CAST(answers AS JSON)) = 'ARRAY' "
        "THEN array_to_string(CAST(TRY_CAST(answers AS JSON) AS VARCHAR[]), ';') ELSE hb_nz(answers) END"
    )
    dns = _select(
        "dns",
        {
            **base,
            **ends,
            "DnsQuery": "hb_nz(query)",
            "DnsQueryTypeName": "hb_nz(qtype_name)",
            "DnsResponseCodeName": "hb_nz(rcode_name)",
            "DnsResponseName": answers,
            "DnsSessionId": "hb_nz(uid)",
        },
        "Channel = 'dns'",
    )
    return {"network_sessions": [conn], "dns": [dns]}


def _suricata_tables() -> dict[str, list[str]]:
    base = {**_BASE, "EventProduct": "'Suricata'", "EventOriginalType": "Channel"}
    ends = {
        "SrcIpAddr": "hb_nz(src_ip)",
        "SrcPortNumber": "hb_int(src_port)",
        "DstIpAddr": "hb_nz(dest_ip)",
        "DstPortNumber": "hb_int(dest_port)",
        "NetworkProtocol": "upper(hb_nz(proto))",
    }
    flow = _select(
        "network_sessions",
        {
            **base,
            **ends,
            "EventType": "'Flow'",
            "NetworkSessionId": "hb_nz(flow_id)",
            "NetworkApplicationProtocol": "hb_nz(app_proto)",
            "NetworkDuration": "date_diff('millisecond', hb_time(COALESCE(flow_start, nf_start)), "
            "hb_time(COALESCE(flow_end, nf_end)))",
            "SrcBytes": "COALESCE(hb_big(flow_bytes_ts), hb_big(nf_bytes))",
            "DstBytes": "hb_big(flow_bytes_tc)",
            "SrcPackets": "COALESCE(hb_big(flow_pkts_ts), hb_big(nf_pkts))",
            "DstPackets": "hb_big(flow_pkts_tc)",
            "DvcAction": "hb_nz(flow_state)",
        },
        "Channel IN ('flow', 'netflow')",
    )
    alert = _select(
        "alerts",
        {
            **base,
            **ends,
            "AlertName": "hb_nz(sig_name)",
            "AlertId": "hb_nz(sig_id)",
            "AlertSeverity": "CASE hb_nz(sig_severity) WHEN '1' THEN 'High' WHEN '2' THEN 'Medium' "
            "WHEN '3' THEN 'Low' ELSE 'Informational' END",
            "AlertCategory": "hb_nz(sig_category)",
            "NetworkSessionId": "hb_nz(flow_id)",
            "DvcAction": "hb_nz(sig_action)",
        },
        "Channel = 'alert'",
    )
    dns = _select(
        "dns",
        {
            **base,
            **ends,
            "DnsQuery": "COALESCE(hb_nz(dns_rrname), hb_nz(dns_q_rrname))",
            "DnsQueryTypeName": "COALESCE(hb_nz(dns_rrtype), hb_nz(dns_q_rrtype))",
            "DnsResponseCodeName": "hb_nz(dns_rcode)",
            "DnsResponseName": "hb_nz(dns_answers)",
            "DnsSessionId": "hb_nz(flow_id)",
        },
        "Channel = 'dns'",
    )
    return {"network_sessions": [flow], "alerts": [alert], "dns": [dns]}


_TABLE_SQL: Final = {
    "windows": _windows_tables(),
    "zeek": _zeek_tables(),
    "suricata": _suricata_tables(),
}


#: Windows event ids whose event data the mappings read (derived from their WHERE clauses).
MAPPED_EVENT_IDS: Final = frozenset(
    int(n)
    for sqls in _TABLE_SQL["windows"].values()
    for sql in sqls
    for group in re.findall(r"WHERE EventID (?:= (\d+)|IN \(([\d, ]+)\))", sql)
    for n in ",".join(group).split(",")
    if n.strip()
)


def table_sql(table: str, layout: Layout) -> str | None:
    """SELECT over ``x`` producing the rows of a normalized ``table`` for this layout, or None."""
    if table == "events":
        return _select(
            "events",
            {
                "TimeGenerated": "TimeGenerated",
                "EventKey": "EventKey",
                "EventFormat": _sql_str(layout.fmt),
                "EventID": "EventID",
                "Channel": "Channel",
                "Provider": "Provider",
                "Computer": "Computer",
                "SourceFile": "SourceFile",
                "SourceOffset": "SourceOffset",
                "raw": "raw",
            },
            "true",
        )
    parts = _TABLE_SQL[layout.family].get(table)
    return " UNION ALL ".join(parts) if parts else None
