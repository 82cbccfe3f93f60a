"""The changed set: which assets a pull request changes against an environment's definitions, and why.

``changed_set(base, head)`` compares two definitions states (``state``) built for the same environment: base is the
one prod's release recorded when it was deployed, head the pull request's. An asset's data changes when it is NEW
or its CODE_VERSION, DEPENDENCIES (upstream keys, partition mappings), PARTITIONS or DATA_RULES (the quarantine
rules its step enforces and the accepted exceptions of those) changed; everything downstream of it then changes
too. CHECKS alone (a check added, removed or changed: its code, flags and inputs, the expectations it evaluates,
the accepted exceptions that judge them, the environment's thresholds) change no data and do not spread. REMOVED
assets are listed.

Nothing here imports Dagster or the pipeline: states are JSON.

    python -m dataops_ops.preview.changes BASE.json HEAD.json [--format markdown|json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

State = dict[str, Any]


class Reason(StrEnum):
    NEW = "NEW"
    CODE_VERSION = "CODE_VERSION"
    DEPENDENCIES = "DEPENDENCIES"
    PARTITIONS = "PARTITIONS"
    DATA_RULES = "DATA_RULES"
    CHECKS = "CHECKS"
    REMOVED = "REMOVED"


# The reasons that change an asset's data, and so the data of everything downstream.
DATA_REASONS = frozenset({Reason.NEW, Reason.CODE_VERSION, Reason.DEPENDENCIES, Reason.PARTITIONS, Reason.DATA_RULES})
_NOUNS = {"expectations": "expectation", "accepted": "accepted exception", "suite": "suite fields"}


class StatesNotComparableError(ValueError):
    """The two states were written in different formats or for different environments."""


@dataclass(frozen=True)
class AssetChange:
    """Why one asset changes: its own reasons, each with what changed, and the directly changed assets upstream
    whose new data reaches it."""

    reasons: Mapping[Reason, tuple[str, ...]] = field(default_factory=dict)
    upstream: tuple[str, ...] = ()

    @property
    def changes_data(self) -> bool:
        return bool(self.upstream) or not DATA_REASONS.isdisjoint(self.reasons)

    @property
    def kind(self) -> Literal["data", "checks only", "removed"]:
        if Reason.REMOVED in self.reasons:
            return "removed"
        return "data" if self.changes_data else "checks only"


@dataclass(frozen=True)
class ChangedSet:
    environment: str
    assets: Mapping[str, AssetChange]
    notes: tuple[str, ...] = ()

    def _keys(self, kind: str) -> list[str]:
        return [key for key, change in self.assets.items() if change.kind == kind]

    @property
    def data_changed(self) -> list[str]:
        """What a preview rebuilds: the assets whose data changes, directly or from upstream."""
        return self._keys("data")

    @property
    def checks_only(self) -> list[str]:
        """The assets whose data stays as it is, but whose checks changed: a preview runs their checks again."""
        return self._keys("checks only")

    @property
    def removed(self) -> list[str]:
        return self._keys("removed")


def load_state(path: Path) -> State:
    state: State = json.loads(path.read_text(encoding="utf-8"))
    return state


def changed_set(base: State, head: State) -> ChangedSet:
    """The assets of ``head`` (and those gone from ``base``) that change, each with why."""
    _require_comparable(base, head)
    direct: dict[str, dict[Reason, list[str]]] = {}
    for key in sorted(set(base["assets"]) | set(head["assets"])):
        reasons = _reasons(base["assets"].get(key), head["assets"].get(key))
        if reasons:
            direct[key] = reasons
    thresholds = _changed_fields(base["thresholds"], head["thresholds"])
    if thresholds:  # the checks read them (the quarantine rules do not)
        why = f"thresholds of {head['environment']} changed: {', '.join(thresholds)}"
        for key in (key for key, asset in head["assets"].items() if asset["checks"]):
            direct.setdefault(key, {}).setdefault(Reason.CHECKS, []).append(why)
    roots = [key for key, reasons in direct.items() if not DATA_REASONS.isdisjoint(reasons)]
    upstream = _downstream_of(head["assets"], roots)
    assets = {
        key: AssetChange(
            {reason: tuple(direct[key][reason]) for reason in Reason if reason in direct.get(key, {})},
            tuple(sorted(upstream.get(key, ()))),
        )
        for key in sorted(set(direct) | set(upstream))
    }
    return ChangedSet(head["environment"], assets, _notes(base, head))


def _require_comparable(base: State, head: State) -> None:
    if base.get("format") != head.get("format"):
        raise StatesNotComparableError(f"states of formats {base.get('format')} and {head.get('format')}")
    if base["environment"] != head["environment"]:
        raise StatesNotComparableError(
            f"a state of {base['environment']} and one of {head['environment']}: thresholds differ between "
            "environments; build both for the same one"
        )


def _notes(base: State, head: State) -> tuple[str, ...]:
    if base["python"] == head["python"]:
        return ()
    return (
        f"The states were written by Python {base['python']} and {head['python']}: code versions may differ for "
        "code that is the same.",
    )


def _reasons(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> dict[Reason, list[str]]:
    if new is None:
        return {Reason.REMOVED: ["not in the new definitions"]}
    if old is None:
        return {Reason.NEW: ["not in the base definitions"]}
    found: dict[Reason, list[str]] = {}
    if old["code_version"] != new["code_version"]:
        found[Reason.CODE_VERSION] = [f"{old['code_version']} → {new['code_version']}"]
    if old["partitions"] != new["partitions"]:
        found[Reason.PARTITIONS] = [f"{_partitions_text(old['partitions'])} → {_partitions_text(new['partitions'])}"]
    details = {
        Reason.DEPENDENCIES: _dependency_changes(old["deps"], new["deps"]),
        Reason.DATA_RULES: _rule_changes(old["data_rules"], new["data_rules"]),
        Reason.CHECKS: _check_changes(old["checks"], new["checks"]),
    }
    return found | {reason: changes for reason, changes in details.items() if changes}


def _partitions_text(partitions: Mapping[str, Any] | None) -> str:
    return "none" if partitions is None else str(partitions.get("description") or partitions["kind"])


def _dependency_changes(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[str]:
    before = {dep["key"]: dep["partition_mapping"] for dep in old}
    after = {dep["key"]: dep["partition_mapping"] for dep in new}
    changes = [f"upstream {key} added" for key in sorted(set(after) - set(before))]
    changes += [f"upstream {key} removed" for key in sorted(set(before) - set(after))]
    changes += [
        f"partition mapping of {key}: {before[key]} → {after[key]}"
        for key in sorted(set(before) & set(after))
        if before[key] != after[key]
    ]
    return changes


def _rule_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = []
    for suite in sorted(set(old) | set(new)):
        for change in _content_changes(old.get(suite, {}), new.get(suite, {}), expectation="quarantine rule"):
            changes.append(f"{suite}: {change}")
    return changes


def _check_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    changes = [f"check {name} added" for name in sorted(set(new) - set(old))]
    changes += [f"check {name} removed" for name in sorted(set(old) - set(new))]
    for name in sorted(set(old) & set(new)):
        before, after = old[name], new[name]
        if before["blocking"] != after["blocking"]:
            changes.append(f"{name}: blocking {before['blocking']} → {after['blocking']}")
        changes += [
            f"{name}: {part} changed" for part in ("inputs", "partitions", "code") if before[part] != after[part]
        ]
        changes += [f"{name}: {c}" for c in _content_changes(before.get("suite", {}), after.get("suite", {}))]
    return changes


def _content_changes(old: Mapping[str, Any], new: Mapping[str, Any], expectation: str = "expectation") -> list[str]:
    """What differs between two suite contents: items (expectations, accepted exceptions) added, removed or
    changed, and the other fields."""
    nouns = _NOUNS | {"expectations": expectation}
    changes = []
    for part in sorted(set(old) | set(new)):
        before, after = old.get(part), new.get(part)
        if before == after:
            continue
        noun = nouns.get(part, part)
        if isinstance(before or after, Mapping):
            changes += _item_changes(before or {}, after or {}, noun)
        else:
            changes.append(f"{noun} changed")
    return changes


def _item_changes(old: Mapping[str, str], new: Mapping[str, str], noun: str) -> list[str]:
    changes = [f"{noun} {name} added" for name in sorted(set(new) - set(old))]
    changes += [f"{noun} {name} removed" for name in sorted(set(old) - set(new))]
    return changes + [f"{noun} {name} changed" for name in sorted(set(old) & set(new)) if old[name] != new[name]]


def _changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [name for name in sorted(set(old) | set(new)) if old.get(name) != new.get(name)]


def _downstream_of(assets: Mapping[str, Any], roots: Iterable[str]) -> dict[str, set[str]]:
    """Every asset downstream of a root, with the roots it descends from."""
    children: dict[str, list[str]] = {}
    for key, asset in assets.items():
        for dep in asset["deps"]:
            children.setdefault(dep["key"], []).append(key)
    reached: dict[str, set[str]] = {}
    for root in roots:
        pending, seen = list(children.get(root, [])), set()
        while pending:
            key = pending.pop()
            if key not in seen:
                seen.add(key)
                reached.setdefault(key, set()).add(root)
                pending += children.get(key, [])
    return reached


def changed_set_json(changed: ChangedSet) -> dict[str, Any]:
    return {
        "environment": changed.environment,
        "data_changed": changed.data_changed,
        "checks_only": changed.checks_only,
        "removed": changed.removed,
        "assets": {
            key: {
                "changes": change.kind,
                "reasons": {reason.value: list(details) for reason, details in change.reasons.items()},
                "upstream": list(change.upstream),
            }
            for key, change in changed.assets.items()
        },
        "notes": list(changed.notes),
    }


def format_changed_set(changed: ChangedSet, fmt: Literal["markdown", "json"] = "markdown") -> str:
    """The changed set as a pull-request comment (markdown) or as JSON."""
    if fmt == "json":
        return json.dumps(changed_set_json(changed), indent=2, sort_keys=True)
    lines = [f"### Changed assets against {changed.environment}'s definitions", ""]
    if not changed.assets:
        unchanged = f"No asset changes: the definitions match {changed.environment}'s."
        return "\n".join([*lines, unchanged, *_quoted(changed)])
    direct = [key for key in changed.data_changed if not changed.assets[key].upstream]
    lines += [
        f"Data changes: **{_count(changed.data_changed)}** ({len(direct)} directly, "
        f"{len(changed.data_changed) - len(direct)} only downstream of those). "
        f"Checks only: **{_count(changed.checks_only)}**. Removed: **{_count(changed.removed)}**.",
        "",
        "| Asset | Changes | Why |",
        "|---|---|---|",
    ]
    for kind in ("data", "checks only", "removed"):
        for key, change in changed.assets.items():
            if change.kind == kind:
                lines.append(f"| `{key}` | {kind} | {_why(change)} |")
    return "\n".join(lines + _quoted(changed))


def _count(keys: Sequence[str]) -> str:
    return f"{len(keys)} asset{'' if len(keys) == 1 else 's'}"


def _why(change: AssetChange) -> str:
    parts = [f"**{reason.value}**: {'; '.join(details)}" for reason, details in change.reasons.items()]
    if change.upstream:
        parts.append("downstream of " + ", ".join(f"`{key}`" for key in change.upstream))
    return "<br>".join(part.replace("|", "\\|") for part in parts)


def _quoted(changed: ChangedSet) -> list[str]:
    return ["", *(f"> {note}" for note in changed.notes)] if changed.notes else []


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataops_ops.preview.changes",
        description="Compare two definitions states (base: the environment's release; head: the change).",
    )
    parser.add_argument("base", type=Path)
    parser.add_argument("head", type=Path)
    parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    args = parser.parse_args(argv)
    try:
        changed = changed_set(load_state(args.base), load_state(args.head))
    except StatesNotComparableError as error:
        print(f"cannot compare {args.base} with {args.head}: {error}", file=sys.stderr)
        return 2
    print(format_changed_set(changed, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
