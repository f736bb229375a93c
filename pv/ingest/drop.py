"""The drop folder of the weekly cycle: report files placed in ``<var_dir>/drop`` are loaded, then moved.

Kinds by name: ``*.zip`` or a folder holding ``ASCII/`` (a FAERS or legacy AERS quarter), ``*.xml`` (E2B(R3)
ICSRs). A loaded file moves to ``drop/done/``; a file that fails, whatever the reason that is its own (unreadable,
refused by a limit, rejected by the database, a mapping error: :func:`file_failure`), moves to ``drop/failed/``
with a one-line ``.error`` note beside it, and the other files go on; anything else stays where it is and is
logged. A failure of the service itself (the database unreachable) leaves the file where it is. Loading a file
twice changes nothing (the store skips a file it has seen, by sha256), so a retried or repeated cycle is
harmless.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pv.errors import InputError, PvError
from pv.ingest.batch import Batch

KINDS = ("faers", "e2b")


def kind_of(path: Path) -> str | None:
    """The kind of a drop-folder entry, or None when it is not a report file pv knows."""
    if path.is_dir():
        return "faers" if any(p.name.lower() == "ascii" for p in path.iterdir()) else None
    suffix = path.suffix.lower()
    if suffix == ".zip":
        return "faers"
    if suffix == ".xml":
        return "e2b"
    return None


def pending(drop: Path) -> list[Path]:
    """Report files waiting in the drop folder, in name order (done/ and failed/ excluded)."""
    if not drop.exists():
        return []
    return sorted(p for p in drop.iterdir() if p.name not in ("done", "failed") and kind_of(p) is not None)


def parse(path: Path, kind: str | None = None) -> Batch:
    """Parse one report file into a Batch (FAERS/AERS quarter or E2B file)."""
    kind = kind or kind_of(path)
    if kind == "faers":
        from pv.ingest.faers import parse_quarter

        return parse_quarter(path)
    if kind == "e2b":
        from pv.ingest.e2b import parse_e2b

        return parse_e2b(path)
    raise InputError(f"unknown report file kind {kind!r} (expected one of {', '.join(KINDS)})", file=str(path))


def file_failure(exc: BaseException) -> str | None:
    """The one-line reason a file failed, when the failure is the file's own (or its configuration's): the file
    is then refused and the other files go on. None when it is the service's (the database unreachable, an
    interrupt): the caller stops and the file stays where it is, to be loaded when the service is back."""
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

    if not isinstance(exc, Exception) or isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return None
    if isinstance(exc, MemoryError):
        return "out of memory while loading it (MemoryError): too large for this machine; split it or raise memory"
    text = " ".join(str(exc).split()) or "no message"
    if isinstance(exc, PvError):
        return text[:1000]
    return f"{type(exc).__name__}: {text}"[:1000]


def ingest(session: Session, path: Path, kind: str | None = None) -> dict[str, Any]:
    """Parse and load one file into the store (the caller commits); a small summary dict."""
    from pv.ingest.store import load_batch

    batch = parse(path, kind)
    summary = load_batch(session, batch)
    return {
        "file": str(path),
        "kind": batch.kind,
        "quarter": batch.quarter,
        "cases_added": summary.cases_added,
        "cases_updated": summary.cases_updated,
        "cases_deleted": summary.cases_deleted,
        "rows_quarantined": summary.rows_quarantined,
        "skipped_duplicate_file": summary.skipped_duplicate_file,
    }


def archive(path: Path, drop: Path, error: str | None = None) -> Path:
    """Move a processed file to drop/done (or drop/failed with an .error note); returns the new path."""
    target_dir = drop / ("failed" if error else "done")
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    shutil.move(str(path), target)
    if error:
        (target_dir / f"{path.name}.error").write_text(error + "\n", encoding="utf-8")
    return target
