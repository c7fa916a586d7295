"""Every non-public Ray API the patterns rely on, in one place, each with the reason.

The patterns otherwise use only Ray's public API, so they run on any Ray in the declared
range. When Ray changes one of these, this module is the only place to fix
(``tests/test_ray_internals.py`` fails first). The launcher keeps its own list
(``launcher/_internals.py``): it relies on Ray on Spark's internals, which the patterns
never touch.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "actor_id_hex",
    "actor_processes",
    "actor_table_ids",
    "ask_actor_to_exit",
    "kv_delete",
    "kv_get",
    "kv_put",
    "plain_class_of",
    "ready_ref",
    "refresh_auth_config",
    "run_in_actor",
    "token_auth_enabled",
    "token_from_loader",
]


def actor_id_hex(handle: Any) -> str:
    """The hex id of the actor behind ``handle``.

    Why: error messages and ``repr`` name an unnamed actor by its id; handles expose it
    only as the private ``_actor_id`` (``ray.get_runtime_context().get_actor_id()`` gives
    it only inside the actor).
    """
    return str(handle._actor_id.hex())


def plain_class_of(actor_class: Any) -> type:
    """The user's class behind a ``@ray.remote`` actor class.

    Why: the trees and the Spark bridge accept either a plain class or a Ray actor
    class and must check the plain class's methods before starting anything; Ray keeps
    it only in ``__ray_metadata__``.
    """
    modified = actor_class.__ray_metadata__.modified_class
    plain: type = getattr(modified, "__ray_actor_class__", modified)
    return plain


def refresh_auth_config() -> None:
    """Make this process re-read ``RAY_AUTH_*`` (Ray caches the mode and the token).

    Why: a Spark Python worker may have connected to another cluster before (a second
    launch in the same worker brings a new token). Ray without these hooks (older than
    2.55) has no token auth and caches nothing, so there is nothing to refresh.
    """
    try:
        from ray._raylet import (  # type: ignore[attr-defined]
            AuthenticationTokenLoader,
            Config,
        )
    except ImportError:
        return
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def token_auth_enabled() -> bool | None:
    """Whether this process uses token auth, as Ray decided it (None: this Ray cannot say).

    Why: Ray decides from ``RAY_AUTH_MODE`` and its config file; the bridge must pass
    the same choice to the Spark Python workers that connect on its behalf.
    """
    try:
        from ray._private.authentication.authentication_utils import is_token_auth_enabled
    except ImportError:
        return None
    return bool(is_token_auth_enabled())


def token_from_loader() -> str | None:
    """The token this process authenticates with, from Ray's loader (None if it has none).

    Why: a driver that connected with a token file (``RAY_AUTH_TOKEN_PATH``) or
    ``~/.ray/auth_token`` has no ``RAY_AUTH_TOKEN`` variable to forward.
    """
    try:
        from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

        token = AuthenticationTokenLoader.instance().get_raw_token(ignore_auth_mode=True)
    except Exception:
        path = os.environ.get("RAY_AUTH_TOKEN_PATH")
        if path and os.path.exists(path):
            with open(path) as handle:
                return handle.read().strip() or None
        return None
    return str(token) if token else None


def actor_table_ids() -> set[str]:
    """The ids of every actor the cluster's control store knows (alive or dead).

    Why: `patterns.testing.check_facade` checks that a refused call started no actor; the
    state API (``ray.util.state``) needs the dashboard, which the launcher leaves off,
    while the GCS actor table answers on any cluster.
    """
    from ray._private import state

    table: dict[str, Any] = state.actors()
    return set(table)


def actor_states(ids: set[str]) -> dict[str, str]:
    """The GCS state (``ALIVE``, ``RESTARTING``, ``DEAD``...) of each actor id in ``ids``.

    Why: see `actor_table_ids`.
    """
    from ray._private import state

    table: dict[str, Any] = state.actors()
    return {actor_id: str(table[actor_id]["State"]) for actor_id in ids if actor_id in table}


def actor_processes(handles: list[Any]) -> list[tuple[str, str, int]]:
    """The node id (hex), the node's IP address and the process id of each actor's process.

    Actors whose process has not started yet (pending creation) are left out.

    Why: waiting until a stopped actor's process has exited (`patterns._calls.
    wait_until_exited`) needs to know where it ran, also when the actor no longer
    answers (stopped, stuck); only the GCS actor table says so, through the private
    ``ray._private.state`` (the state API needs the dashboard).
    """
    from ray._private import state

    found = []
    for handle in handles:
        info: dict[str, Any] = state.actors(actor_id=actor_id_hex(handle))
        pid = int(info.get("Pid") or 0)
        address = info.get("Address") or {}
        node = address.get("NodeID")
        if pid > 0 and node:
            found.append((str(node), str(address.get("IPAddress") or ""), pid))
    return found


# --- used by the actor trees (patterns.trees) ---------------------------------------------


def run_in_actor(handle: Any, fn: Any, *args: Any) -> Any:
    """Run ``fn(instance, *args)`` inside the actor behind ``handle``; return its ObjectRef.

    Why: a supervisor asks each child it starts for its pid, node and host, whatever the
    child's class; the class need not offer a method for it. Ray's ``__ray_call__`` runs
    a function in any actor.
    """
    return handle.__ray_call__.remote(fn, *args)


def ready_ref(handle: Any) -> Any:
    """An ObjectRef that resolves once the actor has started, or fails once it is dead.

    Why: the cheapest call every actor answers (a supervisor's health check of a child
    without ``snapshot()``, and the wait for a stopping child to be gone); Ray's
    ``__ray_ready__`` needs no method of the user's class.
    """
    return handle.__ray_ready__.remote()


def ask_actor_to_exit(handle: Any) -> Any:
    """Ask the actor to exit once the calls queued before this one are done (no kill).

    Why: a supervisor stops a child gracefully first (its ``atexit`` handlers run), and
    kills it only if it does not end within its ``shutdown_timeout_s``; Ray's public
    API has only ``ray.kill``. ``__ray_terminate__`` is what ``exit_actor`` uses.
    """
    return handle.__ray_terminate__.remote()


def kv_put(key: bytes, value: bytes, *, namespace: str) -> None:
    """Store ``value`` under ``key`` in the cluster's key-value store (the GCS).

    Why: a supervised child that ends normally (`patterns.trees.exit_normally`) leaves
    a marker its supervisor reads after the death; the marker must outlive the child's
    process, and the GCS's store is the one every process of the cluster reaches
    without a store of its own. Ray exposes it only as ``_internal_kv_*``.
    """
    from ray.experimental import internal_kv

    internal_kv._internal_kv_put(key, value, overwrite=True, namespace=namespace)


def kv_get(key: bytes, *, namespace: str) -> bytes | None:
    """The value under ``key`` in the cluster's key-value store (None if absent). See `kv_put`."""
    from ray.experimental import internal_kv

    value: bytes | None = internal_kv._internal_kv_get(key, namespace=namespace)
    return value


def kv_delete(key: bytes, *, namespace: str) -> None:
    """Delete ``key`` from the cluster's key-value store. See `kv_put`."""
    from ray.experimental import internal_kv

    internal_kv._internal_kv_del(key, namespace=namespace)
