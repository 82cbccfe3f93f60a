"""Jobs, schedules and sensors."""

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path

import dagster as dg
from dagster._core.storage.dagster_run import FINISHED_STATUSES

from dataops_assets.environments import Settings
from dataops_assets.landing import flights_file, reference_file, weather_file
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets.quality.freshness import EVALUATION_CRON, newest_month_published_in_time
from dataops_assets.resources import LandingZone
from dataops_assets.transforms.reference import REFERENCE_SPECS

# The reference tables are unpartitioned: loaded once by their own job, before the months that read them.
REFERENCE_ASSETS = dg.AssetSelection.assets(
    *(dg.AssetKey([layer, table]) for layer in ("raw", "staging") for table in REFERENCE_SPECS)
)
# Checks of the landing as a whole, not of a month: never in a month's run, where they would ask about months still
# to come; their own job after the months (dataops run), and their sensor every hour.
LANDING_CHECKS = dg.AssetSelection.checks(newest_month_published_in_time)
MONTHLY_ASSETS = dg.AssetSelection.all() - REFERENCE_ASSETS - LANDING_CHECKS

reference_tables = dg.define_asset_job(
    name="reference_tables",
    selection=REFERENCE_ASSETS,
    executor_def=dg.in_process_executor,
    description="The airports, airlines and planes reference tables: landing file → raw → staging.",
)

flights_pipeline = dg.define_asset_job(
    name="flights_pipeline",
    selection=MONTHLY_ASSETS,
    # Runs launched from the UI, the schedule or the sensor log through the environment's console logger
    # (JSON lines in stage and prod); an explicit run config, like the runner's, overrides this.
    config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},
    # One process per run: each step process would pay the ~2 s Great Expectations import again; in process a
    # month takes seconds. Months run in parallel as separate runs.
    executor_def=dg.in_process_executor,
    description="The whole flow for one month: landing file → raw → staging (+ quarantine) → core → marts.",
)


newest_month_freshness = dg.define_asset_job(
    name="newest_month_freshness",
    selection=LANDING_CHECKS,
    executor_def=dg.in_process_executor,
    description="The check newest_month_published_in_time alone: is the newest landed month published within the "
    "environment's hours of its landing? dataops run launches it once the months have run.",
)


def landing_checks_sensor(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    """Evaluates the landing checks by their automation condition (every hour); running by default in stage and
    prod, stopped in dev (where months are loaded and left unpublished at will) and in previews."""
    running = settings.runs_automations
    return dg.AutomationConditionSensorDefinition(
        "landing_checks_hourly",
        target=LANDING_CHECKS,
        default_status=dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED,
        description=f"Evaluates newest_month_published_in_time on the hour (cron {EVALUATION_CRON}), in a run of "
        "its own. Running by default in stage and prod, stopped in dev.",
    )


@dg.schedule(
    job=flights_pipeline,
    cron_schedule="0 6 2 * *",
    execution_timezone="America/New_York",
    description="The data set is historic, so the monthly schedule replays it: the tick on the 2nd of a month "
    "reloads the previous calendar month of 2013 (the tick of 2026-11-02 loads 2013-10).",
)
def monthly_replay(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    key = replay_partition(context.scheduled_execution_time)
    return dg.RunRequest(run_key=f"replay-{context.scheduled_execution_time:%Y-%m}", partition_key=key)


def replay_partition(tick: datetime) -> str:
    """The 2013 partition with the calendar month before ``tick``."""
    previous_month = 12 if tick.month == 1 else tick.month - 1
    return MONTH_KEYS[previous_month - 1]


REFERENCE_CURSOR_KEY = "reference"


@dg.sensor(
    jobs=[reference_tables, flights_pipeline],
    minimum_interval_seconds=30,
    description="Requests the reference tables when their files have landed or changed, then the partition of "
    "each month whose flights and weather files have landed or changed, once no reference load is pending; the "
    "cursor remembers the files' modification times, so a drop is picked up once.",
)
def landed_month_files(context: dg.SensorEvaluationContext, landing_zone: LandingZone) -> dg.SensorResult:
    seen = read_cursor(context.cursor)
    root = Path(landing_zone.root)
    references = references_stamp(root)
    if references is not None and seen.get(REFERENCE_CURSOR_KEY) != references:
        seen[REFERENCE_CURSOR_KEY] = references
        request = dg.RunRequest(run_key=f"landed-reference-{references}", job_name=reference_tables.name)
        return dg.SensorResult(run_requests=[request], cursor=write_cursor(seen))
    if references is None or _reference_load_pending(context.instance):
        # the months read the staged reference tables: they wait for a complete, loaded set
        return dg.SensorResult(skip_reason="waiting for the reference tables", cursor=write_cursor(seen))
    requests = []
    for key in MONTH_KEYS:
        stamp = landed_stamp(root, key)
        if stamp is not None and seen.get(key) != stamp:
            requests.append(
                dg.RunRequest(run_key=f"landed-{key}-{stamp}", partition_key=key, job_name=flights_pipeline.name)
            )
            seen[key] = stamp
    return dg.SensorResult(run_requests=requests, cursor=write_cursor(seen))


def read_cursor(cursor: str | None) -> dict[str, str]:
    """The landing sensor's cursor: ``reference`` and each month key → the modification times of its files."""
    return json.loads(cursor) if cursor else {}


def write_cursor(seen: Mapping[str, str]) -> str:
    return json.dumps(dict(seen), sort_keys=True)


def landed_stamps(landing_dir: Path, months: Iterable[str]) -> dict[str, str]:
    """The cursor entries of the files landed now (the reference set and each month's pair), for whoever loads
    them outside the sensor (``dataops run``) to record; what has not fully landed is left out."""
    stamps = {REFERENCE_CURSOR_KEY: references_stamp(landing_dir)} | {
        key: landed_stamp(landing_dir, key) for key in months
    }
    return {key: stamp for key, stamp in stamps.items() if stamp is not None}


def _reference_load_pending(instance: dg.DagsterInstance) -> bool:
    unfinished = [status for status in dg.DagsterRunStatus if status not in FINISHED_STATUSES]
    return bool(instance.get_run_ids(dg.RunsFilter(job_name=reference_tables.name, statuses=unfinished), limit=1))


def references_stamp(landing_dir: Path) -> str | None:
    """Modification times of the reference files, or None until all of them have landed."""
    files = [reference_file(landing_dir, table) for table in REFERENCE_SPECS]
    if not all(path.is_file() for path in files):
        return None
    return ":".join(str(path.stat().st_mtime_ns) for path in files)


def landed_stamp(landing_dir: Path, key: str) -> str | None:
    """Modification times of a month's file pair, or None until both have landed."""
    files = (flights_file(landing_dir, key), weather_file(landing_dir, key))
    if not all(path.is_file() for path in files):
        return None
    return ":".join(str(path.stat().st_mtime_ns) for path in files)


jobs = [reference_tables, flights_pipeline, newest_month_freshness]
schedules = [monthly_replay]
sensors = [landed_month_files]
