"""Observability of the pipeline: alerting, OpenLineage lineage and structured logs. Run metrics are read from the
instance by the tooling (``dataops metrics``).

- ``alerts``: PagerDuty and Slack alerts on failed runs and failed asset checks (sensors, cursor, retries);
- ``runs``: the OpenLineage events (``lineage``) of every finished run, from the ``dataops`` runner or from
  run-status sensors;
- ``runlog``: the digest of a finished run's event log, which all of the above read;
- ``logging``: JSON-lines logs for runs and for the ``dataops`` command (``settings.json_logs``).

``definitions.py`` wires the sensors, resources and loggers. This package imports none of its modules, so importing
one module loads only what that module needs.
"""
