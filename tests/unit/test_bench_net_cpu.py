"""bench/run.py: CPU net of start-up, from paired repeats."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import run  # noqa: E402


def test_three_or_more_pairs_give_the_median_of_the_paired_differences():
    # a slow stretch (the 2nd and 3rd pairs) moves both runs of a pair together
    pairs = [(0.20, 0.14), (0.30, 0.23), (0.29, 0.22), (0.19, 0.13), (0.21, 0.14)]
    assert abs(run.net_cpu(pairs, 0.19, 0.13) - 0.07) < 1e-9
    # (least minus least would have said 0.06.) An even count: the mean of the middle two
    assert abs(run.net_cpu(pairs[:4], 0.19, 0.13) - 0.065) < 1e-9


def test_failed_repeats_are_left_out_and_too_few_fall_back_to_least_minus_least():
    assert abs(run.net_cpu([(0.5, 0.1), None, (0.45, 0.12)], 0.45, 0.1) - 0.35) < 1e-9
    assert run.net_cpu([None], None, 0.1) is None
    assert abs(run.net_cpu([(0.5, 0.1), None, (0.45, 0.12), (0.4, 0.2)], 0.4, 0.1)
               - 0.33) < 1e-9


def test_pair_needs_both_runs_good():
    assert run._pair({"ok": True, "cpu": 0.3}, {"ok": True, "cpu": 0.1}) == (0.3, 0.1)
    assert run._pair({"ok": False, "cpu": 0.3}, {"ok": True, "cpu": 0.1}) is None
    assert run._pair({"ok": True, "cpu": 0.3}, {"ok": True, "cpu": None}) is None


def _rep(run_cpu, fixed_cpu, ok=True):
    return ({"ok": ok, "cpu": run_cpu, "wall": run_cpu + 0.1, "problem": "" if ok else "lost"},
            {"ok": True, "cpu": fixed_cpu, "wall": fixed_cpu + 0.05})


def test_summarize_reports_the_best_run_the_least_start_up_and_the_paired_net():
    s = run.summarize([_rep(0.20, 0.14), _rep(0.30, 0.23), _rep(0.19, 0.13)],
                      {"records": 100_000})
    assert abs(s["cpu_net_per_M"] - 0.6) < 1e-9 and s["net_pairs"] == 3
    assert abs(s["cpu_per_M"] - 1.9) < 1e-9 and abs(s["fixed_cpu"] - 0.13) < 1e-9
    assert s["ok"] and s["repeat"] == 3 and s["failed_repeats"] == []


def test_summarize_leaves_a_failed_repeat_out_of_the_best_and_the_net():
    s = run.summarize([_rep(0.10, 0.13, ok=False), _rep(0.20, 0.14), _rep(0.30, 0.23)],
                      {"records": 1_000_000})
    assert s["ok"] and abs(s["cpu"] - 0.20) < 1e-9 and s["failed_repeats"] == ["lost"]
    # two good pairs: least run (0.20) minus least one-record run (0.13)
    assert s["net_pairs"] == 2 and abs(s["cpu_net_per_M"] - 0.07) < 1e-9


def test_interleaved_takes_turns_and_alternates_which_side_goes_first():
    calls = []

    def one(who):
        calls.append(who)
        cpu = {"pmacct": 0.5, "ours": 0.2}[who] + 0.01 * len(calls)
        return ({"ok": True, "cpu": cpu, "wall": cpu}, {"ok": True, "cpu": 0.1, "wall": 0.1})

    res = run.interleaved(["pmacct", "ours"], 3, one, {"records": 1_000_000})
    assert calls == ["pmacct", "ours", "ours", "pmacct", "pmacct", "ours"]
    assert abs(res["pmacct"]["cpu"] - 0.51) < 1e-9 and abs(res["ours"]["cpu"] - 0.22) < 1e-9
    assert res["ours"]["repeat"] == 3 and res["ours"]["net_pairs"] == 3
    # the paired net: ours' runs were 0.22, 0.23, 0.26, each with a 0.1 one-record run
    assert abs(res["ours"]["cpu_net_per_M"] - 0.13) < 1e-9


def test_startup_cpu_is_the_median_one_record_run_over_the_replay_cases():
    results = {"v5 print 5-tuple": {"pmacct": {"fixed_cpu": 0.06}, "ours": {"fixed_cpu": 0.11}},
               "v9 print 5-tuple": {"pmacct": {"fixed_cpu": 0.07}, "ours": {"fixed_cpu": 0.13}},
               "sFlow print 5-tuple": {"pmacct": {"fixed_cpu": 0.05}, "ours": None},
               "rss 1,000 aggregates, print": {"pmacct": {"fixed_cpu": 9.0},
                                               "ours": {"fixed_cpu": 9.0}}}
    got = run.startup_cpu(results)
    assert abs(got["pmacct"] - 0.06) < 1e-9 and abs(got["ours"] - 0.12) < 1e-9
    assert run.startup_cpu({}) == {}


def test_pairs_count_from_the_first_fork_when_both_runs_were_seen_forking():
    # start-up before the fork: 0.15 in the run, 0.19 in the one-record run (the noise
    # of importing); left out, the pair is what the plugins and the core did
    run_m = {"ok": True, "cpu": 0.26, "cpu_at_fork": 0.15}
    fixed = {"ok": True, "cpu": 0.21, "cpu_at_fork": 0.19}
    a, b = run._pair(run_m, fixed)
    assert abs(a - 0.11) < 1e-9 and abs(b - 0.02) < 1e-9
    # one side never seen forking: both whole-tree figures, never a mix
    assert run._pair(run_m, {"ok": True, "cpu": 0.21, "cpu_at_fork": None}) == (0.26, 0.21)


def test_summarize_nets_from_the_first_fork():
    def rep(cpu, at, fcpu, fat):
        return ({"ok": True, "cpu": cpu, "cpu_at_fork": at, "wall": cpu, "problem": ""},
                {"ok": True, "cpu": fcpu, "cpu_at_fork": fat, "wall": fcpu})
    s = run.summarize([rep(0.26, 0.15, 0.21, 0.19), rep(0.30, 0.20, 0.17, 0.15),
                       rep(0.27, 0.16, 0.18, 0.16)], {"records": 100_000})
    # after the fork: 0.11-0.02, 0.10-0.02, 0.11-0.02 -> median 0.09
    assert abs(s["cpu_net_per_M"] - 0.9) < 1e-9
    # fewer than three pairs: the least run's after-fork CPU minus the least one-record's
    s = run.summarize([rep(0.26, 0.15, 0.21, 0.19), rep(0.30, 0.17, 0.17, 0.14)],
                      {"records": 100_000})
    assert abs(s["cpu_net_per_M"] - (0.11 - 0.02) * 10) < 1e-9
