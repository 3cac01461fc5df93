"""Run one command and account for its whole process tree.

    python -m tests.support.measure --out result.json -- CMD ARGS...

This process makes itself a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so daemons
that fork plugins and exit before reaping them still hand their children to us; after the
command exits we reap every remaining descendant. Then:

- ``cpu_user`` / ``cpu_sys``: ``getrusage(RUSAGE_CHILDREN)`` of this process, which by then
  covers every process of the tree (each was waited for, by its parent or by us);
- ``maxrss_kb``: the same call's ``ru_maxrss``: the largest peak RSS of any *single*
  process of the tree;
- ``peak_rss_kb`` / ``peak_pss_kb``: the largest *sum* over the live tree of VmRSS and of
  Pss (``/proc/PID/smaps_rollup``), sampled every ``--interval`` seconds. RSS counts shared
  pages (pmacct's shared-memory ring, our ring) once per process that maps them; PSS
  shares them out, so it is the fairer sum. Short peaks between samples can be missed;
- ``wall``: seconds from start to the command's exit;
- ``cpu_at_fork``: the tree's CPU seconds when it was first seen with a second process
  (the daemon's first plugin), read from ``/proc/PID/task/*/schedstat`` (nanoseconds),
  the tree being looked at every ``--fork-poll`` seconds until then; ``None`` if it
  never forked. Both pmacct and ours read no record before their plugins are forked, so
  ``cpu - cpu_at_fork`` is the run without its start-up (the interpreter and imports
  for ours), which varies by tens of ms between identical runs on this machine.

The command's exit code is passed through.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def _children_of(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    out += [int(x) for x in f.read().split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def tree(pid: int) -> list[int]:
    seen, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo += _children_of(p)
    return seen


def _cpu_ns(pid: int) -> int:
    """CPU time so far of every thread of ``pid``, in nanoseconds (0 once it is gone)."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def _rss_pss(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--interval", type=float, default=0.02)
    ap.add_argument("--fork-poll", type=float, default=0.002,
                    help="how often the tree is looked at until its first fork (s)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    me = os.getpid()
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
    peak_rss = peak_pss = 0
    nprocs = 1
    cpu_at_fork = None
    next_sample = 0.0
    while proc.poll() is None:
        pids = [p for p in tree(me) if p != me]
        nprocs = max(nprocs, len(pids))
        if cpu_at_fork is None and len(pids) > 1:
            cpu_at_fork = sum(_cpu_ns(p) for p in pids) / 1e9
        now = time.monotonic()
        if now >= next_sample:
            rs = [_rss_pss(p) for p in pids]
            peak_rss = max(peak_rss, sum(r for r, _ in rs))
            peak_pss = max(peak_pss, sum(p for _, p in rs))
            next_sample = now + a.interval
        time.sleep(a.fork_poll if cpu_at_fork is None else a.interval)
    wall = time.monotonic() - t0
    rc = proc.returncode
    # reap what the command left behind (re-parented to us), waiting up to 30 s
    deadline = time.monotonic() + 30
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            pids = [p for p in tree(me) if p != me]
            rs = [_rss_pss(p) for p in pids]
            peak_rss = max(peak_rss, sum(r for r, _ in rs))
            peak_pss = max(peak_pss, sum(p for _, p in rs))
            if time.monotonic() > deadline:
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            time.sleep(a.interval)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {"wall": wall, "wall_all": time.monotonic() - t0, "cpu_user": ru.ru_utime,
              "cpu_sys": ru.ru_stime, "cpu": ru.ru_utime + ru.ru_stime,
              "cpu_at_fork": cpu_at_fork,
              "maxrss_kb": ru.ru_maxrss, "peak_rss_kb": peak_rss, "peak_pss_kb": peak_pss,
              "processes": nprocs, "returncode": rc}
    with open(a.out, "w") as f:
        json.dump(result, f)
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
