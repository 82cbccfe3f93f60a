"""Monthly partitions of the 2013 data, keyed like the landing files (``2013-01`` … ``2013-12``): the one source
of month keys."""

import dagster as dg
import pandas as pd

MONTHLY = dg.MonthlyPartitionsDefinition(start_date="2013-01", end_date="2014-01", fmt="%Y-%m")
MONTH_KEYS: tuple[str, ...] = tuple(MONTHLY.get_partition_keys())
# The tag Dagster puts on a run of one partition.
PARTITION_TAG = "dagster/partition"


def month_start(context: dg.AssetExecutionContext) -> pd.Timestamp:
    """First instant of the partition's month, naive, as the tables store it."""
    return pd.Timestamp(context.partition_time_window.start).tz_localize(None)
