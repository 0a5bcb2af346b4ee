"""The LocalStore's tables and their columns.

Normalized tables use Microsoft ASIM column names (Sentinel users know them); ``events`` holds
every record as ingested. Every row of every table has ``EventKey``, the stable identity of the
source record: join a normalized row to ``events`` on it to get every original field (``raw``).

Types are DuckDB type names. ``TimeGenerated`` is always UTC.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

__all__ = ["COMMON", "DESCRIPTIONS", "TABLES", "columns"]

# Every table starts with these.
COMMON: Final = {
    "TimeGenerated": "TIMESTAMPTZ",
    "EventKey": "VARCHAR",
}

_EVENTS = {
    **COMMON,
    "EventFormat": "VARCHAR",  # evtx, evtx_json, mordor, nxlog, winlogbeat, zeek, suricata, csv, ...
    "EventID": "INTEGER",  # Windows event id where there is one
    "Channel": "VARCHAR",  # Windows channel, Zeek log path (conn, dns ...), Suricata event_type
    "Provider": "VARCHAR",
    "Computer": "VARCHAR",  # the host that logged the record
    "SourceFile": "VARCHAR",  # file (archive.zip!member) the record came from
    "SourceOffset": "BIGINT",  # byte offset (text) or record number (EVTX) in that file
    "raw": "VARCHAR",  # the whole source record as JSON text, every field: raw->>'$.Field'
}

_DVC = {
    "DvcHostname": "VARCHAR",
    "EventProduct": "VARCHAR",  # Security, Sysmon, Zeek, Suricata, ...
    "EventOriginalType": "VARCHAR",  # e.g. the Windows event id, the Zeek log name
}

_PROCESS = {
    **COMMON,
    **_DVC,
    "EventType": "VARCHAR",  # ProcessCreated | ProcessTerminated
    "TargetProcessName": "VARCHAR",
    "TargetProcessId": "VARCHAR",  # as the source writes it (hex 0x.. for 4688, decimal for Sysmon)
    "TargetProcessCommandLine": "VARCHAR",
    "TargetProcessGuid": "VARCHAR",
    "TargetProcessCurrentDirectory": "VARCHAR",
    "TargetProcessIntegrityLevel": "VARCHAR",
    "TargetProcessTokenElevation": "VARCHAR",
    "TargetProcessMD5": "VARCHAR",
    "TargetProcessSHA1": "VARCHAR",
    "TargetProcessSHA256": "VARCHAR",
    "TargetProcessIMPHASH": "VARCHAR",
    "ActingProcessName": "VARCHAR",  # the parent
    "ActingProcessId": "VARCHAR",
    "ActingProcessGuid": "VARCHAR",
    "ActingProcessCommandLine": "VARCHAR",
    "ActorUsername": "VARCHAR",  # DOMAIN\\user that started the process
    "ActorUserId": "VARCHAR",  # SID
    "ActorSessionId": "VARCHAR",  # logon id of the actor (logon ids are stored lower-case: 0x3e7)
    "TargetUsername": "VARCHAR",
    "TargetUserSessionId": "VARCHAR",  # logon id the new process runs in (lower-case)
}

_AUTH = {
    **COMMON,
    **_DVC,
    "EventType": "VARCHAR",  # Logon | Logoff | Elevate
    "EventResult": "VARCHAR",  # Success | Failure
    "EventResultDetails": "VARCHAR",  # status / sub-status code
    "LogonType": "INTEGER",  # Windows logon type number (2 interactive, 3 network, 10 remote interactive ...)
    "LogonMethod": "VARCHAR",  # authentication package / process
    "TargetUsername": "VARCHAR",  # DOMAIN\\user that logged on
    "TargetUserId": "VARCHAR",
    "TargetSessionId": "VARCHAR",  # the new logon id (lower-case)
    "ActorUsername": "VARCHAR",
    "SrcIpAddr": "VARCHAR",
    "SrcPortNumber": "INTEGER",
    "SrcHostname": "VARCHAR",  # workstation name
    "TargetHostname": "VARCHAR",
}

_NETWORK = {
    **COMMON,
    **_DVC,
    "EventType": "VARCHAR",  # Flow | EndpointNetworkSession
    "NetworkSessionId": "VARCHAR",  # Zeek uid, Suricata flow_id
    "SrcIpAddr": "VARCHAR",
    "SrcPortNumber": "INTEGER",
    "DstIpAddr": "VARCHAR",
    "DstPortNumber": "INTEGER",
    "DstHostname": "VARCHAR",
    "NetworkProtocol": "VARCHAR",  # TCP, UDP, ICMP (upper case)
    "NetworkApplicationProtocol": "VARCHAR",  # Zeek service, Suricata app_proto
    "NetworkDirection": "VARCHAR",
    "NetworkDuration": "DOUBLE",  # milliseconds
    "SrcBytes": "BIGINT",
    "DstBytes": "BIGINT",
    "SrcPackets": "BIGINT",
    "DstPackets": "BIGINT",
    "DvcAction": "VARCHAR",  # Allow | Deny | state
    "SrcProcessName": "VARCHAR",
    "SrcProcessId": "VARCHAR",
    "SrcUsername": "VARCHAR",
}

_DNS = {
    **COMMON,
    **_DVC,
    "SrcIpAddr": "VARCHAR",
    "SrcPortNumber": "INTEGER",
    "DstIpAddr": "VARCHAR",
    "DstPortNumber": "INTEGER",
    "DnsQuery": "VARCHAR",
    "DnsQueryTypeName": "VARCHAR",
    "DnsResponseCodeName": "VARCHAR",
    "DnsResponseName": "VARCHAR",  # answers joined with ';'
    "NetworkProtocol": "VARCHAR",
    "DnsSessionId": "VARCHAR",
    "SrcProcessName": "VARCHAR",
    "SrcProcessId": "VARCHAR",
}

_ALERTS = {
    **COMMON,
    **_DVC,
    "AlertName": "VARCHAR",
    "AlertId": "VARCHAR",  # signature id
    "AlertSeverity": "VARCHAR",  # High | Medium | Low | Informational
    "AlertCategory": "VARCHAR",
    "SrcIpAddr": "VARCHAR",
    "SrcPortNumber": "INTEGER",
    "DstIpAddr": "VARCHAR",
    "DstPortNumber": "INTEGER",
    "NetworkProtocol": "VARCHAR",
    "NetworkSessionId": "VARCHAR",
    "DvcAction": "VARCHAR",
}

_QUARANTINE = {
    "SourceFile": "VARCHAR",
    "SourceOffset": "BIGINT",
    "EventFormat": "VARCHAR",
    "Reason": "VARCHAR",
    "Sample": "VARCHAR",  # the start of the bad record, with undecodable bytes escaped
    "IngestedAt": "TIMESTAMPTZ",
}

TABLES: Final = MappingProxyType(
    {
        "events": MappingProxyType(_EVENTS),
        "process_events": MappingProxyType(_PROCESS),
        "authentication": MappingProxyType(_AUTH),
        "network_sessions": MappingProxyType(_NETWORK),
        "dns": MappingProxyType(_DNS),
        "alerts": MappingProxyType(_ALERTS),
        "quarantine": MappingProxyType(_QUARANTINE),
    }
)

DESCRIPTIONS: Final = MappingProxyType(
    {
        "events": "every ingested record, with its source fields in `raw`",
        "process_events": "process creation/termination (ASIM ProcessEvent): 4688/4689, Sysmon 1/5",
        "authentication": "logons, logoffs, failures (ASIM Authentication): 4624/4625/4634/4647/4648/4672",
        "network_sessions": "connections (ASIM NetworkSession): Zeek conn, Suricata flow, Sysmon 3, 5156",
        "dns": "DNS queries (ASIM Dns): Zeek dns, Suricata dns, Sysmon 22",
        "alerts": "IDS/EDR alerts: Suricata alert",
        "quarantine": "records that could not be ingested, with file, offset and reason",
    }
)


def columns(table: str) -> list[str]:
    """Column names of ``table`` in order."""
    return list(TABLES[table])
