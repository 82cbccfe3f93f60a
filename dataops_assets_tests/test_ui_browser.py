"""The Dagster UI in a real browser: headless Chromium (Debian's package) driven by Playwright.

``dataops ui`` (dg dev) serves a one-month materialization of the tiny landing on a free port of 127.0.0.1; the test
reads the lineage, an asset's columns and checks, launches a partition from the UI and waits for its run. The
screenshots it takes are the README's pictures (docs/images/).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import requests
from playwright.sync_api import expect

from dataops_assets import catalog, landing
from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR, THRESHOLDS_VAR
from dataops_assets_tests.fixtures.landing import ship_as_is
from dataops_assets_tests.fixtures.observability import TINY_BOUNDS, TINY_MONTH, tiny_landed_settings
from dataops_assets_tests.fixtures.pipeline import materialize_partition
from dataops_assets_tests.fixtures.processes import interruptible
from dataops_ops import processes
from dataops_ops.instance import prepare_dagster_home

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
GROUPS = ("raw", "staging", "quarantine", "core", "marts", "publish")
TIMEOUT_MS = 20_000
# JFK on 2013-01-02 at 07:00 local (12:00 UTC), an hour the tiny landing has no JFK weather for: core finds
# weather for 3 flights of 4, so its warning expectation (mostly 95 %) fails, and gx_suite (WARN) carries a
# failed-expectations table.
FLIGHT_WITHOUT_WEATHER = "2013,1,2,700,700,0,1010,1005,5,AA,1143,N619AA,JFK,MIA,160,1089,7,0,2013-01-02T12:00:00Z"
WARNED_EXPECTATION = "weather_found_for_most_flights"


@dataclass(frozen=True)
class Served:
    url: str
    settings: Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]


def _wait_for_location(url: str, pid: int, timeout_s: float = 120) -> None:
    query = "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert processes.is_alive(pid), "dataops ui exited"
        with contextlib.suppress(requests.RequestException):
            entries = _graphql(url, query)["workspaceOrError"]["locationEntries"]
            if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                return
        time.sleep(1)
    raise AssertionError(f"the code location did not load within {timeout_s:.0f}s")


def _stop(pid: int) -> None:
    """Ctrl-C for dg dev (it stops its webserver, daemon and code server), then the group by force if it stays."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGINT)
    deadline = time.monotonic() + 20
    while processes.is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    processes.stop(pid, grace_s=5)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    settings = tiny_landed_settings(tmp_path_factory.mktemp("ui"))
    _land_a_flight_without_weather(settings.landing_dir)
    env = {
        **os.environ,
        ENV_VAR: settings.name,
        DATA_ROOT_VAR: str(settings.data_root),
        THRESHOLDS_VAR: json.dumps(TINY_BOUNDS),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(settings.dagster_home))
        home = prepare_dagster_home(settings)
        with dg.DagsterInstance.from_config(home) as instance:
            assert materialize_partition(settings, TINY_MONTH, instance).success
    port = _free_port()
    log = settings.data_root / "ui.log"
    dataops = str(Path(sys.executable).with_name("dataops"))
    with log.open("w") as out:
        process = subprocess.Popen(
            [dataops, "ui", "--port", str(port)], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=interruptible,  # noqa: PLW1509 (no thread runs yet); dg dev stops on SIGINT, not SIGTERM
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_port(port, 120, process.pid, "dataops ui")
        _wait_for_location(url, process.pid)
        yield Served(url, settings)
    finally:
        _stop(process.pid)
        process.wait(timeout=10)
    output = log.read_text()
    assert "Warning" not in output, output


def _land_a_flight_without_weather(landing_dir: Path) -> None:
    path = landing.flights_file(landing_dir, TINY_MONTH)
    with path.open("a", encoding="utf-8") as out:
        out.write(FLIGHT_WITHOUT_WEATHER + "\n")
    ship_as_is(path)


@pytest.fixture(scope="module")
def page(served: Served) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(served.url)
        with contextlib.suppress(Exception):  # the first visit asks to join the community
            page.get_by_role("button", name="Skip").click(timeout=10_000)
        yield page
        browser.close()


def _shot(page: Any, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMAGES / f"{name}.png"))


