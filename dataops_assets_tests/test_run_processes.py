"""The code servers of ``dataops run`` and ``dataops ui`` start runs from a preloaded forkserver (run_processes)."""

import json
import os
import subprocess
import sys

from dataops_ops.run_processes import DAGSTER_SITE, PRELOAD, with_dagster_site

_SERVER = """
import json, logging, threading
from dagster._grpc.server import DagsterApiServer
from dagster._core.utils import FuturesAwareThreadPoolExecutor

server = DagsterApiServer(threading.Event(), logging.getLogger("test"), FuturesAwareThreadPoolExecutor(1))
print(json.dumps({"start_method": server._mp_ctx.get_start_method()}))
"""


def _server_start_method(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", _SERVER], capture_output=True, text=True, env=env, check=True)
    return str(json.loads(done.stdout.strip().splitlines()[-1])["start_method"])


def test_a_code_server_started_with_the_site_forks_runs_from_a_preloaded_parent() -> None:
    env = with_dagster_site({key: value for key, value in os.environ.items() if key != "PYTHONPATH"})
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(DAGSTER_SITE)
    assert _server_start_method(env) == "forkserver"
    assert PRELOAD == ["dataops_ops.run_processes_preload"]


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
