"""tests/support/measure.py: the whole tree's CPU, and the CPU spent before the first fork."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

# burns CPU for a while, forks a child that sleeps and then burns some more, and waits
# for it: the parent's CPU goes before the fork, the child's after (a late look at the
# tree adds nothing, as both sleep in between)
STAND_IN = textwrap.dedent("""
    import os, time
    def burn(s):
        end = time.process_time() + s
        while time.process_time() < end:
            pass
    burn(0.20)
    pid = os.fork()
    if pid == 0:
        time.sleep(0.3)
        burn(0.10)
        os._exit(0)
    os.waitpid(pid, 0)
""")


def _measure(tmp_path, code):
    out = tmp_path / "m.json"
    rc = subprocess.run([sys.executable, "-m", "tests.support.measure", "--out", str(out),
                         "--", sys.executable, "-c", code], timeout=60).returncode
    return rc, json.loads(out.read_text())


def test_cpu_before_the_first_fork_is_reported_apart(tmp_path):
    rc, m = _measure(tmp_path, STAND_IN)
    assert rc == 0 and m["processes"] == 2
    assert 0.19 <= m["cpu_at_fork"] <= 0.28, m
    assert 0.09 <= m["cpu"] - m["cpu_at_fork"] <= 0.16, m


def test_a_tree_that_never_forks_has_no_fork_figure(tmp_path):
    rc, m = _measure(tmp_path, "import sys; sys.exit(3)")
    assert rc == 3 and m["cpu_at_fork"] is None and m["processes"] == 1
