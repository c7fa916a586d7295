"""The launcher's named choices, defined once: planner modes and auth modes."""

from __future__ import annotations

from typing import Literal

Mode = Literal["isolated", "hybrid", "gpu"]
# isolated: Ray takes every worker whole; hybrid: Spark jobs run next to Ray;
# gpu: Ray takes every worker whole, with its GPUs.
MODES: tuple[Mode, ...] = ("isolated", "hybrid", "gpu")

AuthMode = Literal["token", "disabled"]
# token: a fresh random token per cluster; disabled: chosen explicitly, so a stray
# ~/.ray/auth_token cannot switch auth on for some processes and not others.
AUTH_MODES: tuple[AuthMode, ...] = ("token", "disabled")
