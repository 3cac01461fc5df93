"""Signals as flags: handlers only record what arrived; loops act on it when safe.

Nothing is done inside a handler (no logging, no I/O): the main loops poll
``SignalFlags`` between batches, so a signal never interrupts a half-written ring slot
or a half-written output file.
"""
from __future__ import annotations

import signal


class SignalFlags:
    def __init__(self):
        self.stop = False          # SIGINT / SIGTERM
        self.stop_signal = 0
        self.stats = False         # SIGUSR1
        self.reload = False        # SIGUSR2
        self.reopen_logs = False   # SIGHUP
        self.child = False         # SIGCHLD

    def _on_stop(self, signum, _frame):
        self.stop = True
        self.stop_signal = signum

    def _set(self, attr):
        def handler(_signum, _frame):
            setattr(self, attr, True)
        return handler

    def install(self, stop=True, stats=True, reload=True, reopen=True, child=False) -> None:
        if stop:
            signal.signal(signal.SIGINT, self._on_stop)
            signal.signal(signal.SIGTERM, self._on_stop)
        if stats:
            signal.signal(signal.SIGUSR1, self._set("stats"))
        if reload:
            signal.signal(signal.SIGUSR2, self._set("reload"))
        if reopen:
            signal.signal(signal.SIGHUP, self._set("reopen_logs"))
        if child:
            signal.signal(signal.SIGCHLD, self._set("child"))
        # let blocking calls resume after a signal; loops poll the flags anyway
        for s in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP, signal.SIGCHLD):
            try:
                signal.siginterrupt(s, False)
            except (OSError, ValueError):
                pass

    def take(self, attr: str) -> bool:
        """Read and clear a flag."""
        v = getattr(self, attr)
        if v:
            setattr(self, attr, False)
        return v
