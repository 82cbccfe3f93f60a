"""Asset checks that load only the columns they judge.

Dagster's check decorators refuse input metadata (the I/O manager's ``columns``) on the checked asset itself, since
it is also their dependency; so ``projected_check`` builds the op as ``@multi_asset_check`` builds it, with that
metadata on each input. The lake's I/O manager then reads just those columns and names every stored column in the
frame's ``attrs`` (``storage.STORED_COLUMNS``).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg
import pandas as pd

# input name -> (asset it loads, the columns to read; None reads them all)
Inputs = Mapping[str, tuple[dg.AssetKey, Sequence[str] | None]]


def projected_check(
    spec: dg.AssetCheckSpec,
    inputs: Inputs,
    evaluate: Callable[..., dg.AssetCheckResult],
    resources: Sequence[str] = (),
) -> dg.AssetChecksDefinition:
    """The check ``spec``, computed by ``evaluate(context, **frames)`` from ``inputs`` read column by column.

    ``resources`` are the resource keys ``evaluate`` reads from ``context.resources``."""

    @dg.op(
        name=f"{spec.asset_key.to_python_identifier()}_{spec.name}",
        ins={input_name: _input(columns) for input_name, (_, columns) in inputs.items()},
        out={spec.get_python_identifier(): dg.Out(None, is_required=True)},
        required_resource_keys=set(resources),
    )
    def _check(context: dg.AssetCheckExecutionContext, **frames: pd.DataFrame) -> dg.AssetCheckResult:
        return evaluate(context, **frames)

    return dg.AssetChecksDefinition.create(
        keys_by_input_name={input_name: key for input_name, (key, _) in inputs.items()},
        node_def=_check,
        check_specs_by_output_name={spec.get_python_identifier(): spec},
        can_subset=False,
    )


def _input(columns: Sequence[str] | None) -> dg.In:
    metadata: dict[str, Any] = {} if columns is None else {"columns": list(columns)}
    return dg.In(metadata=metadata)
