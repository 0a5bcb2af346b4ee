"""huntbook as a Splunk custom search command (``| huntbook ...``, chunked protocol v2) and its app package.

In Splunk::

    | huntbook decode field=CommandLine
    | huntbook iocs field=CommandLine types=ipv4,url
    | huntbook enrich field=CommandLine feeds=/opt/feeds

The action is the first positional argument; each record gets ``<field>_decoded`` (decode), or
``<field>_iocs`` / ``<field>_ioc_types`` (multivalue) and ``<field>_ioc_count`` (iocs), plus
``<field>_ti_severity`` / ``<field>_ti_flagged`` (enrich; offline providers only, default
``local_feeds``). The work is done by :mod:`huntbook.dsdl`. :func:`package` writes the Splunk app
whose launcher re-runs ``python -m huntbook.splunk_app`` with the interpreter huntbook is installed in.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from huntbook.errors import HuntbookError, MissingExtraError, ParameterError

__all__ = ["ACTIONS", "main", "package"]

#: The actions of ``| huntbook ACTION ...`` and the output columns (``<field>_<name>``) of each.
ACTIONS = {
    "decode": ("decoded",),
    "iocs": ("iocs", "ioc_types", "ioc_count"),
    "enrich": ("iocs", "ioc_types", "ioc_count", "ti_severity", "ti_flagged"),
}
_MULTIVALUE = {"iocs", "ioc_types", "ti_flagged"}
_OPTIONS = ("decode", "max_depth", "types", "providers", "feeds", "default_severity")


def _settings(action: str, field: str, options: dict[str, str | None]) -> dict[str, Any]:
    """The :mod:`huntbook.dsdl` model for one command (validated there)."""
    from huntbook import dsdl

    params = {
        "ioc_types": options.get("types"),
        "decode": options.get("decode"),
        "max_depth": options.get("max_depth"),
        "ti_providers": options.get("providers"),
        "feeds": options.get("feeds"),
        "default_severity": options.get("default_severity"),
    }
    if action == "enrich" and not params["ti_providers"]:
        params["ti_providers"] = "local_feeds"
    elif action != "enrich":
        for name in ("ti_providers", "feeds", "default_severity"):
            if params[name] is not None:
                raise ParameterError(
                    f"{name.removeprefix('ti_')} is an option of enrich",
                    where=name,
                    hint=f"use | huntbook enrich field={field} ...",
                )
            params.pop(name)
    param = {"feature_variables": [field], "options": {"params": {k: v for k, v in params.items() if v}}}
    return dsdl.init_settings(param)


def _command_class() -> type:
    try:
        from splunklib.searchcommands import Configuration, Option, StreamingCommand, validators
    except ImportError as exc:
        raise MissingExtraError("the Splunk search command", "splunk", missing="splunklib") from exc

    @Configuration()
    class HuntbookCommand(StreamingCommand):  # type: ignore[misc]
        """| huntbook decode|iocs|enrich field=FIELD [types=...] [providers=...] [feeds=...]"""

        field = Option(require=True, validate=validators.Fieldname(), doc="The field to work on.")
        types = Option(doc="Comma-separated IoC types, e.g. ipv4,url,dns.")
        decode = Option(doc="Decode before extracting IoCs (true/false, default true).")
        max_depth = Option(doc="Decode layers, 1-32 (default 8).")
        providers = Option(doc="enrich: comma-separated offline TI providers (default local_feeds).")
        feeds = Option(doc="enrich: comma-separated feed files or folders for local_feeds.")
        default_severity = Option(doc="enrich: severity of a feed hit without one (default high).")

        def prepare(self) -> None:
            names = list(self.fieldnames)
            if len(names) != 1 or names[0] not in ACTIONS:
                got = " ".join(names) or "nothing"
                self.error_exit(
                    ParameterError("bad action"),
                    f"huntbook: expected one action ({', '.join(ACTIONS)}) before the options, got {got}",
                )
            self.action = names[0]
            options = {name: getattr(self, name) for name in _OPTIONS}
            try:
                self.model = _settings(self.action, str(self.field), options)
            except HuntbookError as exc:
                self.error_exit(exc, f"huntbook: {exc}")
            self.seen_field = False

        def stream(self, records: Any) -> Iterator[dict[str, Any]]:
            batch = list(records)
            if not batch:
                return
            field = str(self.field)
            if not self.seen_field:
                if not any(field in record for record in batch):
                    fields = sorted({name for record in batch for name in record})
                    self.error_exit(
                        ParameterError("no such field"),
                        f"huntbook: no field {field!r} in the results; fields: {', '.join(fields)}",
                    )
                self.seen_field = True
            try:
                columns = _columns(batch, field, self.action, self.model)
            except HuntbookError as exc:
                self.error_exit(exc, f"huntbook: {exc}")
            for i, record in enumerate(batch):
                for name, values in columns.items():
                    record[name] = values[i]
                yield record

    return HuntbookCommand


def _columns(
    batch: list[dict[str, Any]], field: str, action: str, model: dict[str, Any]
) -> dict[str, list[Any]]:
    """The output fields of ``batch``: name -> one value per record (a list for a multivalue)."""
    import pandas as pd

    from huntbook import dsdl

    values = pd.Series([_text(record.get(field)) for record in batch], dtype=object)
    computed = dsdl.field_columns(values, model)
    out: dict[str, list[Any]] = {}
    for name in ACTIONS[action]:
        column = computed[name].tolist()
        if name in _MULTIVALUE:
            column = [[v for v in str(item).split("\n") if v] if item else "" for item in column]
        elif name == "decoded":
            column = ["" if v is None else v for v in column]
        out[f"{field}_{name}"] = column
    return out


def _text(value: Any) -> str | None:
    if isinstance(value, list):  # a multivalue input field
        return "\n".join(map(str, value))
    return None if value in (None, "") else str(value)


def main(argv: list[str] | None = None) -> None:
    """Run the search command over stdin/stdout (what ``python -m huntbook.splunk_app`` does)."""
    command = _command_class()
    from splunklib.searchcommands import dispatch

    dispatch(command, argv=sys.argv if argv is None else argv, module_name=None)


# ---------------------------------------------------------------------------------------------
# the Splunk app
# ---------------------------------------------------------------------------------------------
_LAUNCHER = '''"""Splunk runs this with its own Python; huntbook lives in another one: re-run there."""
import os
import subprocess
import sys

PYTHON = {python!r}

env = {{k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONPATH", "LD_LIBRARY_PATH")}}
args = [PYTHON, "-m", "huntbook.splunk_app", *sys.argv[1:]]
if os.name == "posix":
    os.execve(PYTHON, args, env)
sys.exit(subprocess.call(args, env=env))
'''

_APP_CONF = """[install]
is_configured = true

