"""A daemon with one memory plugin, run under tests/support/measure.py, for the bench.

Used by bench/run.py (savefile replay into the memory plugin, peak RSS of 1M cached
aggregates) and bench/live_udp.py (live NetFlow over loopback). The daemon runs in its
own process group; ``totals()`` asks the table for its whole sum with the daemon's own
client (``pmacct -s``-like ``-c src_host -N '*' -n all``: packets, bytes, flows,
entries); ``stop()`` sends SIGINT to the group and returns the measurement of the whole
process tree (wall, CPU user+sys, peak RSS/PSS summed over the tree).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.support import oracle  # noqa: E402
from tests.support.memory import C_CLIENT, our_client, run_client  # noqa: E402


def next_prime(n: int) -> int:
    """The smallest prime >= n (pmacct sizes its hash tables with primes)."""
    def prime(k):
        return k > 1 and all(k % d for d in range(2, int(k ** 0.5) + 1))
    while not prime(n):
        n += 1
    return n


def table_settings(who: str, aggregate, keys: int) -> dict:
    """Memory-table sizing: pmacct gets enough 1 MB pools for ``keys`` entries (its
    default of 16 x 8 kB pools fills at a few hundred) and a bucket count near the key
    count so its chains stay short; ours grows on its own (pools 0 = unbounded)."""
    s = {"plugins": "memory", "aggregate": ", ".join(aggregate),
         "imt_buckets": next_prime(max(32771, keys // 2))}
    if who == "pmacct":
        s.update({"imt_mem_pools_number": keys * 400 // (1 << 20) + 4,
                  "imt_mem_pools_size": 1 << 20})
    else:
        s["imt_mem_pools_number"] = 0
    return s


class MeasuredDaemon:
    """One daemon under tests.support.measure. ``sample_interval``: how often the
    wrapper sums the tree's RSS and PSS (smaps_rollup walks every page table of a
    process, so sampling often costs CPU the daemon may be short of)."""

    def __init__(self, who: str, daemon: str, settings: dict, workdir: Path,
                 sample_interval: float = 0.02):
        self.who = who
        self.sample_interval = sample_interval
        self.binary = oracle.pmacct_binary(daemon) if who == "pmacct" else oracle.our_binary(daemon)
        self.client = C_CLIENT if who == "pmacct" else our_client()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "daemon.log"
        self.sock = str(self.workdir / "imt.pipe")
        self.settings = {"daemonize": False, "logfile": str(self.log_path),
                         "imt_path": self.sock, **settings}
        self.mfile = self.workdir / "measure.json"
        self.proc = None
        self.t0 = 0.0
        self.last_change = 0.0   # seconds since start when wait_totals last saw a change

    def start(self) -> "MeasuredDaemon":
        conf = self.workdir / "daemon.conf"
        conf.write_text(oracle.render_config(self.settings))
        for p in (self.log_path, self.mfile):
            if p.exists():
                p.unlink()
        env = dict(os.environ, TZ="UTC",
                   PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        cmd = [sys.executable, "-m", "tests.support.measure", "--out", str(self.mfile),
               "--interval", str(self.sample_interval), "--",
               str(self.binary), "-f", str(conf)]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def totals(self, src_host: str = "*"):
        """(packets, bytes, flows, entries) of the table (or of the entries of one
        ``src_host``), or None while unreachable."""
        try:
            r = run_client(self.client, ["-p", self.sock, "-c", "src_host", "-N", src_host,
                                         "-n", "all"],
                           timeout=120)
        except subprocess.TimeoutExpired:
            return None
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 4:
            return None
        return tuple(int(x) for x in parts)

    def wait_ready(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while self.totals() is None:
            if not self.alive():
                raise RuntimeError(f"{self.who} {self.binary} exited:\n{self.log()[-2000:]}")
            if time.monotonic() > end:
                raise TimeoutError(f"{self.who}: memory table not reachable:\n{self.log()[-2000:]}")
            time.sleep(0.1)

    def wait_totals(self, want_packets: int | None, timeout: float, poll: float = 0.2,
                    settle: float = 1.5, log_first: str | None = None):
        """Poll until the table holds ``want_packets`` packets (None: any) (returns the wall seconds
        since start at that moment and the totals), or until it stops changing for
        ``settle`` seconds without getting there (returns None and the last totals);
        with ``log_first``, the table is asked only once the log holds that text (pmacct
        sleeps before it reads a savefile, and queries slow a loading plugin down)."""
        end = time.monotonic() + timeout
        if log_first is not None:
            # no queries before the daemon has read the file: a query costs the plugin
            # time while it loads (pmacct's then drops buffers from its core)
            while log_first not in self.log() and self.alive() and time.monotonic() < end:
                time.sleep(0.05)
        last, since = None, time.monotonic()
        while time.monotonic() < end:
            t = self.totals()
            now = time.monotonic()
            if t is not None and (t[0] == want_packets or (want_packets is None and t[0] > 0)):
                return now - self.t0, t
            if t != last:
                last, since = t, now
                self.last_change = now - self.t0
            elif t is not None and now - since > settle:
                return None, t
            if not self.alive():
                return None, last
            time.sleep(poll)
        return None, last

    def stop(self, timeout: float = 60.0) -> dict:
        if self.proc is None:
            return {}
        # SIGINT to the daemon's processes, not to measure.py above them (it must live
        # on to reap them and write its figures)
        from tests.support.measure import tree
        from tests.support.memory import stop_group
        stop_group(self.proc, timeout,
                   pids=[p for p in tree(self.proc.pid) if p != self.proc.pid])
        try:
            return json.loads(self.mfile.read_text())
        except (OSError, ValueError):
            return {}


def bad_log_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if oracle._BAD_LOG.search(ln)]
