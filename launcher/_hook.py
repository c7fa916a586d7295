"""A ``ray.util.spark`` start hook that lets the launcher see and steer a launch.

``setup_ray_cluster`` loads the class named by ``RAY_ON_SPARK_START_HOOK`` and
calls it at fixed points. Through it the launcher passes environment variables
to every Ray node (the auth token, PATH), learns the Spark job group hosting
each worker node (the fault tests cancel one), and gets the cluster handle.
The hook is instantiated by Ray with no arguments, so it reads the launch it
belongs to from module state set by ``RayOnSpark.start``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ray.util.spark.start_hook_base import RayOnSparkStartHook

HOOK_PATH = "launcher._hook.LauncherStartHook"


@dataclass
class LaunchState:
    """What one launch shares with its hook instances."""

    node_env: dict[str, str]
    temp_root: str
    job_groups: list[str] = field(default_factory=list)
    cluster_handle: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # time.monotonic() of each step, for the launch's timings.
    events: dict[str, float] = field(default_factory=dict)


_current: LaunchState | None = None


def activate(state: LaunchState | None) -> None:
    """Make ``state`` the launch that new hook instances report to."""
    global _current
    _current = state


def current() -> LaunchState | None:
    """The active launch, if any."""
    return _current


class LauncherStartHook(RayOnSparkStartHook):
    """Start hook reporting to the active `LaunchState`."""

    def __init__(self, is_global: bool = False) -> None:
        super().__init__(is_global)
        self._state = _current

    def get_default_temp_root_dir(self) -> str:
        return self._state.temp_root if self._state else super().get_default_temp_root_dir()

    def on_cluster_created(self, ray_cluster_handler: Any) -> None:
        if self._state:
            self._state.cluster_handle = ray_cluster_handler
            self._state.events.setdefault("head_up", time.monotonic())

    def on_spark_job_created(self, job_group_id: str) -> None:
        if self._state:
            with self._state.lock:
                self._state.job_groups.append(job_group_id)
                self._state.events.setdefault(
                    f"node_job_{len(self._state.job_groups)}", time.monotonic()
                )

    def custom_environment_variables(self) -> dict[str, str]:
        return dict(self._state.node_env) if self._state else {}
