"""The console scripts end without the interpreter's teardown (runtime.process.exit_now)
and keep what ``sys.exit(main())`` promised: the exit code, flushed output, atexit
handlers, and threads that were still working."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import atexit, sys, threading, time
sys.path.insert(0, {repo!r})
from pypmacct.runtime.process import console_script

def main():
    mode = sys.argv[1]
    atexit.register(lambda: sys.stdout.write("atexit ran\\n"))
    # block-buffered when piped: only a flush gets this out before _exit
    sys.stdout.write("partial line, no newline")
    if mode == "thread":
        t = threading.Thread(target=lambda: (time.sleep(0.2), print(" thread done")))
        t.start()
        return 0
    if mode == "raise-exit":
        raise SystemExit(3)
    if mode == "exit-text":
        sys.exit("fatal: told to stop")
    if mode == "none":
        return None
    if mode == "boom":
        raise RuntimeError("boom")
    return int(mode)

console_script(main)()
"""


def _run(tmp_path: Path, mode: str):
    script = tmp_path / "prog.py"
    script.write_text(_SCRIPT.format(repo=str(REPO)))
    # block-buffered stdout, as a daemon's is when it is not on a terminal
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, str(script), mode], capture_output=True,
                          text=True, timeout=30, env=env)


@pytest.mark.parametrize("mode,code", [("0", 0), ("2", 2), ("none", 0), ("raise-exit", 3)])
def test_exit_code_output_and_atexit(tmp_path, mode, code):
    r = _run(tmp_path, mode)
    assert r.returncode == code
    assert r.stdout == "partial line, no newlineatexit ran\n"
    assert r.stderr == ""


def test_a_text_exit_goes_to_stderr_with_code_1(tmp_path):
    r = _run(tmp_path, "exit-text")
    assert (r.returncode, r.stderr) == (1, "fatal: told to stop\n")


def test_a_running_thread_is_waited_for(tmp_path):
    r = _run(tmp_path, "thread")
    assert r.returncode == 0
    assert r.stdout == "partial line, no newline thread done\natexit ran\n"


def test_an_unexpected_exception_keeps_its_traceback(tmp_path):
    r = _run(tmp_path, "boom")
    assert r.returncode == 1
    assert "RuntimeError: boom" in r.stderr and "Traceback" in r.stderr


def test_the_installed_programs_use_it():
    """Every daemon's and the client's console script is the ``run`` wrapper."""
    from importlib.metadata import entry_points
    scripts = {e.name: e for e in entry_points(group="console_scripts")}
    for prog, mod in (("nfacctd", "pypmacct.daemons.nfacctd"),
                      ("sfacctd", "pypmacct.daemons.sfacctd"),
                      ("pmacctd", "pypmacct.daemons.pmacctd"),
                      ("uacctd", "pypmacct.daemons.uacctd"),
                      ("pmacct", "pypmacct.client.main")):
        assert scripts[prog].value == f"{mod}:run", prog
        assert scripts[prog].load().__qualname__ == "console_script.<locals>.run", prog
