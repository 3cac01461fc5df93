"""Run pmacct 1.7.7's daemons (the oracle) or ours on a capture, and compare outputs.

``run_daemon(binary, settings, workdir)`` writes ``settings`` as a pmacct config file, starts
the daemon in its own session, waits for it to exit (a ``pcap_savefile`` run exits at the
end of the file), and returns a :class:`RunResult` with every print output file it wrote,
its exit code and its log. The same function runs ours: pass :func:`our_binary`.

Facts about pmacct 1.7.7's savefile mode that shape this module (read in its source and
checked by running it):
- it sleeps 2 s after start-up before reading the file, and on reaching the end it flushes
  the core's half-filled buffer to the plugins, sleeps 2 s more, then signals them to
  purge and exit: a run takes >= 4 s whatever the capture;
- while reading a savefile the core sleeps 1 ms after every buffer handed to a plugin
  (``plugin_buffer_size``; 10240 bytes by default in savefile mode), so small buffers cap
  it at a few tens of thousands of records per second;
- a plugin that has not drained its ring within those 2 s loses what is left, without a
  word in the log; ``run_daemon`` watches for it (``DrainWatch``) and runs again;
- a print cache that runs out of entries (``print_cache_entries`` buckets, about ten
  chained entries per bucket) purges early and overwrites its own output file.
  ``check_run`` turns the log lines for that case into failures;
- every UDP or TCP payload in the file is offered to the NetFlow/IPFIX decoder, whatever
  its port; the exporter (``peer_src_ip``) is the frame's IP source address.
"""
from __future__ import annotations

import difflib
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PMACCT_SBIN = Path(os.environ.get("PMACCT_SBIN", "/usr/sbin"))

# Big enough that pmacct's core never waits on (or drops for) a plugin on test captures.
ORACLE_BUFFERS = {"plugin_buffer_size": 204800, "plugin_pipe_size": 20480000}

# log lines that mean the output cannot be trusted
_BAD_LOG = re.compile(r"\bERROR\b|\bWARN\b|Finished cache entries|missing data")


def log_trouble(log: str) -> list[str]:
    """The lines of a daemon log that mean its output cannot be trusted."""
    return [ln for ln in log.splitlines() if _BAD_LOG.search(ln)]


def pmacct_binary(name: str = "nfacctd") -> Path:
    return PMACCT_SBIN / name


def our_binary(name: str = "nfacctd") -> Path:
    """Our console script in the project venv (or next to the running interpreter)."""
    env = os.environ.get("PYPMACCT_BIN_DIR")
    candidates = [Path(env)] if env else []
    candidates += [REPO / ".venv" / "bin", Path(sys.executable).parent]
    for d in candidates:
        if (d / name).exists():
            return d / name
    return candidates[0] / name


def render_config(settings: dict) -> str:
    """pmacct config text: ``key: value`` per line, lists joined with ', '."""
    lines = []
    for k, v in settings.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        lines.append(f"{k}: {v}")
    return "\n".join(lines) + "\n"


def print_settings(capture, aggregate, fmt: str = "csv", *, output_file: str = "out.txt",
                   extra: dict | None = None) -> dict:
    """The config the diff tests and the bench give both daemons (paths relative to workdir)."""
    s = {
        "daemonize": False,
        "pcap_savefile": str(capture),
        "plugins": "print",
        "aggregate": list(aggregate) if not isinstance(aggregate, str) else aggregate,
        "print_output": fmt,
        "print_output_file": output_file,
        "print_refresh_time": 86400,
        "logfile": "daemon.log",
        **ORACLE_BUFFERS,
    }
    if extra:
        s.update(extra)
    return s


@dataclass
class RunResult:
    binary: str
    workdir: Path
    config_text: str
    returncode: int | None
    outputs: dict[str, str]          # output file name -> text
    log: str
    stdout: str
    stderr: str
    wall: float
    timed_out: bool = False
    measure: dict = field(default_factory=dict)   # from tests.support.measure, when asked
    # pmacct savefile runs: whether every plugin was seen idle after the core had read the
    # file (None: not watched)
    drained: bool | None = None

    @property
    def output(self) -> str:
        """The single output file's text ('' if none was written)."""
        if not self.outputs:
            return ""
        if len(self.outputs) > 1:
            raise AssertionError(f"{len(self.outputs)} output files, expected one: {sorted(self.outputs)}")
        return next(iter(self.outputs.values()))

    def describe(self) -> str:
        return (f"{self.binary} in {self.workdir}: rc={self.returncode} wall={self.wall:.1f}s"
                f"{' TIMED OUT' if self.timed_out else ''}\n--- config ---\n{self.config_text}"
                f"--- log (tail) ---\n{_tail(self.log)}--- stderr (tail) ---\n{_tail(self.stderr)}")


