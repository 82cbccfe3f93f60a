"""Helpers of the observability tests (no tests here): a local HTTP receiver and a temporary Dagster instance.

The receiver listens on 127.0.0.1 on an ephemeral port in a thread, records every POST (path and JSON body) and
answers with a status chosen per path; it is stopped when its ``with`` block ends. Nothing is sent anywhere else.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg

from dataops_assets_tests.fixtures.pipeline import FIXTURE_BOUNDS


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class Receiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    status: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Any]:
        return [request.body for request in self.requests if request.path == path]

    def clear(self) -> None:
        self.requests.clear()


@contextmanager
def receiver(status: dict[str, int] | None = None) -> Iterator[Receiver]:
    """An HTTP receiver on 127.0.0.1 (ephemeral port) for the duration of the block."""
    state = Receiver(port=0, status=dict(status or {}))
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            with lock:
                state.requests.append(Received(self.path, body, dict(self.headers.items())))
            code = state.status.get(self.path, 200)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"status": "success"}')

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def temp_instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """A Dagster instance on disk with the default (run-sharded SQLite) storage, telemetry off."""
    home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}}) as instance:
        yield instance


# ---------------------------------------------------------------------------------------------------------------
# A tiny landing folder for one month (2013-01): every row valid, values as the source ships them (text, NA)

TINY_MONTH = "2013-01"
TINY_QUARANTINED = 1  # flights rows set aside by staging
# dev allows 1 % of a month in quarantine; one of four tiny rows is 25 %, so the tiny environment allows half
# The hand-made fixture bounds, with room for the tiny landing's one quarantined row in four.
TINY_BOUNDS: dict[str, Any] = {**FIXTURE_BOUNDS, "max_quarantine_share": 0.5}
# one line per row, in the order of the source header (transforms.*.SOURCE_COLUMNS / REFERENCE_SPECS)
TINY_ROWS: dict[str, list[str]] = {
    "flights": [
        "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z",
        "2013,1,1,542,540,2,923,850,33,AA,1141,N619AA,JFK,MIA,160,1089,5,40,2013-01-01T10:00:00Z",
        "2013,1,2,620,600,20,800,745,15,UA,1000,N14228,EWR,ORD,120,719,6,0,2013-01-02T11:00:00Z",
        # an exact repeat of the first flight: staging quarantines it (duplicate_row)
        "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z",
    ],
    "weather": [
        "EWR,2013,1,1,5,39.02,26.06,59.37,270,10.35702,NA,0,1012,10,2013-01-01T10:00:00Z",
        "JFK,2013,1,1,5,39.02,26.06,59.37,260,12.65858,NA,0,1012.5,10,2013-01-01T10:00:00Z",
        "EWR,2013,1,2,6,30.02,26.06,59.37,270,10.35702,NA,0,1012,10,2013-01-02T11:00:00Z",
    ],
    "airports": [
        "EWR,Newark Liberty Intl,40.6925,-74.168667,18,-5,A,America/New_York",
        "JFK,John F Kennedy Intl,40.639751,-73.778925,13,-5,A,America/New_York",
        "IAH,George Bush Intercontinental,29.984433,-95.341442,97,-6,A,America/Chicago",
        "MIA,Miami Intl,25.79325,-80.290556,8,-5,A,America/New_York",
        "ORD,Chicago Ohare Intl,41.978603,-87.904842,668,-6,A,America/Chicago",
    ],
    "airlines": ["AA,American Airlines Inc.", "UA,United Air Lines Inc."],
    "planes": [
        "N14228,1999,Fixed wing multi engine,BOEING,737-824,2,149,NA,Turbo-fan",
        "N619AA,1990,Fixed wing multi engine,BOEING,757-223,2,178,NA,Turbo-fan",
    ],
}


def write_tiny_landing(landing_dir: Path) -> None:
    """Land the references and January's flights and weather under ``landing_dir``, with the exact headers."""
    from dataops_assets import landing
    from dataops_assets.transforms import flights, weather
    from dataops_assets.transforms.reference import REFERENCE_SPECS

    files = {
        landing.flights_file(landing_dir, TINY_MONTH): (flights.SOURCE_COLUMNS, TINY_ROWS["flights"]),
        landing.weather_file(landing_dir, TINY_MONTH): (weather.SOURCE_COLUMNS, TINY_ROWS["weather"]),
        **{
            landing.reference_file(landing_dir, table): (list(spec.source_columns), TINY_ROWS[table])
            for table, spec in REFERENCE_SPECS.items()
        },
    }
    for path, (columns, rows) in files.items():
        assert all(len(row.split(",")) == len(columns) for row in rows), path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([",".join(columns), *rows]) + "\n", encoding="utf-8")


@dataclass
class PipelineRun:
    """The whole pipeline materialized once for the tiny month, on an instance on disk, kept open for the session."""

    settings: Any
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    asset_graph: Any


_PIPELINE: dict[str, PipelineRun] = {}


def pipeline_run(tmp_path_factory: Any) -> PipelineRun:
    """Materialize every asset and check of the project for 2013-01 once per test session (it takes seconds)."""
    if "run" in _PIPELINE:
        return _PIPELINE["run"]
    from dataops_assets.definitions import build_definitions
    from dataops_assets.environments import settings_for
    from dataops_assets.resources import build_resources

    root = tmp_path_factory.mktemp("pipeline")
    dev = settings_for("dev", data_root=root)
    settings = replace(dev, thresholds=replace(dev.thresholds, **TINY_BOUNDS))
    write_tiny_landing(settings.landing_dir)
    defs = build_definitions(settings)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    instance = dg.DagsterInstance.local_temp(str(home), overrides={"telemetry": {"enabled": False}})
    result = dg.materialize(
        [*(defs.assets or []), *(defs.asset_checks or [])],  # type: ignore[list-item]
        resources=build_resources(settings),
        partition_key=TINY_MONTH,
        instance=instance,
        raise_on_error=False,
    )
    _PIPELINE["run"] = PipelineRun(settings, instance, result, defs.resolve_asset_graph())
    return _PIPELINE["run"]
