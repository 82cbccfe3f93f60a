"""Files written so that a reader never sees half of one: the landing zone, GX results, and the tooling's files."""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# write_atomic's temporary files: ``.<name>.<mkstemp's random part>.tmp`` beside the target.
_TEMP_FILE = re.compile(r"\..+\.[A-Za-z0-9_]+\.tmp")


def write_atomic(path: Path, content: str | bytes, mode: int = 0o644) -> None:
    """Write ``content`` (text as UTF-8, bytes as they are) to a temporary file beside ``path``, then rename it over
    ``path``; creates parent folders."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        Path(tmp).chmod(mode)  # mkstemp creates 0600; these files are for every reader
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files ``write_atomic`` left in ``folder`` when its process was killed before the rename;
    only that name pattern, only directly in ``folder``. The caller makes sure no writer of that folder is alive
    (see ``exclusive_folder_lock``)."""
    if not folder.is_dir():
        return []
    stale = sorted(path for path in folder.iterdir() if _TEMP_FILE.fullmatch(path.name) and path.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


@contextmanager
def exclusive_folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` (created if needed) while the block runs; a second holder waits. The
    kernel drops the lock when its process dies, so a lock never outlives a killed writer, and no file is left."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
