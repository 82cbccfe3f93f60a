"""Run processes forked from a parent that has already imported the pipeline, instead of started from nothing.

Dagster 1.13.27's code server starts each run in a new interpreter (``multiprocessing`` ``spawn``, fixed in
``DagsterApiServer.__init__``). Every run then imports Dagster, pandas, the definitions and Great Expectations
again before its first step: about 4 CPU seconds a run, 3 of them ``import great_expectations``, the same for
every month. ``apply`` makes the code servers of this project's processes use a ``forkserver`` instead: one
process, started with the code server, imports all of that once (``PRELOAD``), and each run is a fork of it.
Everything else about a run is Dagster's: the same function runs in the child with the same arguments, the same
termination event, the same exit codes and signals (a run killed with SIGKILL still ends FAILURE).

Applied by ``dagster_site/sitecustomize.py`` in the processes ``dataops run`` and ``dataops ui`` start. A change
to the code needs a new code server, as with spawn it did not: Dagster's reload of a code location starts one.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

# Imported by the forkserver before it forks any run (that module survives an import that fails).
PRELOAD = ["dataops_ops.run_processes_preload"]
START_METHOD = "forkserver"
# The version whose private DagsterApiServer._mp_ctx this replaces; other versions keep spawn.
PROVEN_VERSION = "1.13.27"
DAGSTER_SITE = Path(__file__).with_name("dagster_site")


def with_dagster_site(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with ``dagster_site`` first on ``PYTHONPATH``: its sitecustomize applies this module and
    ``dagster_fixes`` in every Python process started with it."""
    python_path = os.pathsep.join(p for p in (str(DAGSTER_SITE), env.get("PYTHONPATH", "")) if p)
    return {**env, "PYTHONPATH": python_path}


def run_process_context() -> Any:
    """The multiprocessing context run processes start from: a forkserver with the pipeline imported."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    context = multiprocessing.get_context(START_METHOD)
    context.set_forkserver_preload(PRELOAD)
    return context


def apply() -> bool:
    """Make every code server built in this process start its runs from ``run_process_context()``; False (and
    nothing changed) on another Dagster version."""
    from dagster._grpc.server import DagsterApiServer

    original = DagsterApiServer.__init__
    if dg.__version__ != PROVEN_VERSION or getattr(original, "_dataops_forkserver", False):
        return False

    @functools.wraps(original)
    def init_forking_runs(self: DagsterApiServer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._mp_ctx = run_process_context()

    init_forking_runs._dataops_forkserver = True  # type: ignore[attr-defined]
    DagsterApiServer.__init__ = init_forking_runs  # type: ignore[method-assign]
    return True
