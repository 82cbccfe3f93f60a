"""The suites on the real January in dev (the 10 % sample): every critical expectation holds, and the source's
known referential gaps pass as accepted exceptions (``expectations/accepted_exceptions.yaml``), still counted with
their offending values in the check's metadata, never silently removed.

The real data has 7,602 flights (2,700 in dev's January sample: 65) to BQN, SJU, STT and PSE, which are not in
``airports``, and 52,606 flights whose tail number is not in ``planes``.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from deltalake import DeltaTable

from dataops_assets.assets.core import core_assets
from dataops_assets.assets.marts import mart_assets
from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import staging_assets
from dataops_assets.environments import Settings, settings_for
from dataops_assets.landing import land
from dataops_assets.quality.gx_checks import CHECK_NAME, gx_asset_checks
from dataops_assets.quality.gx_suites import spec_for
from dataops_assets.quality.gx_validation import run_suite
from dataops_assets.resources import GreatExpectationsResource, build_resources
from dataops_ops.docs import build_data_docs_report

pytestmark = pytest.mark.real_data

MONTH = "2013-01"
UNKNOWN_AIRPORTS = {"BQN", "SJU", "STT", "PSE"}


@pytest.fixture(scope="module")
def january(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dg.ExecuteInProcessResult]:
    settings = settings_for("dev", data_root=tmp_path_factory.mktemp("real-january"))
    land(settings, months=(MONTH,))
    result = dg.materialize(
        [*raw_assets, *staging_assets, *core_assets, *mart_assets, *gx_asset_checks()],
        resources=build_resources(settings),
        partition_key=MONTH,
        raise_on_error=False,
    )
    return settings, result


@pytest.fixture(scope="module")
def evaluations(january: tuple[Settings, dg.ExecuteInProcessResult]) -> dict[str, Any]:
    _, result = january
    found = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    return {e.asset_key.to_user_string(): e for e in found}


def test_every_critical_expectation_holds_and_everything_is_published(
    january: tuple[Settings, dg.ExecuteInProcessResult], evaluations: dict[str, Any]
) -> None:
    _, result = january
    assert result.success
    assert set(evaluations) == {
        "staging/flights", "staging/weather", "core/flights", "marts/carrier_monthly", "marts/route_monthly",
    }  # fmt: skip
    for key, evaluation in evaluations.items():
        assert evaluation.partition == MONTH
        assert evaluation.metadata["critical_failed"] == dg.MetadataValue.int(0), (key, evaluation.description)
        assert evaluation.metadata["expectations_errored"] == dg.MetadataValue.int(0), key
        assert evaluation.passed or evaluation.severity == dg.AssetCheckSeverity.WARN, key
    for key, evaluation in evaluations.items():  # a normal month is green: its known gaps are accepted exceptions
        assert evaluation.passed, (key, evaluation.description)
    published = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert {"core/flights", "marts/carrier_monthly", "marts/route_monthly"} <= published


def test_flights_to_airports_missing_from_the_reference_are_accepted_and_counted(evaluations: dict[str, Any]) -> None:
    staged = evaluations["staging/flights"]
    assert staged.passed
    metadata = staged.metadata
    assert metadata["rows_validated"] == dg.MetadataValue.int(2_700)
    assert metadata["dest_in_airports.unexpected_count"] == dg.MetadataValue.int(65)
    assert metadata["dest_in_airports.accepted_count"] == dg.MetadataValue.int(65)
    offending = {entry["value"]: entry["count"] for entry in metadata["dest_in_airports.offending_values"].value}
    assert offending == {"SJU": 50, "STT": 7, "BQN": 5, "PSE": 3}
    assert metadata["dest_in_airports.distinct_offending_values"] == dg.MetadataValue.int(4)
    assert all(key.endswith(("/EWR", "/JFK", "/LGA")) for key in metadata["dest_in_airports.offending_keys"].value)
    for airport in UNKNOWN_AIRPORTS:
        assert airport in (staged.description or "")

    assert "accepted (destinations_missing_from_airports)" in metadata["failed_expectations"].value

    routes = evaluations["marts/route_monthly"].metadata
    assert {entry["value"] for entry in routes["dest_in_airports.offending_values"].value} == UNKNOWN_AIRPORTS
    assert routes["expectations_accepted"] == dg.MetadataValue.int(1)


def test_planes_missing_from_the_reference_are_accepted_within_their_band(evaluations: dict[str, Any]) -> None:
    metadata = evaluations["staging/flights"].metadata
    assert metadata["tailnum_in_planes.severity"] == dg.MetadataValue.text("warning")
    assert metadata["tailnum_in_planes.unexpected_count"] == dg.MetadataValue.int(445)
    assert metadata["tailnum_in_planes.accepted_count"] == dg.MetadataValue.int(445)  # 16.58 %, in 12 % to 18 %
    top = metadata["tailnum_in_planes.offending_values"].value
    assert len(top) == 10 and top[0]["count"] >= top[-1]["count"]
    assert metadata["tailnum_in_planes.distinct_offending_values"].value > 10
    assert (metadata["warning_failed"], metadata["expectations_accepted"]) == (
        dg.MetadataValue.int(0), dg.MetadataValue.int(2),
    )  # fmt: skip
    core = evaluations["core/flights"].metadata
    assert "tailnum_in_planes.unexpected_count" not in core  # judged once, on staging
    assert core["status"] == dg.MetadataValue.text("passed")  # 84 % of planes known, within its band


def test_data_docs_show_every_suite(january: tuple[Settings, dg.ExecuteInProcessResult]) -> None:
    settings, _ = january
    report = build_data_docs_report(settings)
    assert (report.validations, report.skipped) == (5, ())
    index = report.index.read_text()
    for suite in ("staging.flights", "staging.weather", "core.flights", "marts.carrier_monthly"):
        assert suite in index
    assert Path(settings.data_docs_dir / "validations" / "staging" / "flights" / MONTH).is_dir()


def test_core_blocks_a_month_whose_known_plane_share_collapses(
    january: tuple[Settings, dg.ExecuteInProcessResult],
) -> None:
    """The real January core passes known_plane_share_in_band; with two in three planes unknown (as after a planes
    file cut in half), the same frame fails it as critical."""
    settings, _ = january
    stored = DeltaTable(f"{settings.lake_uri}/core/flights").to_pyarrow_table()
    core = stored.to_pandas(coerce_temporal_nanoseconds=True).drop(columns=["partition_month"])  # as the check sees it
    spec = spec_for(("core", "flights"))
    gx = GreatExpectationsResource.for_settings(settings)

    def outcome_of(frame: Any) -> Any:
        return run_suite(spec, frame, MONTH, great_expectations=gx, thresholds=settings.thresholds)

    good = outcome_of(core)
    assert good.status == "passed", [f.name for f in good.failures]
    broken = core.assign(plane_known=core.index % 3 == 0)
    bad = outcome_of(broken)
    assert bad.status == "critical"
    assert [f.name for f in bad.critical_failures] == ["known_plane_share_in_band"]
