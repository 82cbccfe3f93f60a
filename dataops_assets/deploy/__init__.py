"""Versioned artifacts and gated deploys of the code location to dev → stage → prod, on open-source Dagster.

- ``artifact``: build the wheel and sdist once, write and verify the sha256 manifest;
- ``environment_root``: the on-disk layout of one environment (releases, current pointer, instance, audit log, lock);
- ``processes``: start detached services and stop them by process id;
- ``webserver``: the webserver's GraphQL API (reload a location, launch runs, read check results);
- ``gates``: what each environment demands of a release;
- ``deploy``: deploy, promote, rollback and status;
- ``cli``: the ``dataops`` subcommands.
"""