def test_lineage_shows_every_group(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/asset-groups")
    groups = page.get_by_role("main") if page.get_by_role("main").count() else page.locator("body")
    for group in GROUPS:
        expect(groups.get_by_text(group, exact=True).first).to_be_visible()
    time.sleep(2)  # the graph animates to fit
    _shot(page, "ui-lineage")


def test_core_flights_shows_described_columns(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/assets/core/flights")
    columns = page.get_by_role("table").filter(has_text="Column name")
    descriptions = catalog.column_descriptions("core", "flights")
    for column in ("flight_id", "dep_delay", "has_weather"):
        row = columns.get_by_role("row").filter(has=page.get_by_text(column, exact=True))
        expect(row).to_contain_text(descriptions[column])
    _shot(page, "ui-asset")


def test_core_flights_shows_its_gx_suite_result(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/assets/core/flights?view=checks")
    page.get_by_text("gx_suite", exact=True).first.click()
    expect(page.get_by_text("Latest execution")).to_be_visible()
    expect(page.get_by_text("expectations_evaluated", exact=True).first).to_be_visible()
    expect(page.get_by_text(TINY_MONTH, exact=True).first).to_be_visible()
    expect(
        page.get_by_text(re.compile(r"WARN, 1 of \d+ expectations failed \(0 critical, 1 warning\)")).first
    ).to_be_visible()
    _shot(page, "ui-checks")
    metadata = page.get_by_role("row").filter(has=page.get_by_text("failed_expectations", exact=True))
    metadata.get_by_text("[Show Markdown]").click()
    failures = page.get_by_role("dialog").get_by_role("table")
    expect(failures.get_by_role("columnheader", name="Expectation")).to_be_visible()
    warned = failures.get_by_role("row").filter(has_text=WARNED_EXPECTATION)
    for cell in ("warning", "weather_observation_id", "25.00 %", "WARN"):
        expect(warned).to_contain_text(cell)
    time.sleep(1)  # the dialog fades in
    _shot(page, "ui-check-failures")
    page.keyboard.press("Escape")


def test_partition_keys_reach_2013(served: Served) -> None:
    """The per-partition plots ask for the newest keys first: 2013's (dataops_ops.dagster_fixes), not today's."""
    query = """query ($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) {
        ... on AssetNode { partitionKeyConnection(limit: 3, ascending: false) { results } } } }"""
    node = _graphql(served.url, query, {"path": ["core", "flights"]})["assetNodeOrError"]
    assert node["partitionKeyConnection"]["results"] == ["2013-12", "2013-11", "2013-10"]


def test_a_partition_launched_from_the_ui_succeeds(served: Served, page: Any) -> None:
    page.goto(f"{served.url}/assets/core/flights")
    page.get_by_role("button", name="Materialize…").click()
    dialog = page.get_by_role("dialog")
    partitions = dialog.get_by_placeholder(re.compile(TINY_MONTH))
    partitions.fill(TINY_MONTH)
    partitions.press("Enter")
    before = _run_ids(served.url)
    dialog.get_by_role("button", name="Launch 1 run").click()
    expect(page.get_by_text("Launched run")).to_be_visible()
    (run_id,) = _run_ids(served.url) - before
    assert _run_status(served.url, run_id, timeout_s=90) == "SUCCESS"
    page.goto(f"{served.url}/runs/{run_id}")
    expect(page.get_by_text("Success", exact=True).first).to_be_visible()
    expect(page.get_by_text("Loading run logs")).to_be_hidden()
    _shot(page, "ui-run")


def _run_ids(url: str) -> set[str]:
    runs = _graphql(url, "{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"]
    return {run["runId"] for run in runs}


def _run_status(url: str, run_id: str, timeout_s: float) -> str:
    query = "query ($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        status = _graphql(url, query, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    return status
