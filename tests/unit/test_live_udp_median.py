"""bench/live_udp.py: several searches per side, the median one reported."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import live_udp  # noqa: E402


def _search(best, trials=()):
    return {"best": {"target": best} if best else None, "trials": list(trials)}


def test_median_search_keeps_the_middle_search_and_every_best_and_trial():
    got = live_udp.median_search([_search(16000, [{"target": 16000}]), _search(12000),
                                  _search(19000, [{"target": 38000}, {"target": 19000}])])
    assert got["best"] == {"target": 16000}
    assert got["bests"] == [16000, 12000, 19000]
    assert got["all_trials"] == [{"target": 16000, "search": 1}, {"target": 38000, "search": 3},
                                 {"target": 19000, "search": 3}]


def test_median_search_of_an_even_count_takes_the_lower_middle_and_none_counts_as_zero():
    got = live_udp.median_search([_search(16000), _search(None)])
    assert got["best"] is None and got["bests"] == [16000, 0]


def test_searches_alternate_which_side_goes_first(monkeypatch):
    calls = []
    monkeypatch.setattr(live_udp, "search",
                        lambda who, pool, log=print, **kw: calls.append(who) or _search(1000))
    res = live_udp.searches(["pmacct", "ours"], None, 3)
    assert calls == ["pmacct", "ours", "ours", "pmacct", "pmacct", "ours"]
    assert res["pmacct"]["bests"] == [1000, 1000, 1000] and res["ours"]["best"] == {"target": 1000}
