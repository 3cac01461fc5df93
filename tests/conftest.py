"""Suite-wide fixtures and options.

- ``--slow``: also run tests marked ``slow`` (soak and full-size benchmark forms); without
  it they are deselected, so CI runs the short forms.
- The oracle, pmacct 1.7.7, must be installed (Debian package ``pmacct``: /usr/sbin/nfacctd).
  Tests that need it fail, with that message, when it is missing: they are never skipped.
- Results of oracle runs are cached in pytest's cache dir (``.pytest_cache/d/oracle``),
  keyed by the binary, the config and the capture's bytes; ``--cache-clear`` drops them.
"""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.support import oracle  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="also run tests marked slow (long soak/benchmark forms)")
    parser.addoption("--diff-jobs", type=int, default=int(os.environ.get("PYPMACCT_DIFF_JOBS", "4")),
                     help="parallel pmacct runs for the differential tests (default 4)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    keep, drop = [], []
    for it in items:
        (drop if it.get_closest_marker("slow") else keep).append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def _need_binary(path: Path, what: str, hint: str) -> Path:
    if not path.exists() or not os.access(path, os.X_OK):
        pytest.fail(f"{what} not found at {path}. {hint}", pytrace=False)
    return path


@pytest.fixture(scope="session")
def pmacct_nfacctd() -> Path:
    """pmacct 1.7.7's nfacctd, the oracle (PMACCT_SBIN overrides /usr/sbin)."""
    return _need_binary(oracle.pmacct_binary("nfacctd"), "pmacct's nfacctd (the oracle)",
                        "Install it: apt-get install -y pmacct (the README's test command does).")


@pytest.fixture(scope="session")
def our_nfacctd() -> Path:
    """Our nfacctd console script (PYPMACCT_BIN_DIR overrides the venv's bin/)."""
    return _need_binary(oracle.our_binary("nfacctd"), "our nfacctd",
                        "Install the project: .venv/bin/pip install -e . (console script nfacctd).")


@pytest.fixture(scope="session")
def softflowd_bin() -> Path:
    from tests.support import softflowd
    return _need_binary(Path(softflowd.SOFTFLOWD), "softflowd",
                        "Install it: apt-get install -y softflowd.")


@pytest.fixture(scope="session")
def oracle_cache(request, tmp_path_factory) -> Path:
    """Directory for cached oracle results and softflowd exports.

    PYPMACCT_ORACLE_CACHE overrides; without pytest's cache plugin, a per-session temp dir.
    """
    env = os.environ.get("PYPMACCT_ORACLE_CACHE")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("oracle-cache")
    return Path(cache.mkdir("oracle"))


@pytest.fixture
def workdir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def free_udp_port():
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    def get(host: str = "127.0.0.1") -> int:
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(fam, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    return get