[ui]
is_visible = false
label = huntbook

[launcher]
author = huntbook
description = huntbook search command: decode, IoC extraction and offline threat intel.
version = {version}

[package]
id = {app_name}
check_for_updates = false
"""

_COMMANDS_CONF = """[huntbook]
filename = huntbook_command.py
chunked = true
python.version = python3
"""

_SEARCHBNF_CONF = """[huntbook-command]
syntax = huntbook (decode|iocs|enrich) field=<field> (types=<string>)? (decode=<bool>)? \
(max_depth=<int>)? (providers=<string>)? (feeds=<string>)? (default_severity=<string>)?
shortdesc = Decode command lines, extract IoCs and rate them with offline threat intel.
description = Adds <field>_decoded (decode), <field>_iocs, <field>_ioc_types and <field>_ioc_count \
(iocs), and <field>_ti_severity and <field>_ti_flagged (enrich, offline feeds only).
usage = public
example1 = | huntbook decode field=CommandLine
comment1 = Decode base64/hex/encoded PowerShell in CommandLine into CommandLine_decoded.
example2 = | huntbook iocs field=CommandLine types=ipv4,url
comment2 = Extract IPv4 addresses and URLs (after decoding) into multivalue fields.
example3 = | huntbook enrich field=CommandLine feeds=/opt/feeds
comment3 = Rate the IoCs against local feed files.
"""

_DEFAULT_META = """[commands/huntbook]
export = system

[searchbnf]
export = system
"""

_README = """huntbook Splunk app
===================

The search command | huntbook decode|iocs|enrich field=<field> ...
Splunk runs bin/huntbook_command.py, which re-runs {python} -m huntbook.splunk_app
(huntbook and pandas are installed there, not in Splunk's Python).
Install: copy this folder to $SPLUNK_HOME/etc/apps/ (or install the .spl), restart Splunk.
"""


def package(
    out_dir: str | Path, *, python: str = sys.executable, app_name: str = "huntbook", tar: bool = False
) -> Path:
    """Write the Splunk app folder ``out_dir/app_name`` (and ``app_name.spl`` next to it with ``tar``)."""
    import tarfile
    from importlib.metadata import PackageNotFoundError, version

    if not app_name.replace("_", "").replace("-", "").isalnum():
        raise ParameterError(
            f"bad app name {app_name!r}", where="app_name", hint="use letters, digits, _ and -"
        )
    if not Path(python).is_absolute():
        raise ParameterError(
            f"python must be an absolute path, not {python!r}",
            where="python",
            hint="give the interpreter huntbook is installed in, e.g. /opt/huntbook/.venv/bin/python",
        )
    try:
        app_version = version("huntbook")
    except PackageNotFoundError:
        app_version = "0.0.0"
    app = Path(out_dir) / app_name
    files = {
        "default/app.conf": _APP_CONF.format(version=app_version, app_name=app_name),
        "default/commands.conf": _COMMANDS_CONF,
        "default/searchbnf.conf": _SEARCHBNF_CONF,
        "metadata/default.meta": _DEFAULT_META,
        "bin/huntbook_command.py": _LAUNCHER.format(python=python),
        "README.txt": _README.format(python=python),
    }
    for name, text in files.items():
        path = app / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (app / "bin/huntbook_command.py").chmod(0o755)
    if tar:
        with tarfile.open(app.with_suffix(".spl"), "w:gz") as archive:
            archive.add(app, arcname=app_name)
    return app


if __name__ == "__main__":
    main()
