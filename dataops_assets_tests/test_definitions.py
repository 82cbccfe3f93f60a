"""The code location loads, and its asset graph matches the committed snapshot.

The snapshot (``snapshots/asset_graph.json``) lists every asset key with its deps, group, owners, kinds, tags
and partitions, and every asset check with its blocking flag and partitioning. A change to the graph makes
``test_asset_graph_matches_snapshot`` fail with a diff; when the change is intended, regenerate the file and
commit it with the change:

    UPDATE_SNAPSHOTS=1 .venv/bin/pytest dataops_assets_tests/test_definitions.py

(With ``UPDATE_SNAPSHOTS=1`` the test rewrites the file instead of comparing, and passes.)
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import dagster as dg

import dataops_assets.definitions as definitions_module
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import ENVIRONMENT_NAMES, settings_for

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE_VAR = "UPDATE_SNAPSHOTS"
_KIND_TAG_PREFIX = "dagster/kind/"


def _describe_partitions(partitions_def: dg.PartitionsDefinition) -> dict[str, Any]:
    described: dict[str, Any] = {"class": type(partitions_def).__name__}
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        described |= {"cron": partitions_def.cron_schedule, "timezone": partitions_def.timezone}
        described |= {"fmt": partitions_def.fmt}
    described["keys"] = list(partitions_def.get_partition_keys())
    return described


def _partitions_name(described: dict[str, Any]) -> str:
    keys = described["keys"]
    return f"{described['class']}[{keys[0]}..{keys[-1]}]" if keys else f"{described['class']}[]"


def asset_graph_snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """A deterministic, JSON-ready description of the asset graph and its checks.

    Partitions definitions are listed once under ``partitions`` and referred to by name from assets and checks.
    """
    graph = defs.resolve_asset_graph()
    partitions: dict[str, dict[str, Any]] = {}

    def partitions_ref(partitions_def: dg.PartitionsDefinition | None) -> str | None:
        if partitions_def is None:
            return None
        described = _describe_partitions(partitions_def)
        name = _partitions_name(described)
        assert partitions.setdefault(name, described) == described, f"two partitions definitions named {name}"
        return name

    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        assets[spec.key.to_user_string()] = {
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "group": spec.group_name,
            "owners": sorted(spec.owners),
            "kinds": sorted(spec.kinds),
            "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith(_KIND_TAG_PREFIX)},
            "partitions": partitions_ref(spec.partitions_def),
        }
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        check = graph.get_check_spec(key)
        checks[f"{key.asset_key.to_user_string()}:{key.name}"] = {
            "blocking": check.blocking,
            "partitions": partitions_ref(check.partitions_def),
        }
    return {"assets": assets, "asset_checks": checks, "partitions": partitions}


def _render(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_module_level_definitions_load() -> None:
    dg.Definitions.validate_loadable(definitions_module.defs)
    assert {job.name for job in definitions_module.defs.resolve_all_job_defs()} >= {"flights_pipeline"}


def test_definitions_of_every_environment_load(tmp_path: Path) -> None:
    for name in ENVIRONMENT_NAMES:
        defs = build_definitions(settings_for(name, data_root=tmp_path))
        dg.Definitions.validate_loadable(defs)
        io_manager = (defs.resources or {})["io_manager"]
        assert io_manager.database == str(tmp_path / name / "warehouse.duckdb")
    assert not list(tmp_path.iterdir())  # loading definitions writes nothing


def test_asset_graph_is_the_same_in_every_environment(tmp_path: Path) -> None:
    rendered = {_render(asset_graph_snapshot(build_definitions(settings_for(n, tmp_path)))) for n in ENVIRONMENT_NAMES}
    assert len(rendered) == 1


def test_asset_graph_matches_snapshot() -> None:
    """Compare against ``snapshots/asset_graph.json``; ``UPDATE_SNAPSHOTS=1`` rewrites it instead."""
    actual = _render(asset_graph_snapshot(definitions_module.defs))
    if os.environ.get(UPDATE_VAR) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(actual, encoding="utf-8")
        return
    assert SNAPSHOT.is_file(), f"no snapshot yet: run with {UPDATE_VAR}=1 to write {SNAPSHOT}"
    expected = SNAPSHOT.read_text(encoding="utf-8")
    if actual != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), "snapshot", "actual"))
        raise AssertionError(
            f"asset graph differs from {SNAPSHOT.name}; if intended, rerun with {UPDATE_VAR}=1:\n{diff}"
        )


def test_snapshot_pins_the_layers() -> None:
    """A few facts read from the snapshot itself, so a regenerated file cannot silently drop them."""
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assets = snapshot["assets"]
    assert sorted(assets) == sorted(
        [f"raw/{t}" for t in ("flights", "weather", "airports", "airlines", "planes")]
        + [f"staging/{t}" for t in ("flights", "weather", "airports", "airlines", "planes")]
        + ["quarantine/flights", "quarantine/weather", "core/flights", "marts/carrier_monthly", "marts/route_monthly"]
    )
    staged = ("airlines", "airports", "flights", "planes", "weather")
    assert assets["core/flights"]["deps"] == [f"staging/{t}" for t in staged]
    assert assets["marts/route_monthly"]["deps"] == ["core/flights"]
    assert assets["raw/planes"]["partitions"] is None
    monthly = "MonthlyPartitionsDefinition[2013-01..2013-12]"
    assert {a["partitions"] for a in assets.values()} == {None, monthly}
    assert snapshot["partitions"][monthly]["keys"] == [f"2013-{m:02d}" for m in range(1, 13)]
    assert {a["group"] for a in assets.values()} == {"raw", "staging", "core", "marts"}
    checks = snapshot["asset_checks"]
    assert checks["staging/flights:quarantine_share"] == {"blocking": True, "partitions": monthly}


def test_ui_materializations_run_in_one_process_like_the_job() -> None:
    """DuckDB has one writer per file and the warehouse I/O manager holds the file for the run: the asset job the
    UI launches for ad-hoc materializations must not spread a run's steps over processes."""
    defs = definitions_module.defs
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("flights_pipeline").executor_def.name == "in_process"
