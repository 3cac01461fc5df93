"""pypmacct: pmacct-compatible network traffic accounting, in Python."""

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
