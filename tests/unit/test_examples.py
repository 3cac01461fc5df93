"""Every sample configuration in examples/ loads; the quickstart runs end to end."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pypmacct.config import load_config

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.conf"))
DAEMONS = ("nfacctd", "sfacctd", "pmacctd", "uacctd")


def daemon_for(path: Path) -> str:
    return next((d for d in DAEMONS if path.name.startswith(d)), "nfacctd")


def test_there_are_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    cfg = load_config(daemon_for(path), ["-f", str(path)])
    assert cfg.action == "run"
    assert cfg.plugins, "an example without plugins would run the memory default"


SAMPLE = dict(version=10, records=3000, seed=2100, exporters=2, duration=120)


def test_quickstart_prints_every_record_of_the_sample(tmp_path):
    sys.path.insert(0, str(ROOT))
    from tests.support.flowgen import write_capture
    # the bundled sample is exactly what the generator makes from SAMPLE
    export = write_capture(tmp_path / "sample.pcap", **SAMPLE)
    assert (tmp_path / "sample.pcap").read_bytes() == \
        (ROOT / "examples/data/sample-ipfix.pcap").read_bytes()

    out = subprocess.run([sys.executable, "-m", "pypmacct.daemons.nfacctd", "-f",
                          "examples/quickstart.conf"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["SRC_IP", "DST_IP", "SRC_PORT", "DST_PORT", "PROTOCOL",
                                "PACKETS", "BYTES"]
    rows = [l.split() for l in lines[1:]]
    assert sum(int(r[-2]) for r in rows) == int(export.truth["packets"].sum())
    assert sum(int(r[-1]) for r in rows) == int(export.truth["bytes"].sum())
