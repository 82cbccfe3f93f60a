"""The tooling around the pipeline: the ``dataops`` command, the runner, deploys, metrics export and Data Docs.

It imports ``dataops_assets`` (the code location); nothing in ``dataops_assets`` imports it.
"""
