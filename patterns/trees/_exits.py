"""How a child ends, seen from its supervisor: a normal exit or an abnormal one.

OTP tells them apart by the exit reason a process sends. A Ray actor sends nothing:
its caller only gets an ``ActorDiedError`` whose text describes the death. So a child
that means to stop calls `exit_normally`, which leaves a marker in the cluster's
key-value store under its actor id before it exits; the supervisor reads (and
deletes) it. A child that calls ``ray.actor.exit_actor()`` directly is recognised
too, from the exit type Ray records (``INTENDED_USER_EXIT``). Everything else (a
crash, a SIGKILL, ``ray.kill``, a hang the supervisor ended) is abnormal.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Any, NoReturn

import ray

from patterns._checks import check_name
from patterns._ray_internals import kv_delete, kv_get, kv_put

__all__ = ["classify_exit", "exit_normally", "summarize_death", "this_host", "whoami"]

_KV_NAMESPACE = "ray-actor-patterns-trees"
_EXIT_TYPE = re.compile(r"Worker exit type: (\w+)")


def _marker_key(actor_id: str) -> bytes:
    return f"normal-exit/{actor_id}".encode()


def exit_normally(reason: str = "normal") -> NoReturn:
    """End the calling actor as a *normal* exit: its supervisor restarts it only if permanent.

    Call it from inside a method of a supervised child. A ``transient`` child that
    ends this way is not restarted (it is listed as ``"stopped"`` with the reason),
    a ``temporary`` one is forgotten, and a ``permanent`` one is restarted as after
    any exit. Calls still queued on the actor fail with ``ActorDiedError``.

    Args:
        reason: Shown as the child's ``last_exit`` in ``which_children()``.

    Raises:
        RuntimeError: If called outside an actor.

    Examples:
        A child's method ends its actor with ``exit_normally("job done")``; anywhere
        else it refuses:

        >>> exit_normally("job done")
        Traceback (most recent call last):
        ...
        RuntimeError: exit_normally() must be called inside a method of an actor
    """
    check_name("reason", reason)
    actor_id = ray.get_runtime_context().get_actor_id() if ray.is_initialized() else None
    if actor_id is None:
        msg = "exit_normally() must be called inside a method of an actor"
        raise RuntimeError(msg)
    kv_put(_marker_key(actor_id), reason.encode(), namespace=_KV_NAMESPACE)
    ray.actor.exit_actor()
    raise AssertionError("unreachable: exit_actor() returned")  # pragma: no cover


def summarize_death(exc: BaseException) -> str:
    """One line on why an actor died, from the error its caller got."""
    text = str(exc)
    if "killed by `ray.kill`" in text:
        return "killed with ray.kill"
    if "owner has died" in text:
        return "died with its owner"
    if "creation task" in text:
        first = text.split("creation task,", 1)[-1].strip().splitlines()
        return f"its constructor raised ({first[-1][:160] if first else '?'})"
    found = _EXIT_TYPE.search(text)
    if found:
        return f"its process died ({found.group(1)})"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def classify_exit(actor_id: str, exc: BaseException) -> tuple[bool, str]:
    """``(normal, reason)`` for an actor that died with ``exc`` (blocking: run off the loop)."""
    key = _marker_key(actor_id)
    marker = kv_get(key, namespace=_KV_NAMESPACE)
    if marker is not None:
        kv_delete(key, namespace=_KV_NAMESPACE)
        return True, f"exited normally: {marker.decode(errors='replace')}"
    found = _EXIT_TYPE.search(str(exc))
    if found and found.group(1) == "INTENDED_USER_EXIT":
        return True, "exited normally: exit_actor()"
    return False, f"crashed: {summarize_death(exc)}"


def whoami(_actor: Any) -> tuple[int, str, str]:
    """Run inside an actor (`patterns._ray_internals.run_in_actor`): its pid, node id and host.

    The host tells whether the PID can be watched from another process: several Ray
    nodes may share one machine (and its PIDs), as they do in a local Spark cluster.
    """
    return os.getpid(), ray.get_runtime_context().get_node_id(), this_host()


def this_host() -> str:
    """This machine: its host name and boot id, so two hosts with one name differ."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:  # not Linux: the host name alone
        boot = ""
    return f"{socket.gethostname()}/{boot}"
