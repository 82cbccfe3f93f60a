"""The code location loads, and its asset graph matches the committed snapshot.

The snapshot (``snapshots/asset_graph.json``, written by syrupy) lists every asset with its deps, group, owners,
kinds, tags, metadata and partitions; every asset check with its blocking flag and partitioning; the jobs with
their assets; the schedules, the sensors and the resource keys. A change to the graph makes
``test_asset_graph_matches_snapshot`` fail with a diff; when the change is intended, refresh the file and commit it
with the change:

    .venv/bin/pytest dataops_assets_tests/test_definitions.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.location import PyTestLocation
from syrupy.types import SnapshotIndex

import dataops_assets.definitions as definitions_module
from dataops_assets.definitions import build_definitions
from dataops_assets.environments import ENVIRONMENT_NAMES, settings_for

_KIND_TAG_PREFIX = "dagster/kind/"
MONTHLY = "MonthlyPartitionsDefinition[2013-01..2013-12]"


class AssetGraphSnapshot(JSONSnapshotExtension):
    """syrupy's JSON snapshot, kept at ``snapshots/asset_graph.json`` rather than named after the test."""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        return str(Path(test_location.filepath).parent / "snapshots")

    @classmethod
    def get_snapshot_name(cls, *, test_location: PyTestLocation, index: SnapshotIndex = 0) -> str:
        return "asset_graph"


@pytest.fixture
def graph_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(AssetGraphSnapshot)


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


class _Partitions:
    """Partitions definitions, described once and referred to by name from assets, checks and jobs."""

    def __init__(self) -> None:
        self.described: dict[str, dict[str, Any]] = {}

    def ref(self, partitions_def: dg.PartitionsDefinition | None) -> str | None:
        if partitions_def is None:
            return None
        described = _describe_partitions(partitions_def)
        name = _partitions_name(described)
        assert self.described.setdefault(name, described) == described, f"two partitions definitions named {name}"
        return name


def _metadata(metadata: Any) -> dict[str, str]:
    """Definition metadata as text; Dagster's own entries (code references with absolute paths) left out."""
    return {k: str(getattr(v, "value", v)) for k, v in sorted(metadata.items()) if not k.startswith("dagster/")}


def _assets(defs: dg.Definitions, partitions: _Partitions) -> dict[str, Any]:
    assets = {}
    for spec in sorted(defs.resolve_all_asset_specs(), key=lambda s: s.key.to_user_string()):
        condition = spec.automation_condition
        assets[spec.key.to_user_string()] = {
            "deps": sorted(dep.asset_key.to_user_string() for dep in spec.deps),
            "group": spec.group_name,
            "owners": sorted(spec.owners),
            "kinds": sorted(spec.kinds),
            "tags": {k: v for k, v in sorted(spec.tags.items()) if not k.startswith(_KIND_TAG_PREFIX)},
            "metadata": _metadata(spec.metadata),
            "automation_condition": condition.name if condition else None,
            "partitions": partitions.ref(spec.partitions_def),
        }
    return assets


def _checks(defs: dg.Definitions, partitions: _Partitions) -> dict[str, Any]:
    graph = defs.resolve_asset_graph()
    checks = {}
    for key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        check = graph.get_check_spec(key)
        checks[f"{key.asset_key.to_user_string()}:{key.name}"] = {
            "blocking": check.blocking,
            "partitions": partitions.ref(check.partitions_def),
        }
    return checks


def _jobs(defs: dg.Definitions, partitions: _Partitions) -> dict[str, Any]:
    jobs = {}
    for job in sorted(defs.resolve_all_job_defs(), key=lambda j: j.name):
        if job.name.startswith("__"):  # Dagster's implicit asset job: every asset, covered above
            continue
        jobs[job.name] = {
            "assets": sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys),
            "executor": job.executor_def.name,
            "partitions": partitions.ref(job.partitions_def),
        }
    return jobs


def _schedules(defs: dg.Definitions) -> dict[str, Any]:
    return {
        schedule.name: {
            "cron": schedule.cron_schedule,
            "timezone": schedule.execution_timezone,
            "job": schedule.job_name,
            "default_status": schedule.default_status.value,
        }
        for schedule in sorted((defs.resolve_schedule_def(s.name) for s in defs.schedules or []), key=lambda s: s.name)
    }


def _sensors(defs: dg.Definitions) -> dict[str, Any]:
    return {
        sensor.name: {
            "type": sensor.sensor_type.value,
            "jobs": sorted(target.job_name for target in sensor.targets),
            "default_status": sensor.default_status.value,
            "minimum_interval_seconds": sensor.minimum_interval_seconds,
        }
        for sensor in sorted(defs.sensors or [], key=lambda s: s.name)
    }


