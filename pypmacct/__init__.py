"""pypmacct: pmacct-compatible network traffic accounting, in Python."""

import os as _os

__version__ = "0.1.0"
# The pmacct release whose behaviour we follow.
PMACCT_COMPAT = "1.7.7"


def _import_numpy_without_blas_threads() -> None:
    """Import numpy with OpenBLAS limited to one thread, unless the user chose a number.

    Nothing here does floating-point linear algebra, yet numpy's OpenBLAS starts a
    thread pool and allocates its buffers when numpy is imported: some 60 ms of CPU at
    every start of every daemon (and of the pmacct client). OpenBLAS reads the variable
    when it is loaded, so it is removed again afterwards: programs we start (triggers,
    writers' children) see the environment they would have seen."""
    import os
    import sys
    if "numpy" in sys.modules or "OPENBLAS_NUM_THREADS" in os.environ:
        return
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    try:
        import numpy  # noqa: F401
    except ImportError:   # pragma: no cover - numpy is a hard dependency
        pass
    finally:
        os.environ.pop("OPENBLAS_NUM_THREADS", None)


_import_numpy_without_blas_threads()


def _source_checkout_subpackages() -> None:
    """In a source checkout, find ``pypmacct.daemons`` and ``pypmacct.plugins`` in the
    repository's top-level ``daemons/`` and ``plugins/`` (where DESIGN.md puts them;
    setup.py installs them inside the package). This is what lets the development
    install be a plain path entry (``editable_mode=compat``, scripts/bootstrap.sh)
    rather than setuptools' import finder, whose module pulls in pathlib and more:
    ~18 ms at every start of every daemon that an installed copy does not pay."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.path.isdir(_os.path.join(here, "daemons")):
        return                                  # installed: the subpackages are inside
    root = _os.path.dirname(here)
    if all(_os.path.isfile(_os.path.join(root, d, "__init__.py")) for d in ("daemons", "plugins")):
        __path__.append(root)


_source_checkout_subpackages()
