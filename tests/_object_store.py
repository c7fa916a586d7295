"""How full Ray's object stores are, cluster-wide, for tests that check memory is released.

Ray frees objects asynchronously, and the test session shares its cluster: objects of
earlier tests may still be on their way out. So a baseline is taken once the usage has
settled, and "back to the baseline" means at most the baseline again.
"""

from __future__ import annotations

import gc
import time

TIMEOUT = 120  # seconds, for every wait


def store_bytes() -> int:
    """Bytes in the object stores of every node (Ray's own memory summary)."""
    from ray._private.internal_api import get_memory_info_reply
    from ray._private.state import state

    return int(get_memory_info_reply(state).store_stats.object_store_bytes_used)


def settled_store_bytes(*, quiet_s: float = 1.0) -> int:
    """The usage once it has not changed for ``quiet_s`` seconds (garbage collected first)."""
    deadline = time.monotonic() + TIMEOUT
    gc.collect()
    last = store_bytes()
    while True:
        time.sleep(quiet_s)
        gc.collect()
        now = store_bytes()
        if now == last:
            return now
        assert time.monotonic() < deadline, f"the object store never settled ({last}, {now})"
        last = now


def wait_for_baseline(baseline: int, *, after: str) -> None:
    """Wait until the stores hold at most ``baseline`` bytes again."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        gc.collect()
        now = store_bytes()
        if now <= baseline:
            return
        assert time.monotonic() < deadline, (
            f"{after}: {now} bytes in the object store, baseline {baseline}"
        )
        time.sleep(0.25)
