"""Find and stop the processes one launch started, and only those, by PID."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

import psutil

# Identify a process by (pid, create_time): a PID alone can be reused.
ProcessKey = tuple[int, float]


def _key(proc: psutil.Process) -> ProcessKey | None:
    try:
        return proc.pid, proc.create_time()
    except psutil.Error:
        return None


def descendants(pid: int | None = None) -> set[ProcessKey]:
    """All live descendants of ``pid`` (default: this process)."""
    try:
        root = psutil.Process(pid if pid is not None else os.getpid())
        children = root.children(recursive=True)
    except psutil.Error:
        return set()
    return {key for key in map(_key, children) if key is not None}


def children(pid: int | None = None) -> set[ProcessKey]:
    """The live direct children of ``pid`` (default: this process)."""
    try:
        kids = psutil.Process(pid if pid is not None else os.getpid()).children()
    except psutil.Error:
        return set()
    return {key for key in map(_key, kids) if key is not None}


def subtrees(roots: Iterable[ProcessKey]) -> set[ProcessKey]:
    """The live processes among ``roots`` and all their live descendants."""
    found: set[ProcessKey] = set()
    for proc in alive(roots):
        key = _key(proc)
        if key is not None:
            found.add(key)
            found |= descendants(proc.pid)
    return found


def processes_mentioning(marker: str) -> set[ProcessKey]:
    """Live processes whose command line contains ``marker`` (a launch's temp dir).

    Ray worker nodes on a real Spark cluster are children of executors that the
    launcher did not start; they carry the launch's temp dir on their command
    line, which is how a launch recognises its own nodes on this host.
    """
    found: set[ProcessKey] = set()
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline):
            found.add((proc.info["pid"], proc.info["create_time"]))
    return found


def alive(keys: Iterable[ProcessKey]) -> list[psutil.Process]:
    """The processes among ``keys`` that still run (zombies count as gone)."""
    live = []
    for pid, created in keys:
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                live.append(proc)
        except psutil.Error:
            continue
    return live


def wait_gone(keys: Iterable[ProcessKey], timeout_s: float) -> list[psutil.Process]:
    """Wait up to ``timeout_s`` for ``keys`` to exit; return those still alive."""
    keys = list(keys)
    deadline = time.monotonic() + timeout_s
    while True:
        live = alive(keys)
        if not live or time.monotonic() >= deadline:
            return live
        time.sleep(0.25)


def stop(keys: Iterable[ProcessKey], *, grace_s: float = 5.0) -> list[psutil.Process]:
    """SIGTERM, then SIGKILL after ``grace_s``, the processes among ``keys``.

    Returns the processes that survived even SIGKILL (normally none).
    """
    live = alive(keys)
    for proc in live:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, still = psutil.wait_procs(live, timeout=grace_s)
    for proc in still:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _, survivors = psutil.wait_procs(still, timeout=grace_s)
    return list(survivors)


def describe(procs: Iterable[psutil.Process]) -> str:
    """``name[pid]`` of each process, for messages (``?`` for one that is gone)."""
    names = []
    for proc in procs:
        try:
            names.append(f"{proc.name()}[{proc.pid}]")
        except psutil.Error:
            names.append(f"?[{proc.pid}]")
    return ", ".join(names)
