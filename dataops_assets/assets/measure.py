"""Per-materialization metrics, as numeric metadata the Dagster UI plots over time."""

import time
from typing import Any


class Stopwatch:
    """Started when an asset starts computing; ``metadata`` adds rows in/out, duration and throughput."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def metadata(self, rows_in: int, rows_out: int, **extra: Any) -> dict[str, Any]:
        seconds = time.perf_counter() - self._start
        return {
            "rows_in": rows_in,
            "rows_out": rows_out,
            "duration_s": round(seconds, 4),
            "rows_per_second": round(rows_out / seconds, 1) if seconds > 0 else 0.0,
            **extra,
        }
