"""The plugin process: read the ring, feed the plugin, keep its deadlines.

Shutdown is driven by the core: when the core closes the ring's wake-up pipe (or
dies), the plugin drains what is left, lets the plugin purge, and exits. A SIGINT or
SIGTERM delivered to the plugin itself (a terminal's Ctrl-C reaches the whole process
group) does not cut that short: the plugin keeps reading until the core closes the
ring, or until a grace period passes if the core is not shutting down.
"""
from __future__ import annotations

import os
import time
import traceback

from .log import SINK
from .signals import SignalFlags

STOP_GRACE = 10.0  # seconds to wait for the core's end of stream after a stop signal


def run_plugin(plugin, ring, core_pid: int) -> int:
    flags = SignalFlags()
    flags.install(stop=True, stats=False, reload=True, reopen=True)
    stop_at = None
    try:
        plugin.start()
        while True:
            now = time.time()
            deadline = plugin.next_deadline()
            timeout = 1.0 if deadline is None else max(0.0, min(1.0, deadline - now))
            alive = ring.wait(timeout)
            while (batch := ring.read()) is not None:
                plugin.ingest(batch)
            if not alive:
                break
            if flags.stop and stop_at is None:
                stop_at = time.monotonic() + STOP_GRACE
            if stop_at is not None and time.monotonic() >= stop_at:
                plugin.log.warn("stop signal received but the core did not end the stream; "
                                "purging and exiting")
                break
            if os.getppid() != core_pid:
                plugin.log.error("Core process *seems* gone. Purging and exiting.")
                break
            deadline = plugin.next_deadline()
            if deadline is not None and time.time() >= deadline:
                plugin.on_deadline(time.time())
            if flags.take("reopen_logs"):
                SINK.reopen()
            if flags.take("reload"):
                plugin.reload()
        while (batch := ring.read()) is not None:
            plugin.ingest(batch)
        plugin.finish()
        return 0
    except Exception as e:  # report, then die: the core notices and logs it too
        plugin.log.error(f"plugin failed: {e!r}")
        for line in traceback.format_exc().rstrip().splitlines():
            plugin.log.debug(line)
        return 1
