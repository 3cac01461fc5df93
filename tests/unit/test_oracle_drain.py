"""The oracle runner's watch on pmacct savefile runs (tests/support/oracle.DrainWatch).

Stand-in daemons (Python scripts) play 1.7.7's end of a savefile run: the core holds
the capture open while it reads, lets go of it, and a plugin process either goes idle
(it has read everything) or is still busy when the run ends (it would be cut off).
"""
from __future__ import annotations

import sys

from tests.support import oracle

SCRIPT = """#!{python}
import os, sys, time
conf = dict(l.split(": ", 1) for l in open(sys.argv[2]).read().splitlines() if ": " in l)
count = {count!r}
runs = int(open(count).read()) + 1 if os.path.exists(count) else 1
open(count, "w").write(str(runs))
mode = {modes!r}[min(runs, len({modes!r})) - 1]
if mode == "fail":
    sys.exit(1)
if mode != "no-file":
    with open(conf["pcap_savefile"], "rb") as f:     # the core reads the file
        f.read()
        time.sleep(0.3)
pid = os.fork()
if pid == 0:                                         # the plugin
    end = time.monotonic() + 1.0
    if mode == "busy":
        while time.monotonic() < end:
            pass
    else:
        time.sleep(1.0)
    os._exit(0)
os.waitpid(pid, 0)
"""


def fake(tmp_path, monkeypatch, modes: list[str]):
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    binary = sbin / "nfacctd"
    binary.write_text(SCRIPT.format(python=sys.executable, count=str(tmp_path / "runs"),
                                    modes=modes))
    binary.chmod(0o755)
    monkeypatch.setattr(oracle, "PMACCT_SBIN", sbin)
    capture = tmp_path / "c.pcap"
    capture.write_bytes(b"\0" * 100)
    return binary, {"daemonize": False, "pcap_savefile": str(capture)}


def runs(tmp_path) -> int:
    return int((tmp_path / "runs").read_text())


def test_an_idle_plugin_after_the_file_is_drained(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["idle"])
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.returncode, res.drained, runs(tmp_path)) == (0, True, 1)


def test_a_plugin_busy_to_the_end_is_run_again(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["busy", "busy", "idle"])
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.drained, runs(tmp_path)) == (True, 3)


def test_busy_three_times_fails_check_run(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["busy"])
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.drained, runs(tmp_path)) == (False, 3)
    try:
        oracle.check_run(res, "pmacct", strict_log=False)
    except AssertionError as e:
        assert "never seen idle after the end of the savefile" in str(e)
    else:
        raise AssertionError("check_run passed an undrained run")


def test_a_failed_run_is_not_repeated(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["fail"])
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.returncode, res.drained, runs(tmp_path)) == (1, None, 1)


def test_a_file_never_seen_open_is_not_judged(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["no-file"])
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.returncode, res.drained, runs(tmp_path)) == (0, None, 1)


def test_our_daemons_are_not_watched(tmp_path, monkeypatch):
    binary, s = fake(tmp_path, monkeypatch, ["busy"])
    monkeypatch.setattr(oracle, "PMACCT_SBIN", tmp_path / "elsewhere")
    res = oracle.run_daemon(binary, s, tmp_path / "w", output_glob="none")
    assert (res.drained, runs(tmp_path)) == (None, 1)
