"""Differential tests: our nfacctd against pmacct 1.7.7's, same capture, same config.

Parametrised over captures (flowgen's v5/v9/IPFIX, pmacct's own IPFIX/NFv9 test captures,
softflowd's v5/v9/IPFIX exports) x aggregate sets x print formats; the matrix lives in
``tests/support/diffcases.py``. Each case is one ``print[NAME]`` plugin of a shared daemon run
(two runs per capture and daemon), and passes when every output file of that plugin is
identical in both runs once rows are sorted (header first).

    .venv/bin/python -m pytest -m diff                 # the whole matrix
    .venv/bin/python -m pytest -m diff -k gen-v5       # one capture
    PYPMACCT_DIFF_ONE_PLUGIN=1 ... -m diff             # our daemon: one plugin per run

pmacct's results are cached in .pytest_cache (keyed by binary, config and capture bytes), so
after the first session only our daemon runs.
"""
from __future__ import annotations

import pytest

from tests.support import diffcases, oracle

from .conftest import selected_cases
from .known_differences import DOC, known_for, superset_check, zero_column

pytestmark = pytest.mark.diff

CASES = diffcases.all_cases()


@pytest.fixture(scope="session")
def group_runs(diff_runs, request, our_nfacctd):
    # run everything the selected tests need up front, in parallel
    diff_runs.ours = our_nfacctd
    diff_runs.prefetch(selected_cases(request, "diff"))
    return diff_runs


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_same_output_as_pmacct(group_runs, case):
    theirs = group_runs.get("pmacct", case, CASES)
    oracle.check_run(theirs, f"pmacct on {case.capture.id}")
    ours = group_runs.get("ours", case, CASES)
    # our log may say more than pmacct's (e.g. counted, skipped non-NetFlow payloads in the
    # BMP/BGP corpus captures): the outputs are the contract here, the log is not
    oracle.check_run(ours, f"our nfacctd on {case.capture.id}", strict_log=False)
    want = diffcases.outputs_of(theirs, case.plugin)
    got = diffcases.outputs_of(ours, case.plugin)
    assert want, f"pmacct wrote no output for plugin {case.plugin}: {sorted(theirs.outputs)}"
    assert sorted(got) == sorted(want), (
        f"{case.id}: output files differ: pmacct {sorted(want)}, ours {sorted(got)}")
    problems = []
    known = known_for(case.capture.id)
    more = set()
    for name in sorted(want):
        theirs_text, ours_text = want[name], got[name]
        for k in known:
            if k.superset:
                bad, extra = superset_check(theirs_text, ours_text, case.fmt)
                if extra:
                    more.add(k.doc)
                if bad:
                    problems.append(f"== {name} (documented: {k.doc}) ==\n" + "\n".join(bad[:20]))
                theirs_text = ours_text = ""  # checked as a superset, not for identity
            elif k.column:
                ours_text = zero_column(ours_text, case.fmt, k)
        d = oracle.diff_message(oracle.normalise(theirs_text, case.fmt),
                                oracle.normalise(ours_text, case.fmt))
        if d:
            problems.append(f"== {name} ==\n{d}")
    for k in known:
        if k.superset and k.doc not in more:
            problems.append(f"documented difference '{k.doc}' ({DOC}) no longer shows for "
                            f"{case.capture.id}: ours holds exactly what pmacct printed")
        if k.column and _shows(k, got) and not _needed(k, want, got, case.fmt):
            problems.append(f"documented difference '{k.doc}' ({DOC}) no longer shows for "
                            f"{case.capture.id}: our {k.column} column already equals pmacct's")
    assert not problems, (f"{case.id}: our output differs from pmacct's after sorting rows\n"
                          + "\n".join(problems) + f"\n--- our run ---\n{ours.describe()}")


def _shows(k, outputs) -> bool:
    """The column is part of these outputs (header name or JSON key)."""
    return any(k.column in text or f'"{k.json_key}"' in text for text in outputs.values())


def _needed(k, want, got, fmt) -> bool:
    """Without the adjustment our outputs differ from pmacct's."""
    return any(oracle.normalise(got[n], fmt) != oracle.normalise(want[n], fmt) for n in want)
