"""The code servers of ``dataops run`` and ``dataops ui`` start runs from a preloaded forkserver (run_processes)."""

import json
import os
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from dataops_ops.run_processes import DAGSTER_SITE, with_dagster_site

ROOT = Path(__file__).resolve().parents[1]
_SERVER = """
import json, logging, threading
from dagster._grpc.server import DagsterApiServer
from dagster._core.utils import FuturesAwareThreadPoolExecutor

server = DagsterApiServer(threading.Event(), logging.getLogger("test"), FuturesAwareThreadPoolExecutor(1))
print(json.dumps({"start_method": server._mp_ctx.get_start_method()}))
"""


# A process started the way the code server starts a run (its _mp_ctx), reporting what it found imported.
_RUN = """
import logging, threading
from dagster._grpc.server import DagsterApiServer
from dagster._core.utils import FuturesAwareThreadPoolExecutor
from dataops_assets_tests.test_run_processes import report_imported

server = DagsterApiServer(threading.Event(), logging.getLogger("test"), FuturesAwareThreadPoolExecutor(1))
receiver, sender = server._mp_ctx.Pipe(duplex=False)
run = server._mp_ctx.Process(target=report_imported, args=(sender,))
run.start()
print(receiver.recv())
run.join()
"""
HEAVY_MODULES = ("dataops_assets.definitions", "great_expectations")


def report_imported(sender: Connection) -> None:
    """In the run process, before it imports anything itself: which of the heavy modules are already there."""
    sender.send(json.dumps([name for name in HEAVY_MODULES if name in sys.modules]))


def _server_start_method(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", _SERVER], capture_output=True, text=True, env=env, check=True)
    return str(json.loads(done.stdout.strip().splitlines()[-1])["start_method"])


def _imported_in_a_run_process(env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", _RUN], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def test_a_code_server_started_with_the_site_forks_runs_from_a_forkserver() -> None:
    env = with_dagster_site({key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(DAGSTER_SITE)
    assert _server_start_method(env) == "forkserver"


def test_a_run_process_finds_the_pipeline_already_imported_only_with_the_site() -> None:
    """What the forkserver is for: a run starts with the definitions and Great Expectations imported, instead of
    importing them again (a spawned run, without the site, starts with neither)."""
    without_site = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    assert _imported_in_a_run_process(with_dagster_site(without_site)) == list(HEAVY_MODULES)
    assert _imported_in_a_run_process(without_site) == []


def test_without_the_site_dagster_spawns_each_run() -> None:
    """Also what notices a Dagster upgrade that renames the attribute run_processes replaces."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    assert _server_start_method(env) == "spawn"


def test_a_definitions_module_that_fails_to_import_does_not_stop_the_forkserver() -> None:
    """multiprocessing stops the forkserver on a preload error other than ImportError; the preload module does not
    raise, so each run then fails on its own, naming the error, as it would have without the forkserver."""
    env = {**os.environ, "DATAOPS_ENV": "no-such-environment"}  # the definitions refuse to load
    code = (
        "import sys, dataops_ops.run_processes_preload\n"
        "print(sorted(m for m in ('dataops_assets.definitions', 'great_expectations') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "['great_expectations']"
