"""Upload to a LocalStore, through the store's own ingestion.

Settings: ``store`` (a :class:`~huntbook.store.LocalStore` or its folder), ``name`` (the prefix of
the files written, ``upload``), ``batch_rows`` (100,000).

A DataFrame is written batch by batch as JSON lines into ``<store>/uploads/`` (the file name holds
a hash of its content) and ingested: the store keys every record (``EventKey``) and drops what it
already holds, so uploading the same rows again adds nothing (the receipt counts them as
duplicates). Files and folders are ingested as they are. Records the store cannot read are in its
``quarantine`` table and on the receipt as rejections.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from huntbook import config as hb_config
from huntbook._types import PathLike
from huntbook.errors import DataError
from huntbook.store import LocalStore
from huntbook.upload import Item, Receipt, Uploader

__all__ = ["LocalUploader"]


class LocalUploader(Uploader):
    """Append rows, files and folders to a LocalStore."""

    name = "local"
    batch_rows = 100_000
    batch_bytes = 256_000_000

    def __init__(self, *, store: Any = None, name: str = "upload", **options: Any) -> None:
        super().__init__(**options)
        if store is None:
            store = hb_config.load().store
        if store is None:
            raise DataError(
                "no store to upload to",
                where="local upload settings",
                hint="pass store='case-folder' (or set store: in huntbook.yaml)",
            )
        self.store = LocalStore(Path(store)) if isinstance(store, str | os.PathLike) else store
        if not all(hasattr(self.store, attr) for attr in ("ingest", "path")):
            raise DataError(f"store={store!r} is not a LocalStore", where="local upload settings")
        self.prefix = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "upload"

    def describe(self) -> str:
        return str(self.store.path)

    def send(self, batch: list[tuple[Item, bytes]], receipt: Receipt) -> None:
        lines = [payload + b"\n" for _, payload in batch]
        data = b"".join(lines)
        folder = Path(self.store.path) / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{self.prefix}-{hashlib.sha256(data).hexdigest()[:16]}.jsonl"
        if not target.exists():
            temporary = target.with_suffix(".tmp")
            temporary.write_bytes(data)
            temporary.replace(target)
        by_offset, position = {}, 0
        for (item, _), line in zip(batch, lines, strict=True):
            by_offset[position] = item
            position += len(line)
        summary = self.store.ingest(target, progress=False)
        for row in summary.to_dict("records"):
            if not self._counted(row, receipt, by_offset):
                for item, _ in batch:
                    receipt.reject(item.row, f"{target.name}: {row['status']}", item.key)

    def upload_paths(self, paths: PathLike | Iterable[PathLike]) -> Receipt:
        """Ingest files and folders as they are (every format the store reads)."""
        receipt = Receipt(self.name, self.describe())
        started = time.monotonic()
        summary = self.store.ingest(paths, progress=self.progress)
        for row in summary.to_dict("records"):
            receipt.batches += 1
            receipt.sent += int(row["records"] or 0)
            if not self._counted(row, receipt, {}):
                receipt.sent += 1  # the source itself, refused whole
                receipt.reject(-1, f"{row['file']}: {row['status']}")
        receipt.duration = time.monotonic() - started
        return receipt

    def _counted(self, row: Mapping[Any, Any], receipt: Receipt, by_offset: dict[int, Item]) -> bool:
        """Add one ingest summary row to the receipt (with the quarantine's reasons); False when the
        store refused the whole source."""
        status = str(row["status"])
        records, quarantined = int(row["records"] or 0), int(row["quarantined"] or 0)
        if status == "ok":
            receipt.accepted += int(row["ingested"] or 0)
            receipt.duplicates += int(row["duplicates"] or 0)
        elif status == "already ingested":
            receipt.duplicates += records - quarantined
        else:
            return False
        if quarantined:
            for offset, reason in self._quarantined(str(row["file"])):
                item = by_offset.get(offset)
                where = f"{row['file']}:{offset}"
                receipt.reject(item.row if item else -1, f"{where}: {reason}", item.key if item else None)
        return True

    def _quarantined(self, file: str) -> list[tuple[int, str]]:
        with self.store.connect() as con:
            rows = con.execute(
                "SELECT SourceOffset, Reason FROM quarantine WHERE SourceFile = ? ORDER BY SourceOffset",
                [file],
            ).fetchall()
        return [(int(offset), str(reason)) for offset, reason in rows]
