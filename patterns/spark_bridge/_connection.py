"""This process's connection to Ray, shared by the bridge tasks a Spark Python worker runs.

Kept in a module of its own: the state lives once per process, whatever imports it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import ray
from ray.actor import ActorHandle

from patterns.spark_bridge._errors import BridgeError
from patterns.spark_bridge._pool import NAMESPACE

__all__ = ["CONNECTION"]


class _Connection:
    """This process's connection to Ray, shared by the bridge tasks it runs."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.address: str | None = None  # set while connected by the bridge
        self.users = 0
        self.last_used = 0.0
        self.reaper: threading.Thread | None = None
        self.handles: dict[str, tuple[list[ActorHandle[Any]], Any]] = {}  # actors, RunLedger

    def acquire(self, address: str, apply_auth: Callable[[], None], idle_s: float) -> bool:
        """Make sure this process is connected to ``address``; True if it connected now."""
        with self.lock:
            connected_now = False
            if ray.is_initialized():
                if self.address is None:
                    # Connected by someone else (the user's own code): use it if it is
                    # the same cluster, never tear it down.
                    current = ray.get_runtime_context().gcs_address
                    if current != address:
                        msg = (
                            f"this Spark Python worker is already connected to the Ray "
                            f"cluster at {current}, not the bridge's {address}"
                        )
                        raise BridgeError(msg)
                elif self.address != address:  # a new cluster since we connected
                    self._disconnect()
            if not ray.is_initialized():
                apply_auth()
                ray.init(
                    address=address,
                    namespace=NAMESPACE,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
                self.address = address
                connected_now = True
            self.users += 1
            if self.address is not None and self.reaper is None:
                self.reaper = threading.Thread(
                    target=self._reap, args=(idle_s,), name="spark-bridge-idle", daemon=True
                )
                self.reaper.start()
            return connected_now

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            self.last_used = time.monotonic()

    def _disconnect(self) -> None:
        ray.shutdown()
        self.address = None
        self.handles.clear()

    def _reap(self, idle_s: float) -> None:
        """Leave the cluster once no bridge task has used the connection for ``idle_s``."""
        while True:
            time.sleep(min(1.0, idle_s / 2))
            with self.lock:
                if self.address is None:
                    self.reaper = None
                    return
                if self.users == 0 and time.monotonic() - self.last_used >= idle_s:
                    self._disconnect()
                    self.reaper = None
                    return


CONNECTION = _Connection()
