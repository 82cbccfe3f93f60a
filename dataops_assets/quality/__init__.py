"""Data quality checks of the flow.

Great Expectations suites (``dataops_assets/expectations/<schema>.<table>.json``) run as blocking Dagster asset
checks through this project's own bridge:

- ``gx_suites``: which asset each suite checks, reading suite files, suite parameters per environment (no GX).
- ``gx_validation``: running a suite on a DataFrame with GX and keeping the result for Data Docs.
- ``gx_checks``: the Dagster checks, ``gx_asset_checks()``.
- ``native``: Dagster's own checks (schema change of published tables, row-count bounds).
- ``freshness``: the newest landed month is published within the environment's hours of its landing; evaluated
  on its own (after ``dataops run``'s months, and hourly), never inside a month's run.
- ``accepted``: the known gaps of the data, declared in ``expectations/accepted_exceptions.yaml``: a GX check
  passes when only they occur, and the staging step keeps their rows instead of quarantining them.
- ``quarantine``: the quarantine gate of staging (the share of rows set aside by row rules and suite expectations
  marked ``quarantine``).
- ``completeness``: every day of a month has flights, every hour at each airport has weather.
- ``volume``: a month's row count against the other months' history (median ± k·MAD).
- ``reference_gate``: the reference tables' schema, keys and row count, judged before they are replaced.
- ``history``: what the instance recorded of earlier materializations (row counts), for the two above.
- ``reconciliation``: the marts reconcile with core.
- ``verdict``: one check evaluation as the runner, the deploy gates and the alerts report it.

The checks read the environment's thresholds and Great Expectations through resources (``resources.py``).
Importing this package, or any of the modules above, does not import great_expectations: the
``GreatExpectationsResource`` imports it when a suite first runs.
"""
