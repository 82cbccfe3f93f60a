"""The definitions state: what decides each asset's data and its checks, as JSON that a preview compares.

Built from the Definitions' public data for one environment. Per asset key: its code version (``catalog``: the
normalized source its step reaches), its upstream keys with their partition mappings, its partitions, its data rules
and its checks. Data rules are the quarantine-marked expectations of the suites its step enforces (they decide which
rows staging keeps) and the accepted-exceptions entries of those expectations; they belong to every asset the step
writes (staging and its quarantine table). A check is its blocking flag, partitions, additional inputs, a hash of
its code and, for a Great Expectations check, a hash per expectation it evaluates and per accepted-exceptions entry
that judges its failures. Expectations are keyed by ``meta.name`` and entries by ``id``: their order and the files'
layout do not count, nor does an entry's prose (what, why, baseline, owner).

Per-environment values stay out: metadata (table names, URIs, code references and suite files with their absolute
paths), resources (lake URI, data root, ports), descriptions, tags and owners. The environment's thresholds are in:
they differ between environments, so two states compare only when built for the same one (``changes`` refuses
otherwise). A deploy records its release's state for its environment; a preview builds the pull request's for prod:

    python -m dataops_ops.preview.state --env prod --out definitions-state.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

# First: the definitions module quiets the preview and beta warnings before the asset modules are imported.
from dataops_assets.definitions import build_definitions

# isort: split
import dagster as dg

from dataops_assets.catalog import compute_version
from dataops_assets.environments import ENVIRONMENT_NAMES, Settings, settings_for
from dataops_assets.quality.accepted import AcceptedException, AcceptedExceptions, load_accepted_exceptions
from dataops_assets.quality.gx_suites import SuiteFileError, is_quarantine_rule, load_suite

STATE_FORMAT = 1
# The metadata entry with which a Great Expectations check names the suite file it runs (``quality.gx_checks``).
SUITE_FILE = "suite_file"
State = dict[str, Any]


def state_for(settings: Settings) -> State:
    """The state of the Definitions that ``settings`` build."""
    return definitions_state(build_definitions(settings), settings)


def definitions_state(defs: dg.Definitions, settings: Settings) -> State:
    """Per asset key: code version, deps, partitions, data rules and checks; JSON-ready, keys sorted."""
    steps = [d for d in [*(defs.assets or []), *(defs.asset_checks or [])] if isinstance(d, dg.AssetsDefinition)]
    accepted = load_accepted_exceptions()
    checks, rules = _checks_and_rules(steps, accepted)
    assets = {}
    for spec in defs.resolve_all_asset_specs():
        key = spec.key.to_user_string()
        assets[key] = {
            "code_version": spec.code_version,
            "deps": _deps(spec.deps),
            "partitions": _partitions(spec.partitions_def),
            "data_rules": dict(sorted(rules.get(key, {}).items())),
            "checks": dict(sorted(checks.get(key, {}).items())),
        }
    return {
        "format": STATE_FORMAT,
        "environment": settings.name,
        # ast.unparse, behind the code versions, may write the same code otherwise in another Python version
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "thresholds": json.loads(json.dumps(asdict(settings.thresholds))),
        "assets": dict(sorted(assets.items())),
    }


def _checks_and_rules(
    steps: Sequence[dg.AssetsDefinition], accepted: AcceptedExceptions
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The checks per asset key, and the data rules per asset key: a suite's quarantine rules belong to every
    asset written by the step that writes the suite's asset."""
    written_with = {key: definition.keys for definition in steps for key in definition.keys}
    checks: dict[str, dict[str, Any]] = {}
    rules: dict[str, dict[str, Any]] = {}
    for step in steps:
        specs = list(step.check_specs)
        code = compute_version(step) if specs else ""
        for spec in specs:
            entry: dict[str, Any] = {
                "blocking": spec.blocking,
                "inputs": sorted(dep.asset_key.to_user_string() for dep in spec.additional_deps),
                "partitions": _partitions(spec.partitions_def),
                "code": code,
            }
            suite = _suite_of(spec)
            if suite is not None:
                name, content = suite
                entry["suite"] = _evaluated(name, content, accepted)
                enforced = _enforced(name, content, accepted)
                for key in written_with.get(spec.asset_key, {spec.asset_key}) if any(enforced.values()) else ():
                    rules.setdefault(key.to_user_string(), {})[name] = enforced
            checks.setdefault(spec.asset_key.to_user_string(), {})[spec.name] = entry
    return checks, rules


