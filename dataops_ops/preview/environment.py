"""A preview's environment: its folder ``<data root>/pr-N`` (manifest, Dagster instance, lake, report files), the
base's table versions it pins, and its removal.

Nothing is copied from the base: the manifest names the Delta version of every base table when the preview was
created, and the preview's I/O manager reads those tables there, at those versions (``dataops_assets.storage``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from deltalake import DeltaTable
from filelock import FileLock, Timeout

from dataops_assets.environments import PREVIEW_MANIFEST, Preview, Settings, open_previews, settings_for
from dataops_assets.files import write_atomic
from dataops_ops.instance import DAEMON_PID_FILE
from dataops_ops.lake import PUBLISH_RECORD, lake_tables, publications, table_uri
from dataops_ops.processes import is_alive, read_pid, stop_pid_file

REPORT_FOLDER = "preview"  # changes.md, checks.md, diff.md, diff.json, comment.md
RUN_FOLDER = "run"  # what the preview's UI runs from: its workspace, pid, log and address
UI_PID_FILE = "ui.pid"


class PreviewError(RuntimeError):
    """A preview that cannot be created, run or removed; the message says which and why."""


class PreviewRefusedError(PreviewError):
    """Too many previews are open and none of them is idle."""


def preview_name(pr: int) -> str:
    return f"pr-{pr}"


def preview_dir(data_root: Path, pr: int) -> Path:
    return data_root / preview_name(pr)


def report_dir(data_root: Path, pr: int) -> Path:
    return preview_dir(data_root, pr) / REPORT_FOLDER


def preview_lock(data_root: Path, pr: int) -> FileLock:
    """The lock `preview up` holds on the preview (beside its folder, so removing the folder keeps it)."""
    return FileLock(data_root / f".{preview_name(pr)}.lock")


def is_idle(data_root: Path, pr: int) -> bool:
    lock = preview_lock(data_root, pr)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def pin_base(base: Settings, pr: int, rebuilt: list[str], months: list[str] | None = None) -> Preview:
    """The manifest of a new preview of ``base``: every base table not rebuilt, at its current version, and the
    months it previews (by default every month the base has published)."""
    versions = {name.replace(".", "/"): DeltaTable(table_uri(base, name)).version() for name in lake_tables(base)}
    if PUBLISH_RECORD.replace(".", "/") not in versions:
        raise PreviewError(f"{base.name} has published no month ({base.lake_uri}): nothing to preview against")
    months = sorted(months or {month for table in publications(base).values() for month in table})
    return Preview(
        pr=pr,
        base=base.name,
        base_lake_uri=base.lake_uri,
        base_landing_dir=base.landing_dir,
        thresholds=base.thresholds,
        rebuilt=tuple(sorted(rebuilt)),
        pinned={name: version for name, version in sorted(versions.items()) if name not in rebuilt},
        months=tuple(months),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def create(data_root: Path, preview: Preview) -> Settings:
    """The preview's folder with its manifest (an earlier preview of the same pull request is removed first)."""
    removal = remove(data_root, preview.pr, locked=True)
    if removal.problems:
        raise PreviewError("; ".join(removal.problems))
    folder = preview_dir(data_root, preview.pr)
    folder.mkdir(parents=True)
    write_atomic(folder / PREVIEW_MANIFEST, json.dumps(preview.to_json(), indent=2) + "\n")
    return settings_for(preview_name(preview.pr), data_root)


@dataclass(frozen=True)
class Removal:
    name: str
    removed: bool  # False: there was nothing to remove
    problems: list[str]


def remove(data_root: Path, pr: int, *, locked: bool = False) -> Removal:
    """Stop the preview's processes, then delete its folder and its lock; the manifest goes last, so a removal
    that fails half-way leaves a preview that `list` shows and `down` finishes. Refused while `preview up` works on
    it, unless the caller is that `preview up` (``locked``)."""
    folder, name, lock = preview_dir(data_root, pr), preview_name(pr), preview_lock(data_root, pr)
    if not folder.exists() and not Path(lock.lock_file).exists():
        return Removal(name, False, [])
    if not locked:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            return Removal(name, False, [f"{name}: `preview up` is working on it; nothing was removed"])
    try:
        problems = _remove_folder(folder, name)
    finally:
        if not locked:
            lock.release()
            problems += [] if problems else _delete(Path(lock.lock_file))
    return Removal(name, True, problems)


def _remove_folder(folder: Path, name: str) -> list[str]:
    if not folder.exists():
        return []
    problems = [f"{name}: {problem}" for problem in _stop_processes(folder)]
    manifest = folder / PREVIEW_MANIFEST
    for child in sorted(folder.iterdir()):
        if child != manifest:
            problems += _delete(child)
    return problems or _delete(folder)


def _stop_processes(folder: Path) -> list[str]:
    """Stop every process the preview started (by the pid files it wrote), and report any that outlived it."""
    problems = []
    for pid_file in [folder / RUN_FOLDER / UI_PID_FILE, folder / "dagster_home" / DAEMON_PID_FILE]:
        pid = read_pid(pid_file)
        if pid is None:
            continue
        stop_pid_file(pid_file)
        if is_alive(pid):
            problems.append(f"process {pid} ({pid_file.name}) is still running")
    return problems


def _delete(path: Path) -> list[str]:
    try:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    except OSError as error:
        return [f"{path}: {error.strerror or error}"]
    return []


@dataclass(frozen=True)
class OpenPreview:
    preview: Preview
    idle: bool
    last_active: float  # seconds since the epoch: the newest change in the preview's folder

    @property
    def name(self) -> str:
        return preview_name(self.preview.pr)


def list_previews(data_root: Path) -> list[OpenPreview]:
    """Every preview under ``data_root``, oldest activity first."""
    found = [
        OpenPreview(preview, is_idle(data_root, preview.pr), _last_active(preview_dir(data_root, preview.pr)))
        for preview in open_previews(data_root)
    ]
    return sorted(found, key=lambda open_preview: open_preview.last_active)


def _last_active(folder: Path) -> float:
    report = folder / REPORT_FOLDER
    stamps = [path.stat().st_mtime for path in (folder / PREVIEW_MANIFEST, report) if path.exists()]
    stamps += [path.stat().st_mtime for path in report.glob("*")] if report.is_dir() else []
    return max(stamps, default=0.0)


def make_room(data_root: Path, pr: int, max_previews: int) -> list[Removal]:
    """Remove the idle previews, oldest first, until a new one fits within ``max_previews``; refused when too
    many of the others are busy. The pull request's own earlier preview does not count: it is replaced."""
    others = [open_preview for open_preview in list_previews(data_root) if open_preview.preview.pr != pr]
    excess = len(others) - (max_previews - 1)
    idle = [open_preview for open_preview in others if open_preview.idle]
    if excess > len(idle):
        busy = ", ".join(o.name for o in others if not o.idle)
        raise PreviewRefusedError(
            f"{len(others)} previews are open (at most {max_previews}) and too few are idle to make room "
            f"(busy: {busy}): try again when one has finished, or remove one with `dataops preview down --pr N`"
        )
    return [remove(data_root, open_preview.preview.pr) for open_preview in idle[: max(excess, 0)]]


def prune(data_root: Path, older_than_s: float) -> list[Removal]:
    """Remove every idle preview without activity for ``older_than_s`` seconds."""
    cutoff = time.time() - older_than_s
    return [
        remove(data_root, open_preview.preview.pr)
        for open_preview in list_previews(data_root)
        if open_preview.idle and open_preview.last_active < cutoff
    ]
