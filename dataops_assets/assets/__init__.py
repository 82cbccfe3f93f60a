"""Dagster wiring of the flow, one module per layer; the work itself is in ``dataops_assets.transforms``."""
