"""Loaded by every Python process ``dataops ui`` starts (it puts this folder on ``PYTHONPATH``): the webserver
answers the UI's partition queries, so the fix must be in its process. See ``dataops_ops.dagster_fixes``."""

from dataops_ops.dagster_fixes import apply

apply()
