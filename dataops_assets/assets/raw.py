"""Raw layer: the landed files as they are (all text), plus the source file and line of every row."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from dataops_assets import landing
from dataops_assets.assets.measure import Stopwatch
from dataops_assets.partitions import MONTHLY, month_start
from dataops_assets.resources import LandingZone
from dataops_assets.storage import PARTITION_COLUMN
from dataops_assets.transforms import flights, weather
from dataops_assets.transforms.reference import REFERENCE_SPECS

LAYER = "raw"


FILE_CHECK = "landed_file_readable"


def _raw_asset(name: str, description: str, partitioned: bool) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    # A monthly file that cannot be read yields no output (the table keeps its partition) and a failed blocking
    # check that names the file, the partition and the problem.
    file_check = dg.AssetCheckSpec(
        FILE_CHECK,
        asset=[LAYER, name],
        blocking=True,
        partitions_def=MONTHLY,
        description="The month's landing file exists, matches its control record (rows, bytes, SHA-256) and is an "
        "uncompressed UTF-8 CSV with the expected columns (in any order) and at least one row; a file without a "
        "control record is published with a warning that it could not be verified.",
    )
    return dg.asset(
        key=[LAYER, name],
        check_specs=[file_check] if partitioned else None,
        output_required=not partitioned,
        group_name=LAYER,
        owners=["team:data-platform"],
        kinds={"csv", "deltalake"},
        tags={"layer": LAYER},
        partitions_def=MONTHLY if partitioned else None,
        metadata={"partition_expr": PARTITION_COLUMN} if partitioned else None,
        description=description,
    )


@_raw_asset("flights", "Flights of one month as landed in flights/YYYY-MM.csv, every column as text.", True)
def raw_flights(context: dg.AssetExecutionContext, landing_zone: LandingZone) -> Iterator[Any]:
    yield from _read_month(context, landing_zone.flights_file(context.partition_key), flights.SOURCE_COLUMNS)


@_raw_asset("weather", "Hourly weather at EWR, JFK and LGA for one month as landed in weather/YYYY-MM.csv.", True)
def raw_weather(context: dg.AssetExecutionContext, landing_zone: LandingZone) -> Iterator[Any]:
    yield from _read_month(context, landing_zone.weather_file(context.partition_key), weather.SOURCE_COLUMNS)


def _read_month(context: dg.AssetExecutionContext, path: Path, columns: list[str]) -> Iterator[Any]:
    stopwatch = Stopwatch()
    source = {"source_file": dg.MetadataValue.path(str(path)), "partition": context.partition_key}
    try:
        landed = landing.read_landed_file(path, columns, partition=context.partition_key)
    except (landing.LandingFileError, landing.LandingFileMissingError) as error:
        context.log.error(str(error))
        yield dg.AssetCheckResult(check_name=FILE_CHECK, passed=False, description=str(error), metadata=source)
        return
    frame = landed.frame
    frame.insert(0, "_partition_month", month_start(context))
    yield dg.Output(frame, metadata=stopwatch.metadata(len(frame), len(frame), **source))
    yield _file_check(context, landed, path, source=source)


def _file_check(
    context: dg.AssetExecutionContext, landed: landing.LandedRead, path: Path, source: dict[str, Any]
) -> dg.AssetCheckResult:
    """Passed when the file matched its control record; WARN (never blocking) when it had none to match."""
    metadata = {**source, "rows": len(landed.frame), **_file_metadata(landed)}
    if landed.control is None:
        warning = _unverified(f"{path} (partition {context.partition_key})", path)
        context.log.warning(warning)
        return dg.AssetCheckResult(
            check_name=FILE_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=warning,
            metadata=metadata,
        )
    return dg.AssetCheckResult(check_name=FILE_CHECK, passed=True, metadata=metadata)


def _file_metadata(landed: landing.LandedRead) -> dict[str, Any]:
    control = "verified" if landed.control is not None else "missing: not verified"
    return {
        "control_record": control,
        "columns_in_file": ", ".join(landed.columns_found),
        "columns_reordered": landed.reordered,
    }


def _unverified(where: str, path: Path) -> str:
    record = landing.control_file(path).name
    return f"{where}: no control record {record}; the file was read and published without verifying it is complete"


def _reference_asset(table: str) -> dg.AssetsDefinition:
    columns = list(REFERENCE_SPECS[table].source_columns)

    @_raw_asset(table, f"The {table} reference table as landed in reference/{table}.csv, as text.", False)
    def _raw_reference(context: dg.AssetExecutionContext, landing_zone: LandingZone) -> dg.Output[pd.DataFrame]:
        stopwatch = Stopwatch()
        path = landing_zone.reference_file(table)
        landed = landing.read_landed_file(path, columns)  # a mismatch with its control record raises: nothing written
        if landed.control is None:
            context.log.warning(_unverified(str(path), path))
        frame = landed.frame
        metadata = {"source_file": dg.MetadataValue.path(str(path)), **_file_metadata(landed)}
        return dg.Output(frame, metadata=stopwatch.metadata(len(frame), len(frame), **metadata))

    return _raw_reference


raw_reference_assets = [_reference_asset(table) for table in REFERENCE_SPECS]
raw_assets = [raw_flights, raw_weather, *raw_reference_assets]
