"""Loaded by every Python process ``dataops run`` and ``dataops ui`` start (they put this folder on ``PYTHONPATH``):
the webserver answers the UI's partition queries (``dataops_ops.dagster_fixes``), and the code servers start the
runs (``dataops_ops.run_processes``), so both changes must be in those processes."""

from dataops_ops import dagster_fixes, run_processes

dagster_fixes.apply()
run_processes.apply()