def _tail(text: str, n: int = 25) -> str:
    lines = text.splitlines()[-n:]
    return "\n".join(lines) + ("\n" if lines else "")


def run_daemon(binary, settings: dict, workdir, *, timeout: float = 180.0,
               output_glob: str | None = None, measure: bool = False,
               env: dict | None = None, args: list[str] | None = None) -> RunResult:
    """Run ``binary -f workdir/daemon.conf`` until it exits; collect its outputs.

    ``output_glob`` (relative to workdir) picks the output files; by default it is
    ``print_output_file`` with every %-conversion and $-variable turned into '*'.
    With ``measure`` the daemon runs under ``tests.support.measure`` and the result carries
    its CPU seconds and peak memory for the whole process tree.

    A pmacct savefile run (not measured) is watched (:class:`DrainWatch`) and made again,
    up to three times in all, when one of its plugins may have been cut off unread.
    """
    watch = (not measure and _is_pmacct(binary) and settings.get("pcap_savefile")
             and not settings.get("pcap_savefile_wait"))
    for _attempt in range(3 if watch else 1):
        res = _run_once(binary, settings, workdir, timeout, output_glob, measure, env, args,
                        watch)
        # a run that failed (or was never seen reading) is its own answer
        if res.drained is not False or res.returncode != 0 or res.timed_out:
            break
    return res


def _is_pmacct(binary) -> bool:
    return Path(binary).parent == PMACCT_SBIN


def _run_once(binary, settings, workdir, timeout, output_glob, measure, env, args,
              watch) -> RunResult:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "daemon.conf"
    text = render_config(settings)
    conf.write_text(text)
    if output_glob is None:
        pof = str(settings.get("print_output_file", "out.txt"))
        output_glob = re.sub(r"%[A-Za-z]|\$[a-z_]+", "*", pof)
    for old in glob.glob(str(workdir / output_glob)):
        os.unlink(old)
    log_path = workdir / str(settings.get("logfile", "daemon.log"))
    if log_path.exists():
        log_path.unlink()
    run_env = dict(os.environ)
    run_env["TZ"] = "UTC"
    if env:
        run_env.update(env)
    cmd = [str(binary), "-f", str(conf)] + list(args or [])
    mfile = workdir / "measure.json"
    if measure:
        cmd = [sys.executable, "-m", "tests.support.measure", "--out", str(mfile), "--"] + cmd
        run_env["PYTHONPATH"] = str(REPO) + os.pathsep + run_env.get("PYTHONPATH", "")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=workdir, env=run_env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    watcher = DrainWatch(proc.pid, workdir / str(settings["pcap_savefile"])) if watch else None
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc.pid)
        out, err = proc.communicate()
    wall = time.monotonic() - t0
    # a daemon's plugins may outlive the core for a moment: let them finish writing
    _wait_group_gone(proc.pid, 10.0)
    outputs = {}
    for p in sorted(glob.glob(str(workdir / output_glob))):
        outputs[os.path.relpath(p, workdir)] = Path(p).read_text(errors="replace")
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    m = json.loads(mfile.read_text()) if measure and mfile.exists() else {}
    return RunResult(str(binary), workdir, text, proc.returncode, outputs, log,
                     out.decode(errors="replace"), err.decode(errors="replace"), wall,
                     timed_out, m, watcher.result() if watcher else None)


class DrainWatch:
    """Watches a pmacct savefile run for a plugin cut off with buffers unread.

    1.7.7's core closes the savefile at its end, waits 2 s and tells its plugins to purge
    and exit; a plugin that has not read its ring by then (starved on a loaded machine)
    purges what it has, silently: a file short of rows, or none. A thread polls /proc:
    once the core has let go of the file, every process of the tree must be seen
    sleeping with unchanged CPU times for a few polls in a row before the run ends.
    ``result()``: True if they were, False if not, None if the core was never seen
    holding the file (it failed first, or read it all between two polls).
    """

    POLL = 0.05
    QUIET_POLLS = 3

    def __init__(self, pid: int, capture: str):
        import threading
        self.pid = pid
        self.capture = os.path.realpath(capture)
        self.drained: bool | None = None    # None until the core is seen reading the file
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _holds_capture(self) -> bool | None:
        try:
            fds = os.listdir(f"/proc/{self.pid}/fd")
        except OSError:
            return None        # gone
        for fd in fds:
            try:
                if os.readlink(f"/proc/{self.pid}/fd/{fd}") == self.capture:
                    return True
            except OSError:
                pass
        return False

    def _run(self) -> None:
        from tests.support.measure import tree
        while True:                       # the core reads the file...
            held = self._holds_capture()
            if held is None:
                return
            if held:
                self.drained = False      # judged from now on
            elif self.drained is False:
                break
            time.sleep(self.POLL)
        last, quiet = None, 0
        while True:                       # ...then every plugin must go idle
            now = {p: _cpu_and_state(p) for p in tree(self.pid)}
            if now.get(self.pid) is None:
                return
            idle = all(v is None or v[0] == "S" for v in now.values())
            quiet = quiet + 1 if idle and now == last else 0
            if quiet >= self.QUIET_POLLS:
                self.drained = True
                return
            last = now
            time.sleep(self.POLL)

    def result(self) -> bool | None:
        self._thread.join(5)
        return self.drained


