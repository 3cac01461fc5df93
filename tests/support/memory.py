"""Run a daemon with memory plugins on a capture and query it with a ``pmacct`` client.

``MemoryDaemon(binary, tables, capture, workdir)`` starts ``binary`` (pmacct 1.7.7's
nfacctd or ours) with one memory plugin per entry of ``tables`` (name -> aggregate
list), each on its own socket in ``workdir``, replaying ``capture`` with
``pcap_savefile_wait: true`` so that the daemon stays up after the end of the file.
``wait_loaded()`` returns once every table has stopped changing after the daemon said it
finished the file; ``query(client, table, args)`` runs a client as ``pmacct`` (argv[0]
is ``pmacct`` for both, so usage texts compare); ``stop()`` sends SIGINT to the process
group and waits.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .oracle import our_binary, render_config

C_CLIENT = Path(os.environ.get("PMACCT_CLIENT", "/usr/bin/pmacct"))

# big enough that pmacct's core never drops for a plugin on test captures
BUFFERS = {"plugin_buffer_size": 204800, "plugin_pipe_size": 20480000}
ENV = {"TZ": "UTC"}


def our_client() -> Path:
    return our_binary("pmacct")


def run_client(client, args, cwd=None, timeout: float = 60.0) -> subprocess.CompletedProcess:
    env = dict(os.environ, **ENV)
    return subprocess.run(["pmacct"] + [str(a) for a in args], executable=str(client),
                          cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


class MemoryDaemon:
    def __init__(self, binary, tables: dict, capture, workdir, extra: dict | None = None,
                 per_table: dict | None = None):
        self.binary = Path(binary)
        self.tables = dict(tables)
        self.capture = Path(capture)
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.extra = dict(extra or {})
        self.per_table = dict(per_table or {})
        self.proc = None
        self.log_path = self.workdir / "daemon.log"

    def socket(self, table: str) -> str:
        return str(self.workdir / f"{table}.pipe")

    def settings(self) -> dict:
        s = {"daemonize": False, "logfile": str(self.log_path),
             "plugins": ", ".join(f"memory[{t}]" for t in self.tables),
             "pcap_savefile": str(self.capture), "pcap_savefile_wait": True}
        s.update(BUFFERS)
        for t, agg in self.tables.items():
            s[f"aggregate[{t}]"] = ", ".join(agg)
            s[f"imt_path[{t}]"] = self.socket(t)
            for k, v in self.per_table.get(t, {}).items():
                s[f"{k}[{t}]"] = v
        s.update(self.extra)
        return s

    def start(self) -> "MemoryDaemon":
        conf = self.workdir / "daemon.conf"
        conf.write_text(render_config(self.settings()))
        if self.log_path.exists():
            self.log_path.unlink()
        env = dict(os.environ, **ENV)
        self.proc = subprocess.Popen([str(self.binary), "-f", str(conf)], cwd=self.workdir,
                                     env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def totals(self, client, table: str):
        """(packets, bytes, flows, entries) of a whole table, or None if unreachable."""
        r = run_client(client, ["-p", self.socket(table), "-c", "src_host", "-N", "*",
                                "-n", "all"])
        parts = r.stdout.split()
        if r.returncode != 0 or len(parts) != 4:
            return None
        return tuple(int(x) for x in parts)

    def wait_loaded(self, client, timeout: float = 120.0) -> dict:
        """Wait until the file is read and every table is stable; returns the totals."""
        deadline = time.monotonic() + timeout
        while "finished reading" not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.binary} exited ({self.proc.returncode}):\n"
                                   f"{self.log()}\n{self.proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.binary} did not finish the file:\n{self.log()}")
            time.sleep(0.2)
        last = None
        while True:
            now = {t: self.totals(client, t) for t in self.tables}
            if last == now and all(v is not None for v in now.values()):
                return now
            if time.monotonic() > deadline:
                raise TimeoutError(f"tables of {self.binary} did not settle: {now}")
            last = now
            time.sleep(0.7)

    def query(self, client, table: str, args) -> subprocess.CompletedProcess:
        return run_client(client, ["-p", self.socket(table)] + list(args), cwd=self.workdir)

    def stop(self, timeout: float = 30.0) -> int:
        return stop_group(self.proc, timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def stop_group(proc, timeout: float = 30.0, pids=None) -> int:
    """Stop a daemon started in its own process group: SIGINT to the group (or to
    ``pids`` only, e.g. all but a measuring wrapper), SIGKILL after ``timeout``, then
    wait until the plugins, which may outlive the core for a moment, are gone too."""
    if proc is None:
        return 0
    if proc.poll() is None:
        for pid in ([-proc.pid] if pids is None else pids):
            try:
                if pid < 0:
                    os.killpg(-pid, signal.SIGINT)
                else:
                    os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    end = time.monotonic() + 10
    while time.monotonic() < end:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    return proc.returncode


# ---- comparing outputs ------------------------------------------------------------------
def split_table(text: str, fmt: str):
    """(header lines, rows, trailer lines) of a -s/-M output."""
    lines = text.splitlines(keepends=True)
    if fmt == "json":
        return [], lines, []
    head, rest = lines[:1], lines[1:]
    tail = []
    if fmt in ("formatted", "event_formatted") and len(rest) >= 2 \
            and rest[-1].startswith("For a total of:"):
        tail, rest = rest[-2:], rest[:-2]
    return head, rest, tail


def normalise_table(text: str, fmt: str) -> tuple:
    """Row order of a memory table is not a contract (pmacct's is its hash order):
    header and trailer as they are, rows as a sorted list."""
    head, rows, tail = split_table(text, fmt)
    return head, sorted(rows), tail
