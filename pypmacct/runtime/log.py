"""Logging in pmacct's line format: ``LEVEL ( name/type ): message``.

Output goes to stderr by default, to ``logfile`` when set (reopened on SIGHUP) or to
syslog with the configured facility. ``Logger.limited`` rate-limits a repeated
warning per key (for example per exporter), counting what it suppressed.
"""
from __future__ import annotations

import os
import socket
import sys
import syslog
import threading
import time

# Where syslog datagrams go; tests point it at a socket of their own.
SYSLOG_SOCKET = os.environ.get("PYPMACCT_SYSLOG_SOCKET", "/dev/log")

LEVELS = {"DEBUG": syslog.LOG_DEBUG, "INFO": syslog.LOG_INFO, "NOTICE": syslog.LOG_NOTICE,
          "WARN": syslog.LOG_WARNING, "ERROR": syslog.LOG_ERR,
          "OK": syslog.LOG_INFO}     # pmacct's "OK ( name/type ): ..." lines

FACILITIES = {
    "auth": syslog.LOG_AUTH, "mail": syslog.LOG_MAIL, "daemon": syslog.LOG_DAEMON,
    "kern": syslog.LOG_KERN, "user": syslog.LOG_USER,
    **{f"local{i}": getattr(syslog, f"LOG_LOCAL{i}") for i in range(8)},
}


class Sink:
    """Where log lines go; shared by every Logger of a process."""

    def __init__(self):
        self.path: str | None = None
        self.facility: int | None = None
        self.debug = False
        self.utc = False
        self.ident = "pypmacct"
        self._syslog = None
        self._fh = None
        self._lock = threading.Lock()

    def configure(self, logfile: str | None = None, syslog_facility: str | None = None,
                  debug: bool = False, ident: str = "pypmacct", utc: bool = False) -> None:
        self.debug = debug
        self.utc = utc
        self.path = logfile
        if syslog_facility:
            fac = FACILITIES.get(syslog_facility.lower())
            if fac is None:
                raise ValueError(f"unknown syslog facility '{syslog_facility}'")
            self.facility = fac
            self.ident = ident
            self._syslog = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.reopen()

    def _send_syslog(self, priority: int, line: str) -> None:
        """One RFC 3164-style datagram, as syslog(3) with LOG_PID would send it."""
        stamp = time.strftime("%b %d %H:%M:%S")
        msg = f"<{self.facility | priority}>{stamp} {self.ident}[{os.getpid()}]: {line}"
        try:
            self._syslog.sendto(msg.encode("utf-8", "replace"), SYSLOG_SOCKET)
        except OSError:
            pass  # no syslog daemon listening: like syslog(3), drop silently

    def reopen(self) -> None:
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.close()
                except OSError:
                    pass
                self._fh = None
            if self.path:
                self._fh = open(self.path, "a", buffering=1)

    def write(self, level: str, line: str) -> None:
        if level == "DEBUG" and not self.debug:
            return
        # as pmacct: syslog and/or the log file when configured, stderr otherwise
        if self.facility is not None:
            self._send_syslog(LEVELS[level], line)
            if self._fh is None:
                return
        with self._lock:
            if self._fh is not None:
                out, line = self._fh, f"{rfc3339_now(self.utc)} {line}"
            else:
                out = sys.stderr
            try:
                out.write(line + "\n")
                out.flush()
            except (OSError, ValueError):
                pass


SINK = Sink()


class Logger:
    def __init__(self, name: str = "default", type_: str = "core", sink: Sink = SINK):
        self.name, self.type, self.sink = name, type_, sink
        self._limits: dict[object, list] = {}

    def _emit(self, level: str, msg: str) -> None:
        self.sink.write(level, f"{level} ( {self.name}/{self.type} ): {msg}")

    def debug(self, msg: str) -> None:
        if self.sink.debug:
            self._emit("DEBUG", msg)

    def info(self, msg: str) -> None:
        self._emit("INFO", msg)

    def ok(self, msg: str) -> None:
        self._emit("OK", msg)

    def notice(self, msg: str) -> None:
        self._emit("NOTICE", msg)

    def warn(self, msg: str) -> None:
        self._emit("WARN", msg)

    def error(self, msg: str) -> None:
        self._emit("ERROR", msg)

    def limited(self, key, msg: str, level: str = "WARN", interval: float = 60.0) -> None:
        """Log ``msg`` at most once per ``interval`` seconds for ``key``; the next line
        that gets through says how many were suppressed in between."""
        now = time.monotonic()
        slot = self._limits.get(key)
        if slot is None:
            self._limits[key] = [now, 0]
            self._emit(level, msg)
            return
        if now - slot[0] >= interval:
            suppressed = slot[1]
            slot[0], slot[1] = now, 0
            if suppressed:
                msg = f"{msg} ({suppressed} similar messages suppressed)"
            self._emit(level, msg)
        else:
            slot[1] += 1


def rfc3339_now(utc: bool = False) -> str:
    """Seconds-resolution RFC 3339 time, ``Z`` for UTC, as pmacct stamps log files."""
    tm = time.gmtime() if utc else time.localtime()
    s = time.strftime("%Y-%m-%dT%H:%M:%S", tm)
    off = time.strftime("%z", tm)
    return s + ("Z" if off in ("+0000", "") else f"{off[:3]}:{off[3:]}")
