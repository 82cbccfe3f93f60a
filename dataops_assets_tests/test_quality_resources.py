"""The environment's values reach the checks and staging through resources, read when a step runs."""

from dataclasses import replace
from pathlib import Path

import dagster as dg
import pytest

from dataops_assets.assets.raw import raw_assets
from dataops_assets.assets.staging import staging_assets
from dataops_assets.environments import ENVIRONMENT_NAMES, settings_for
from dataops_assets.resources import GreatExpectationsResource, ThresholdsResource, build_resources
from dataops_assets_tests.fixtures.gx_month import FLIGHT_ROWS, MONTH, small_settings, write_small_landing


@pytest.mark.parametrize("name", ENVIRONMENT_NAMES)
def test_the_thresholds_resource_carries_every_threshold(name: str) -> None:
    thresholds = settings_for(name).thresholds
    assert ThresholdsResource.of(thresholds).thresholds == thresholds


def test_the_quarantine_gate_reads_its_limit_from_the_thresholds_resource(tmp_path: Path) -> None:
    settings = small_settings(tmp_path)
    write_small_landing(settings.landing_dir, [{**FLIGHT_ROWS[0], "dep_delay": "late"}, *FLIGHT_ROWS[1:]])

    def gate(max_share: float) -> dg.AssetCheckEvaluation:
        thresholds = ThresholdsResource.of(replace(settings.thresholds, max_quarantine_share=max_share))
        result = dg.materialize(
            [*raw_assets, *staging_assets],
            resources={**build_resources(settings), "thresholds": thresholds},
            partition_key=MONTH,
            raise_on_error=False,
        )
        [evaluation] = [
            e
            for e in result.get_asset_check_evaluations()
            if (e.asset_key.to_user_string(), e.check_name) == ("staging/flights", "quarantine_share")
        ]
        return evaluation

    assert gate(0.2).passed  # one of eight flights quarantined: 12.5 %
    failed = gate(0.1)
    assert (failed.passed, failed.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert failed.metadata["max_share"] == dg.MetadataValue.float(0.1)


def test_the_great_expectations_resource_keeps_its_own_context(tmp_path: Path) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    gx = GreatExpectationsResource.for_settings(settings)
    assert Path(gx.validations_dir) == settings.env_dir / "validations"
    assert gx.data_docs_index == settings.data_docs_dir / "index.html"
    assert gx.context is gx.context
    assert gx.batch_definition("staging.flights") is gx.batch_definition("staging.flights")
    assert gx.batch_definition("staging.weather") is not gx.batch_definition("staging.flights")
    assert GreatExpectationsResource.for_settings(settings).context is not gx.context
    assert not list(tmp_path.iterdir()), "an ephemeral context writes nothing"
