"""Staging layer: typed rows with a natural key; rows that break a row rule go to the quarantine schema."""

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets.assets.measure import Stopwatch
from dataops_assets.partitions import MONTHLY, month_start
from dataops_assets.quality.accepted import load_accepted_exceptions
from dataops_assets.quality.gx_suites import quarantine_rules, spec_for
from dataops_assets.quality.quarantine import quarantine_check_result, quarantine_check_spec
from dataops_assets.quality.reference_gate import evaluate_gate, gate_check_specs, published_rows
from dataops_assets.resources import LandingZone, ThresholdsResource
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms.flights import stage_flights
from dataops_assets.transforms.reference import REFERENCE_SPECS
from dataops_assets.transforms.row_expectations import RowExpectations
from dataops_assets.transforms.typing import Staged
from dataops_assets.transforms.weather import stage_weather

LAYER = "staging"
QUARANTINE_LAYER = "quarantine"
_OWNERS = ["team:flight-analytics"]
_KINDS = {"pandas", "deltalake"}
_TAGS = {"layer": LAYER}
# Read when the definitions load, like the GX checks do: a broken file stops the load with its reason.
ACCEPTED = load_accepted_exceptions()


def quarantine_table(subject: str) -> str:
    """The quarantine table of a staged subject: its own name, so the graph never shows two "flights" nodes."""
    return f"quarantined_{subject}"


def _staged_outs(subject: str, description: str) -> dict[str, dg.AssetOut]:
    staged = dg.AssetOut(
        key=[LAYER, subject],
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags=_TAGS,
        metadata={"partition_expr": PARTITION_COLUMN},
        description=description,
    )
    quarantine = dg.AssetOut(
        key=[QUARANTINE_LAYER, quarantine_table(subject)],
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags={"layer": QUARANTINE_LAYER},
        metadata={"partition_expr": PARTITION_COLUMN},
        description=f"Rows of raw {subject} that broke a row rule: the rule, a detail, the original values, "
        "the partition, source file and line, the run and the time. Never read by consumers.",
    )
    return {_output_name(LAYER, subject): staged, _output_name(QUARANTINE_LAYER, quarantine_table(subject)): quarantine}


def _output_name(layer: str, table: str) -> str:
    """The op output of a table: its asset key joined with ``__``, as Dagster names an ``AssetOut`` by default."""
    return f"{layer}__{table}"


def _staging_asset(
    subject: str, description: str, stage: Callable[[pd.DataFrame, pd.Timestamp, RowExpectations], Staged]
) -> dg.AssetsDefinition:
    staged_key = dg.AssetKey([LAYER, subject])
    suite = spec_for((LAYER, subject))

    @dg.multi_asset(
        name=f"stage_{subject}",
        outs=_staged_outs(subject, description),
        ins={"raw": dg.AssetIn(key=["raw", subject])},
        partitions_def=MONTHLY,
        check_specs=[quarantine_check_spec(staged_key, MONTHLY)],
        can_subset=False,
    )
    def _stage(context: dg.AssetExecutionContext, raw: pd.DataFrame, thresholds: ThresholdsResource) -> Iterator[Any]:
        stopwatch = Stopwatch()
        # The suite's quarantine-marked expectations judge every typed row here, before staging is written.
        # Values declared as known gaps (accepted exceptions) stay staged, counted as ``accepted/<rule>``.
        expectations = quarantine_rules(suite, thresholds.thresholds, context.partition_key).with_accepted(
            ACCEPTED.accepted_values(suite.name, dt.date.today())
        )
        staged = stage(raw, month_start(context), expectations)
        quarantined = staged.quarantined.assign(_run_id=context.run.run_id, _quarantined_at=pd.Timestamp.now("UTC"))
        quarantined["_quarantined_at"] = quarantined["_quarantined_at"].dt.tz_localize(None)
        accepted = {f"accepted/{rule}": n for rule, n in expectations.accepted_counts(staged.valid).items()}
        counts = stopwatch.metadata(len(raw), len(staged.valid), rows_quarantined=len(quarantined), **accepted)
        yield dg.Output(staged.valid, output_name=_output_name(LAYER, subject), metadata=counts)
        yield dg.Output(
            quarantined,
            output_name=_output_name(QUARANTINE_LAYER, quarantine_table(subject)),
            metadata=_rule_counts(quarantined),
        )
        yield quarantine_check_result(
            staged_key,
            rows_in=len(raw),
            staged=len(staged.valid),
            quarantined=quarantined,
            max_share=thresholds.max_quarantine_share,
        )

    return _stage


def _rule_counts(quarantined: pd.DataFrame) -> dict[str, int]:
    by_rule = quarantined["rule"].value_counts()
    return {"rows_quarantined": len(quarantined), **{f"rule/{rule}": int(n) for rule, n in by_rule.items()}}


stage_flights_asset = _staging_asset(
    "flights",
    "Flights typed, keyed by flight_id (scheduled local departure, carrier and number, origin), with local and "
    "UTC departure times, the scheduled hour in UTC, cancelled and diverted flags and delay fields.",
    stage_flights,
)
stage_weather_asset = _staging_asset(
    "weather",
    "Hourly weather typed and keyed by observation_id (origin and UTC hour).",
    stage_weather,
)


def _reference_asset(table: str) -> dg.AssetsDefinition:
    # The gate runs before the output: a bad landed file yields failed checks and no table, so the published
    # table (and every month that reads it) stays as it was, and the run fails naming the file.
    key = dg.AssetKey([LAYER, table])

    @dg.asset(
        key=key,
        ins={"raw": dg.AssetIn(key=["raw", table])},
        check_specs=gate_check_specs(table, key),
        output_required=False,
        group_name=LAYER,
        owners=_OWNERS,
        kinds=_KINDS,
        tags=_TAGS,
        description=f"The {table} reference table typed, one row per {REFERENCE_SPECS[table].key}.",
    )
    def _stage_reference(
        context: dg.AssetExecutionContext, raw: pd.DataFrame, thresholds: ThresholdsResource, landing_zone: LandingZone
    ) -> Iterator[Any]:
        stopwatch = Stopwatch()
        source = landing_zone.reference_file(table)
        published = published_rows(context.instance, key)
        gate = evaluate_gate(table, raw, source, published, thresholds.max_reference_shrink)
        if gate.staged is None:
            context.log.error(gate.message)
            yield from gate.results
            raise dg.Failure(description=gate.message, metadata={"source_file": dg.MetadataValue.path(str(source))})
        yield dg.Output(gate.staged, metadata=stopwatch.metadata(len(raw), len(gate.staged)))
        yield from gate.results

    return _stage_reference


staging_assets = [stage_flights_asset, stage_weather_asset, *(_reference_asset(t) for t in REFERENCE_SPECS)]
