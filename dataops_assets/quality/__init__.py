"""Data quality checks of the flow.

Great Expectations suites (``dataops_assets/expectations/<schema>.<table>.json``) run as blocking Dagster asset
checks through this project's own bridge:

- ``gx_suites``: which asset each suite checks, reading suite files, suite parameters per environment (no GX).
- ``gx_validation``: running a suite on a DataFrame with GX (imported lazily) and keeping the result.
- ``gx_checks``: the Dagster checks, ``gx_asset_checks(settings)``.
- ``gx_docs``: Great Expectations Data Docs of the latest validations, ``build_data_docs(settings)``.
- ``verdict``: one check evaluation as the runner, the deploy gates and the alerts report it.

Importing this package, or any of the modules above, does not import great_expectations: it is imported when a
suite first runs.
"""