def _cpu_and_state(pid: int):
    """(state letter, utime + stime) from /proc/PID/stat; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[11]) + int(fields[12])


def _kill_group(pgid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        time.sleep(0.5)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _wait_group_gone(pgid: int, timeout: float) -> None:
    end = time.monotonic() + timeout
    while _group_alive(pgid) and time.monotonic() < end:
        time.sleep(0.05)
    if _group_alive(pgid):
        _kill_group(pgid)


def check_run(res: RunResult, who: str = "daemon", *, strict_log: bool = True) -> None:
    """Fail with the config, log and stderr when a run did not end cleanly."""
    problems = []
    if res.timed_out:
        problems.append("timed out")
    if res.returncode != 0:
        problems.append(f"exit code {res.returncode}")
    if not res.outputs:
        problems.append("wrote no output file")
    if res.drained is False and res.returncode == 0:
        problems.append("a plugin was never seen idle after the end of the savefile in 3 runs: "
                        "it may have been cut off with buffers unread")
    if strict_log:
        bad = log_trouble(res.log)
        if bad:
            problems.append("log reports trouble:\n  " + "\n  ".join(bad[:10]))
    if problems:
        raise AssertionError(f"{who} run failed: {'; '.join(problems)}\n{res.describe()}")


# --------------------------------------------------------------------------------------
# Output parsing and comparison
# --------------------------------------------------------------------------------------
def split_output(text: str, fmt: str) -> tuple[list[str], list[str]]:
    """(header lines, data lines) of one print output file, data lines in file order.

    csv / event_csv: first line is the header. formatted / event_formatted: the header is
    the first line and the file ends with an empty line (kept out of the rows). json: no
    header.
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if fmt in ("json", "avro_json"):
        return [], lines
    if not lines:
        return [], []
    head, rows = [lines[0]], lines[1:]
    if fmt.endswith("formatted"):
        rows = [r for r in rows if r.strip() != ""]
    return head, rows


# The only field of a print output that depends on when the daemon ran: the purge time that
# JSON rows carry when print_history is set. Both sides get the same placeholder.
_WALL_CLOCK = re.compile(r'("stamp_updated": )"[^"]*"')


def normalise(text: str, fmt: str) -> list[str]:
    """Header first, then rows sorted: the form in which two outputs must be identical.

    ``stamp_updated`` (wall-clock purge time, JSON with print_history) becomes a placeholder.
    """
    head, rows = split_output(text, fmt)
    if fmt in ("json", "avro_json"):
        rows = [_WALL_CLOCK.sub(r'\1"<purge time>"', r) for r in rows]
    return head + sorted(rows)


def parse_rows(text: str, fmt: str, sep: str = ",") -> list[dict]:
    """Rows as dicts (csv: by header name; json: the object). For checks and messages."""
    head, rows = split_output(text, fmt)
    if fmt in ("json", "avro_json"):
        return [json.loads(r) for r in rows]
    if fmt.endswith("csv"):
        cols = head[0].split(sep)
        out = []
        for r in rows:
            vals = r.split(sep)
            if len(vals) != len(cols):
                raise AssertionError(f"row has {len(vals)} fields, header has {len(cols)}: {r!r}")
            out.append(dict(zip(cols, vals)))
        return out
    # formatted: fixed-width columns; the header's column starts give the slices
    cols = head[0].split()
    starts = [m.start() for m in re.finditer(r"\S+", head[0])]
    out = []
    for r in rows:
        vals = [r[s:(starts[i + 1] if i + 1 < len(starts) else None)].strip()
                for i, s in enumerate(starts)]
        out.append(dict(zip(cols, vals)))
    return out


def column_totals(text: str, fmt: str, columns=("PACKETS", "BYTES", "FLOWS")) -> dict[str, int]:
    rows = parse_rows(text, fmt)
    totals = {}
    for c in columns:
        key = c if fmt != "json" else c.lower()
        vals = [r[key] for r in rows if key in r and r[key] not in ("", None)]
        if vals:
            totals[c] = sum(int(v) for v in vals)
    return totals


