"""A bounded pool of forked writer processes, shared by the plugins that write a purge
in a child process (print, SQL) so the plugin keeps reading its ring meanwhile."""
from __future__ import annotations

import os


class Writers:
    """Forked writer processes of one plugin: bounded, reaped, and ordered per output."""

    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self.running: dict[int, frozenset] = {}

    def reap(self) -> None:
        for pid in list(self.running):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.running.pop(pid, None)

    def full(self) -> bool:
        self.reap()
        return len(self.running) >= self.limit

    def wait_for(self, outputs) -> None:
        """Wait for running writers that write to any of ``outputs``, so that writes to
        one file (or to stdout) happen in purge order."""
        outputs = frozenset(outputs)
        for pid, theirs in list(self.running.items()):
            if theirs & outputs:
                self._wait(pid)

    def wait_all(self) -> None:
        for pid in list(self.running):
            self._wait(pid)

    def _wait(self, pid: int) -> None:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.running.pop(pid, None)

    def add(self, pid: int, outputs) -> None:
        self.running[pid] = frozenset(outputs)

    def __len__(self) -> int:
        return len(self.running)