def asset_graph_snapshot(defs: dg.Definitions) -> dict[str, Any]:
    """A deterministic, JSON-ready description of the asset graph, its checks and what runs it."""
    partitions = _Partitions()
    snapshot = {
        "assets": _assets(defs, partitions),
        "asset_checks": _checks(defs, partitions),
        "jobs": _jobs(defs, partitions),
        "schedules": _schedules(defs),
        "sensors": _sensors(defs),
        "resources": {key: type(resource).__name__ for key, resource in sorted((defs.resources or {}).items())},
    }
    return snapshot | {"partitions": partitions.described}


def test_module_level_definitions_load() -> None:
    dg.Definitions.validate_loadable(definitions_module.defs)
    assert {job.name for job in definitions_module.defs.resolve_all_job_defs()} >= {"flights_pipeline"}


def test_definitions_of_every_environment_load(tmp_path: Path) -> None:
    for name in ENVIRONMENT_NAMES:
        defs = build_definitions(settings_for(name, data_root=tmp_path))
        dg.Definitions.validate_loadable(defs)
        io_manager = (defs.resources or {})["io_manager"]
        assert io_manager.root_uri == str(tmp_path / name / "lake")
    assert not list(tmp_path.iterdir())  # loading definitions writes nothing


def _without_default_status(snapshot: dict[str, Any]) -> dict[str, Any]:
    """The snapshot without the schedules' and sensors' default status: which ones start running is each
    environment's choice (the lake maintenance schedule is off in dev)."""
    return snapshot | {
        kind: {name: {k: v for k, v in item.items() if k != "default_status"} for name, item in snapshot[kind].items()}
        for kind in ("schedules", "sensors")
    }


def test_asset_graph_is_the_same_in_every_environment(tmp_path: Path) -> None:
    snapshots = [
        _without_default_status(asset_graph_snapshot(build_definitions(settings_for(name, tmp_path))))
        for name in ENVIRONMENT_NAMES
    ]
    assert all(snapshot == snapshots[0] for snapshot in snapshots)


def test_asset_graph_matches_snapshot(graph_snapshot: SnapshotAssertion) -> None:
    """Compare against ``snapshots/asset_graph.json``; ``--snapshot-update`` rewrites it instead."""
    assert asset_graph_snapshot(definitions_module.defs) == graph_snapshot


def test_snapshot_pins_the_layers() -> None:
    """A few facts of the graph pinned by hand, so a refreshed snapshot cannot silently drop them."""
    snapshot = asset_graph_snapshot(definitions_module.defs)
    assets = snapshot["assets"]
    assert sorted(assets) == sorted(
        [f"raw/{t}" for t in ("flights", "weather", "airports", "airlines", "planes")]
        + [f"staging/{t}" for t in ("flights", "weather", "airports", "airlines", "planes")]
        + [
            "quarantine/quarantined_flights",
            "quarantine/quarantined_weather",
            "core/flights",
            "marts/carrier_monthly",
            "marts/route_monthly",
        ]
        + ["publish/months"]
    )
    staged = ("airlines", "airports", "flights", "planes", "weather")
    assert assets["core/flights"]["deps"] == [f"staging/{t}" for t in staged]
    assert assets["marts/route_monthly"]["deps"] == ["core/flights"]
    assert assets["publish/months"]["deps"] == ["core/flights", "marts/carrier_monthly", "marts/route_monthly"]
    assert assets["raw/planes"]["partitions"] is None
    assert {a["partitions"] for a in assets.values()} == {None, MONTHLY}
    assert snapshot["partitions"][MONTHLY]["keys"] == [f"2013-{m:02d}" for m in range(1, 13)]
    assert {a["group"] for a in assets.values()} == {"raw", "staging", "quarantine", "core", "marts", "publish"}
    assert {key for key, a in assets.items() if a["tags"].get("published") == "true"} == {
        "core/flights", "marts/carrier_monthly", "marts/route_monthly",
    }  # fmt: skip
    checks = snapshot["asset_checks"]
    assert checks["staging/flights:quarantine_share"] == {"blocking": True, "partitions": MONTHLY}
    assert {"core/flights", "marts/carrier_monthly"} <= set(snapshot["jobs"]["flights_pipeline"]["assets"])
    assert snapshot["schedules"]["monthly_replay"]["job"] == "flights_pipeline"


def test_ui_materializations_run_in_one_process_like_the_job() -> None:
    """A run's steps share one process (each step process would import Great Expectations again; months run in
    parallel as separate runs instead), for the jobs and for the asset job the UI launches ad-hoc materializations
    with."""
    defs = definitions_module.defs
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == "in_process"
    assert defs.resolve_job_def("flights_pipeline").executor_def.name == "in_process"
