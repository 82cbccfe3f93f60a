"""What the run processes' forkserver imports once (``run_processes.PRELOAD``).

``multiprocessing`` stops the forkserver when a preloaded module raises anything but ImportError; a definitions
module that cannot load must instead fail each run the way it would have without the forkserver, naming the error.
"""

import contextlib

with contextlib.suppress(Exception):
    import great_expectations  # noqa: F401 - imported for the runs forked after it

with contextlib.suppress(Exception):
    import dataops_assets.definitions  # noqa: F401
