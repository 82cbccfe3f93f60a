"""Pure pandas transforms of the flow, one module per subject. Nothing here imports dagster."""
