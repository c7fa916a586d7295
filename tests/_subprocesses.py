"""Run driver scripts in subprocesses and read their JSON reports, with timeouts."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from launcher import _processes

SCRIPTS = Path(__file__).parent / "scripts"
REPO = Path(__file__).parent.parent


class Driver:
    """A script run with this interpreter; JSON lines from its stdout are events."""

    def __init__(self, label: str, script: str, *args: str, log_dir: Path) -> None:
        self.log_path = log_dir / f"{label}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, str(SCRIPTS / script), *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env=env,
            cwd=REPO,
        )
        self.events: queue.Queue[dict] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.events.put(json.loads(line))
            else:
                self._log.write(line + "\n")

    def next_event(self, timeout_s: float) -> dict:
        """The next JSON event, or AssertionError with the log tail on timeout/exit."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return self.events.get(timeout=1.0)
            except queue.Empty:
                if self.proc.poll() is not None and self.events.empty():
                    break
        self._log.flush()
        tail = self.log_path.read_text()[-3000:]
        raise AssertionError(f"no event from {self.log_path.name} (rc={self.proc.poll()}):\n{tail}")

    def tree(self) -> set[_processes.ProcessKey]:
        """This driver and every process below it."""
        try:
            me = psutil.Process(self.proc.pid)
            return {(me.pid, me.create_time())} | _processes.descendants(self.proc.pid)
        except psutil.Error:
            return set()

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)

    def stop(self) -> None:
        """Kill the driver and anything it left (test cleanup only, by PID)."""
        leftovers = self.tree()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        _processes.stop(leftovers, grace_s=2)
        self._reader.join(timeout=30)  # EOF once the driver and its children are gone
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()


def keys(pairs: list[list]) -> set[_processes.ProcessKey]:
    """Process keys decoded from a JSON event."""
    return {(int(pid), float(created)) for pid, created in pairs}


__all__ = ["Driver", "keys", "signal"]
