"""A Delta table's commits, each named by its own log file (``_delta_log/<version>.json``).

``DeltaTable.history()`` (deltalake 1.6.6) does not read a commit's version from its file: it labels the commits it
lists by counting down from a version read separately, so a commit that lands in between (another month's writer,
or an object store that lists the log a moment late) shifts every label. Here a version is always the number in
the name of the file that holds the commit, read through delta-rs's own object store (local disk or S3 alike).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow.fs as pafs
from deltalake.fs import DeltaStorageHandler

LOG_FOLDER = "_delta_log"
_DIGITS = 20  # a commit file is its version, zero-padded to 20 digits, then ".json"


class CommitNotFoundError(LookupError):
    """No commit of the table carries the metadata looked for."""


@dataclass(frozen=True)
class Commit:
    version: int
    info: dict[str, Any]  # the commit's commitInfo action: operation, timestamp and the writer's metadata

    def carries(self, metadata: Mapping[str, str]) -> bool:
        """Whether the writer recorded every key of ``metadata`` with that value in this commit."""
        return all(self.info.get(key) == value for key, value in metadata.items())


def _log(uri: str, storage_options: Mapping[str, str] | None) -> pafs.FileSystem:
    return pafs.PyFileSystem(DeltaStorageHandler(uri, dict(storage_options or {})))


def _commit_file(version: int) -> str:
    return f"{LOG_FOLDER}/{version:0{_DIGITS}d}.json"


def read_commit(uri: str, version: int, storage_options: Mapping[str, str] | None = None) -> Commit | None:
    """The commit whose log file is ``version``'s; None when that file does not exist (not yet, or cleaned up)."""
    return _read(_log(uri, storage_options), version)


def _read(log: pafs.FileSystem, version: int) -> Commit | None:
    try:
        with log.open_input_stream(_commit_file(version)) as stream:
            lines = stream.read().decode().splitlines()
    except FileNotFoundError:
        return None
    actions = (json.loads(line) for line in lines if line.strip())
    info: dict[str, Any] = next((action["commitInfo"] for action in actions if "commitInfo" in action), {})
    return Commit(version, info)


def commit_versions(uri: str, storage_options: Mapping[str, str] | None = None) -> list[int]:
    """The versions whose commit file the log holds, oldest first (checkpoints and other files left out)."""
    return _versions(_log(uri, storage_options))


def _versions(log: pafs.FileSystem) -> list[int]:
    listed = log.get_file_info(pafs.FileSelector(LOG_FOLDER))
    names = (info.base_name for info in listed)
    return sorted(int(name[:_DIGITS]) for name in names if len(name) == _DIGITS + 5 and name.endswith(".json"))


def commits(
    uri: str, storage_options: Mapping[str, str] | None = None, after: int = -1, limit: int | None = None
) -> list[Commit]:
    """The commits newer than version ``after``, newest first (at most ``limit``), each named by its file."""
    log = _log(uri, storage_options)  # one object store for the listing and every read
    versions = [version for version in reversed(_versions(log)) if version > after]
    found = (_read(log, version) for version in versions[:limit])
    return [commit for commit in found if commit is not None]


def find_commit_after(
    uri: str, after: int, metadata: Mapping[str, str], storage_options: Mapping[str, str] | None = None
) -> int:
    """The version of the first commit after version ``after`` that carries ``metadata``.

    Commit files are read by name, one version after another, not listed: a commit just made is found even where
    a listing of the log would not show it yet, and no other writer's commit can be taken for it.
    """
    for commit in _commits_from(uri, after + 1, storage_options):
        if commit.carries(metadata):
            return commit.version
    raise CommitNotFoundError(f"{uri}: no commit after version {after} carries {dict(metadata)}")


def last_commit_after(
    uri: str, after: int, metadata: Mapping[str, str], storage_options: Mapping[str, str] | None = None
) -> int | None:
    """The version of the newest commit after version ``after`` that carries ``metadata`` (read by name); None
    when there is none."""
    found = [c.version for c in _commits_from(uri, after + 1, storage_options) if c.carries(metadata)]
    return found[-1] if found else None


def _commits_from(uri: str, version: int, storage_options: Mapping[str, str] | None) -> Iterator[Commit]:
    """Commit ``version``, then each next one, until a version has no commit file."""
    log = _log(uri, storage_options)
    while (commit := _read(log, version)) is not None:
        yield commit
        version += 1
