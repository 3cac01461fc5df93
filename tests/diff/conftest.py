"""Fixtures shared by the differential tests and the oracle matrix checks."""
from __future__ import annotations

import pytest

from tests.support import diffcases, oracle


@pytest.fixture(scope="session")
def diff_runs(tmp_path_factory, request, pmacct_nfacctd, oracle_cache) -> diffcases.GroupRuns:
    """Every (capture, group) daemon run of the matrix, made once per session on demand."""
    return diffcases.GroupRuns(tmp_path_factory.mktemp("diff"), oracle_cache, pmacct_nfacctd,
                               oracle.our_binary("nfacctd"),
                               jobs=request.config.getoption("--diff-jobs"))


def selected_cases(request, marker: str) -> list[diffcases.Case]:
    # other diff tests may have a parameter called "case" too: only matrix cases count
    return [it.callspec.params["case"] for it in request.session.items
            if it.get_closest_marker(marker) and hasattr(it, "callspec")
            and isinstance(it.callspec.params.get("case"), diffcases.Case)]