def _suite_of(spec: dg.AssetCheckSpec) -> tuple[str, dict[str, Any]] | None:
    """(suite name, suite) of a Great Expectations check; a suite file that cannot be read stands as its bytes."""
    entry = spec.metadata.get(SUITE_FILE)
    if entry is None:
        return None
    path = Path(str(getattr(entry, "value", entry)))
    try:
        return path.stem, load_suite(path)
    except SuiteFileError:
        unreadable = _digest(path.read_bytes().decode(errors="replace")) if path.is_file() else "missing"
        return path.stem, {"expectations": [], "unreadable": unreadable}


def _evaluated(name: str, suite: dict[str, Any], accepted: AcceptedExceptions) -> dict[str, Any]:
    """What the suite's check evaluates: the expectations not marked quarantine, the entries judging them, and
    the suite's other fields."""
    expectations = [e for e in suite["expectations"] if not is_quarantine_rule(e)]
    return {
        "suite": _digest({field: value for field, value in suite.items() if field != "expectations"}),
        "expectations": _by_name(expectations),
        "accepted": _entries(accepted, name, expectations),
    }


def _enforced(name: str, suite: dict[str, Any], accepted: AcceptedExceptions) -> dict[str, Any]:
    """What the staging step enforces row by row: the quarantine rules, and the entries whose values it keeps."""
    rules = [e for e in suite["expectations"] if is_quarantine_rule(e)]
    enforced = {"expectations": _by_name(rules), "accepted": _entries(accepted, name, rules)}
    return enforced | ({"unreadable": suite["unreadable"]} if "unreadable" in suite else {})


def _by_name(expectations: Iterable[dict[str, Any]]) -> dict[str, str]:
    return dict(sorted((str(e["meta"]["name"]), _digest(e)) for e in expectations))


def _entries(accepted: AcceptedExceptions, suite: str, expectations: Iterable[dict[str, Any]]) -> dict[str, str]:
    names = {e["meta"]["name"] for e in expectations}
    entries = [entry for name, entry in accepted.for_suite(suite).items() if name in names]
    return dict(sorted((entry.id, _digest(_what_is_accepted(entry))) for entry in entries))


def _what_is_accepted(entry: AcceptedException) -> dict[str, Any]:
    """The fields that decide what an entry accepts; its other suites and its prose do not count."""
    return {
        "expectation": entry.expectation,
        "values": sorted(entry.values),
        "share": asdict(entry.share) if entry.share is not None else None,
        "expires": entry.expires.isoformat() if entry.expires is not None else None,
    }


def _deps(deps: Iterable[dg.AssetDep]) -> list[dict[str, Any]]:
    described = [
        {"key": dep.asset_key.to_user_string(), "partition_mapping": _mapping(dep.partition_mapping)} for dep in deps
    ]
    return sorted(described, key=lambda dep: str(dep["key"]))


def _mapping(mapping: dg.PartitionMapping | None) -> str | None:
    return None if mapping is None else repr(mapping)  # the kind and its parameters, e.g. offsets


def _partitions(partitions_def: dg.PartitionsDefinition | None) -> dict[str, Any] | None:
    if partitions_def is None:
        return None
    described: dict[str, Any] = {"kind": type(partitions_def).__name__, "description": str(partitions_def)}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        end = partitions_def.end
        described |= {"cron": partitions_def.cron_schedule, "timezone": partitions_def.timezone}
        described |= {"fmt": partitions_def.fmt, "start": partitions_def.start.isoformat()}
        described["end"] = end.isoformat() if end is not None else None
    elif isinstance(partitions_def, dg.StaticPartitionsDefinition):
        described["keys"] = list(partitions_def.get_partition_keys())
    return described


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def write_state(state: State, out: Path) -> None:
    """Write ``state`` to ``out`` whole or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dataops_ops.preview.state",
        description="Write the definitions state of an environment (what a preview compares) as JSON.",
    )
    parser.add_argument("--env", required=True, choices=ENVIRONMENT_NAMES, help="the environment's settings")
    parser.add_argument("--out", required=True, type=Path, help="the JSON file to write")
    args = parser.parse_args(argv)
    state = state_for(settings_for(args.env))
    write_state(state, args.out)
    print(f"{args.out}: definitions state of {args.env}, {len(state['assets'])} assets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
