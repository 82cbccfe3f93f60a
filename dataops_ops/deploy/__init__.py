"""Versioned artifacts and gated deploys of the code location to dev → stage → prod, on open-source Dagster:
``artifact`` (build once, sha256 manifest), ``environment_root`` (one environment on disk), ``processes`` and
``services`` (detached services stopped by pid), ``webserver`` (Dagster's GraphQL client), ``gates``, ``deploy``
(deploy, promote, rollback, status) and ``cli`` (the ``dataops`` subcommands). See ``deploy/README.md``.
"""
