"""What a daemon's start imports, and where the source checkout finds its subpackages.

Start-up is CPU every run pays (docs/profile.md, "Fixed cost"), so modules the daemon
path has no use for are kept out of it; these tests run a fresh interpreter the way the
console scripts do (from outside the repository) and look at ``sys.modules``."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# what sfacctd's start imports and builds (configuration, plugins, core stages) for a
# run with no filter and no map
_PROBE = """
import sys
import pypmacct.daemons.sfacctd, pypmacct.daemons.nfacctd, pypmacct.plugins.print_plugin
import pypmacct.daemons, pypmacct.plugins
from pypmacct.config import load_config
from pypmacct.daemons.common import build_plugins
from pypmacct.plugins.base import PluginContext
from pypmacct.runtime.log import Logger
from pypmacct.runtime.stages import CoreStages
cfg = load_config("sfacctd", ["-f", sys.argv[1]])
log = Logger("default", "core")
CoreStages(cfg, build_plugins(cfg, PluginContext(daemon="sfacctd"), log), "sfacctd", log)
print(pypmacct.daemons.__file__)
print(pypmacct.plugins.__file__)
unused = ("pathlib", "tempfile", "importlib.metadata", "numpy.random", "numpy.ma",
          "pypmacct.filters.parser", "pypmacct.maps.pretag")
print(",".join(sorted(m for m in sys.modules
                      if any(m == u or m.startswith(u + ".") for u in unused))))
"""


def _probe(tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    conf = tmp_path / "sfacctd.conf"
    conf.write_text("plugins: print\naggregate: src_host, dst_host\n"
                    f"print_output_file: {tmp_path / 'out.csv'}\n")
    r = subprocess.run([sys.executable, "-c", _PROBE, str(conf)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


def test_source_checkout_finds_daemons_and_plugins_at_the_top(tmp_path):
    daemons, plugins, _ = _probe(tmp_path)
    assert Path(daemons) == REPO / "daemons" / "__init__.py"
    assert Path(plugins) == REPO / "plugins" / "__init__.py"


def test_daemon_start_imports_nothing_it_does_not_use(tmp_path):
    # pathlib came with setuptools' editable finder (~18 ms a start), the filter parser
    # (~6 ms) and the pre_tag_map module with every run; numpy.random, numpy.ma,
    # tempfile and importlib.metadata were each removed from the path earlier
    unused = _probe(tmp_path)[2]
    assert unused == "", (
        f"imported at start for nothing: {unused}" + (
            " (pathlib: is the venv an editable install with setuptools' finder? "
            "scripts/bootstrap.sh falls back to it where compat mode is gone)"
            if "pathlib" in unused.split(",") else ""))


def test_an_installed_copy_keeps_its_own_subpackages(tmp_path):
    """With ``daemons/`` inside the package (a wheel install), ``__path__`` is left
    alone: nothing outside the installed package is searched."""
    pkg = tmp_path / "site" / "pypmacct"
    (pkg / "daemons").mkdir(parents=True)
    (pkg / "__init__.py").write_text((REPO / "pypmacct" / "__init__.py").read_text())
    (pkg / "daemons" / "__init__.py").write_text("")
    for d in ("daemons", "plugins"):            # a decoy checkout layout beside it
        (tmp_path / "site" / d).mkdir()
        (tmp_path / "site" / d / "__init__.py").write_text("")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    r = subprocess.run([sys.executable, "-c", "import pypmacct; print(pypmacct.__path__)"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == repr([str(pkg)])