def diff_message(expected: list[str], actual: list[str], *, label_expected: str = "pmacct",
                 label_actual: str = "ours", limit: int = 20) -> str:
    """A readable account of how two normalised outputs differ ('' when equal)."""
    if expected == actual:
        return ""
    msg = [f"{label_expected}: {len(expected)} lines, {label_actual}: {len(actual)} lines"]
    if expected[:1] != actual[:1]:
        msg.append(f"header differs:\n  {label_expected}: {expected[:1]}\n  {label_actual}: {actual[:1]}")
    se, sa = set(expected), set(actual)
    only_e = [r for r in expected if r not in sa]
    only_a = [r for r in actual if r not in se]
    if only_e:
        msg.append(f"{len(only_e)} line(s) only in {label_expected}, first {min(limit, len(only_e))}:")
        msg += ["  - " + r for r in only_e[:limit]]
    if only_a:
        msg.append(f"{len(only_a)} line(s) only in {label_actual}, first {min(limit, len(only_a))}:")
        msg += ["  + " + r for r in only_a[:limit]]
    if not only_e and not only_a:
        msg.append("same lines, different multiplicity:")
        msg += list(difflib.unified_diff(expected, actual, label_expected, label_actual, lineterm="",
                                         n=0))[:limit]
    return "\n".join(msg)


def assert_same_output(expected: RunResult, actual: RunResult, fmt: str) -> None:
    """Every output file of ``actual`` equals ``expected``'s after sorting rows."""
    names_e, names_a = sorted(expected.outputs), sorted(actual.outputs)
    if names_e != names_a:
        raise AssertionError(f"output files differ: pmacct wrote {names_e}, ours wrote {names_a}\n"
                             f"{actual.describe()}")
    problems = []
    for name in names_e:
        d = diff_message(normalise(expected.outputs[name], fmt), normalise(actual.outputs[name], fmt))
        if d:
            problems.append(f"== {name} ==\n{d}")
    if problems:
        raise AssertionError("outputs differ after sorting rows\n" + "\n".join(problems)
                             + f"\n--- our run ---\n{actual.describe()}")


def run_same_output(theirs_binary, ours_binary, settings: dict, workdir, fmt: str, *,
                    strict_pmacct_log: bool = True) -> tuple[RunResult, RunResult]:
    """Run 1.7.7's daemon and ours on the same settings (each in ``workdir/pmacct`` and
    ``workdir/ours``), check both ran cleanly (1.7.7's log strictly, unless told otherwise) and
    that they wrote the same output; returns both results for the test's own checks."""
    theirs = run_daemon(theirs_binary, settings, Path(workdir) / "pmacct")
    check_run(theirs, "pmacct", strict_log=strict_pmacct_log)
    ours = run_daemon(ours_binary, settings, Path(workdir) / "ours")
    check_run(ours, "ours", strict_log=False)
    assert_same_output(theirs, ours, fmt)
    return theirs, ours


# --------------------------------------------------------------------------------------
# Cached oracle runs
# --------------------------------------------------------------------------------------
ORACLE_CACHE_VERSION = "1"


def file_digest(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(binary, settings: dict, capture) -> str:
    """Key for an oracle run: binary identity, config (capture path replaced) and capture bytes."""
    b = Path(binary)
    st = b.stat()
    s = dict(settings)
    s["pcap_savefile"] = file_digest(capture)
    blob = json.dumps([ORACLE_CACHE_VERSION, str(b), st.st_size, int(st.st_mtime), s],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def cached_oracle_run(cache_dir, binary, settings: dict, capture, workdir, **kw) -> RunResult:
    """run_daemon for the oracle, reusing a stored result keyed by cache_key.

    Only clean runs (exit 0, an output file) are stored. 1.7.7 on a loaded machine
    now and then exits 0 having purged an empty cache and written no file at all (its
    plugin had not taken in the core's buffers when the core ended): such a run is
    made again, up to three times in all.
    """
    cache_dir = Path(cache_dir)
    key = cache_key(binary, settings, capture)
    entry = cache_dir / f"{key}.json"
    if entry.exists():
        d = json.loads(entry.read_text())
        return RunResult(d["binary"], Path(workdir), d["config_text"], d["returncode"],
                         d["outputs"], d["log"], "", "", d["wall"], False, {})
    for _attempt in range(3):
        res = run_daemon(binary, settings, workdir, **kw)
        if res.returncode != 0 or res.outputs or res.timed_out:
            break
    if res.returncode == 0 and res.outputs and not res.timed_out and res.drained is not False:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")   # workers may store the same key
        tmp.write_text(json.dumps({"binary": res.binary, "config_text": res.config_text,
                                   "returncode": res.returncode, "outputs": res.outputs,
                                   "log": res.log, "wall": res.wall}))
        os.replace(tmp, entry)
    return res


def copy_inputs(src_dir, dst_dir, names) -> None:
    for n in names:
        shutil.copy(Path(src_dir) / n, Path(dst_dir) / n)
