"""The canary judge's statistics and decisions (plugins/module_utils/colors_release_judge.py)."""

from __future__ import annotations

import random

import pytest
from helpers import load_plugin

judge = load_plugin("plugins/module_utils/colors_release_judge.py")

ERRORS = judge.Metric("error-ratio", "ratio", tolerance=0.005, weight=2, min_sample=200)
P99 = judge.Metric("latency-p99", "value", tolerance=0.02, min_sample=12)


def test_mann_whitney_matches_the_textbook_values():
    # Completely separated samples of three: U = 9 of 9; z = (9 - 4.5 - 0.5) / sqrt(9/12 * 7) (scipy's
    # mannwhitneyu, asymptotic with continuity correction, alternative="greater": 0.0404).
    u, p = judge.mann_whitney_greater([4, 5, 6], [1, 2, 3])
    assert u == 9 and p == pytest.approx(0.040428, abs=1e-5)
    u, p = judge.mann_whitney_greater([1, 2, 3], [4, 5, 6])
    assert u == 0 and p > 0.95
    # Ties share their rank, and the variance shrinks by them; all equal tells nothing apart.
    assert judge.mann_whitney_greater([1, 1, 2], [1, 2, 2])[0] == pytest.approx(3.0)
    assert judge.mann_whitney_greater([0.0] * 10, [0.0] * 10) == (50.0, 1.0)


def test_fisher_exact_matches_the_hypergeometric_tail():
    # [[3, 1], [1, 3]]: P(X >= 3) = (C(4,3)C(4,1) + C(4,4)C(4,0)) / C(8,4) = 17/70 (scipy's fisher_exact: 0.2429).
    assert judge.fisher_greater(3, 4, 1, 4) == pytest.approx(17 / 70)
    assert judge.fisher_greater(0, 100, 0, 100) == 1.0  # no error anywhere: nothing to tell
    assert judge.fisher_greater(50, 1000, 5, 1000) < 1e-8


def test_below_its_minimum_sample_a_metric_extends_the_analysis_and_never_fails():
    # 100 requests a side, half of the canary's failing: still "extend", never "fail", as the minimum is 200.
    verdict = judge.judge([ERRORS], {"error-ratio": [(50, 100)]}, {"error-ratio": [(0, 100)]})
    assert verdict.state == judge.EXTEND and verdict.score is None
    assert verdict.judgements[0].reason == "100 requests on the smaller side, 200 needed"


def test_a_difference_must_be_both_significant_and_larger_than_the_tolerance():
    baseline = [(1, 1000)] * 5  # 0.1 %
    # +3 pp: significant and beyond half a point -> fail.
    worse = judge.judge_metric(ERRORS, [(31, 1000)] * 5, baseline, alpha=0.01)
    assert worse.outcome == judge.FAIL and worse.statistic["p"] < 1e-10
    assert worse.reason.startswith("the canary is worse by 0.03 (tolerance 0.005)")
    # +0.3 pp over 50,000 requests: significant, yet within tolerance -> pass.
    small = judge.judge_metric(ERRORS, [(4, 1000)] * 50, [(1, 1000)] * 50, alpha=0.01)
    assert small.outcome == judge.PASS and small.statistic["p"] < 0.01
    assert small.reason.startswith("no worse than the tolerance 0.005")
    assert small.statistic["effect_upper_bound"] < 0.005
    # A canary better than its baseline never fails (one-sided).
    assert judge.judge_metric(ERRORS, baseline, [(31, 1000)] * 5, alpha=0.01).outcome == judge.PASS


def test_a_metric_neither_shown_worse_nor_shown_no_worse_is_not_decided_yet():
    # 10 errors in 1,000 against 2: +0.8 pp, but the samples cannot yet tell it from the tolerance either way.
    undecided = judge.judge_metric(ERRORS, [(10, 1000)], [(2, 1000)], alpha=0.001)
    assert undecided.outcome == judge.EXTEND and undecided.reason.startswith("not decided yet")
    # A hundred times the traffic decides it.
    assert judge.judge_metric(ERRORS, [(10, 1000)] * 100, [(2, 1000)] * 100, alpha=0.001).outcome == judge.FAIL


def test_latency_windows_are_compared_by_their_ranks_and_their_medians():
    rng = random.Random(7)  # noqa: S311 # nosec B311 - samples of a test, not secrets
    baseline = [0.2 + rng.gauss(0, 0.01) for _ in range(30)]
    slower = [0.25 + rng.gauss(0, 0.01) for _ in range(30)]  # +50 ms
    verdict = judge.judge_metric(P99, slower, baseline, alpha=0.01)
    assert verdict.outcome == judge.FAIL and verdict.statistic["test"] == "mann-whitney-u"
    assert verdict.statistic["effect"] == pytest.approx(0.05, abs=0.01)
    same = [0.2 + rng.gauss(0, 0.01) for _ in range(30)]
    assert judge.judge_metric(P99, same, baseline, alpha=0.01).outcome == judge.PASS
    # Windows without a value (no request in them) are not samples.
    assert judge.judge_metric(P99, [None] * 30, baseline, alpha=0.01).outcome == judge.EXTEND
    # A metric where lower is worse (throughput, say).
    throughput = judge.Metric("throughput", "value", tolerance=1, min_sample=5, worse="lower")
    assert judge.judge_metric(throughput, [10.0] * 8, [20.0] * 8, alpha=0.01).outcome == judge.FAIL


BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)  # the app's histogram


def test_histogram_quantile_is_prometheus_s():
    # 100 observations: 90 in (0.01, 0.025], 10 in (0.025, 0.05]: p99's rank 99 lies 9/10 into the second bucket.
    counts = [0, 0, 90, 10, 0, 0, 0, 0, 0, 0, 0]
    assert judge.histogram_quantile(0.99, BOUNDS, counts) == pytest.approx(0.025 + 0.025 * 9 / 10)
    assert judge.histogram_quantile(0.5, BOUNDS, counts) == pytest.approx(0.01 + 0.015 * 50 / 90)
    assert judge.histogram_quantile(0.99, BOUNDS, [0] * 10 + [5]) == 5  # in +Inf: the highest finite bound
    assert judge.histogram_quantile(0.99, BOUNDS, [0] * 11) != judge.histogram_quantile(0.99, BOUNDS, [0] * 11)


def test_a_tail_regression_is_found_beyond_the_baselines_quantile_bound():
    p99 = judge.Metric("latency-p99", "quantile", tolerance=0.02, min_sample=200, bounds=BOUNDS)
    # Baseline: 0.2 % of 5,000 requests beyond 50 ms; the canary's slowest 2 % moved to (50 ms, 100 ms].
    baseline = [[0, 400, 3500, 1090, 10, 0, 0, 0, 0, 0, 0]]
    slower = [[0, 400, 3500, 1000, 100, 0, 0, 0, 0, 0, 0]]
    verdict = judge.judge_metric(p99, slower, baseline, alpha=0.001)
    assert verdict.outcome == judge.FAIL, verdict
    assert verdict.statistic["bound"] == 0.05 and verdict.statistic["canary"] == {"total": 5000, "beyond": 100}
    assert verdict.statistic["effect"] > 0.02 and "beyond 0.05s" in verdict.reason
    # The same as its baseline: no worse (the share beyond the bound is bounded within 1 % of the baseline's).
    assert judge.judge_metric(p99, baseline, baseline, alpha=0.001).outcome == judge.PASS
    # Too few requests: extend.
    assert judge.judge_metric(p99, [[0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0]], baseline, alpha=0.001).outcome == judge.EXTEND


def test_the_tail_bound_is_chosen_from_both_sides_not_from_a_baseline_that_happened_to_be_fast():
    """The benchmark's one A/A false abort before the bound was pooled: the baseline's sample had 1 of 299 requests
    beyond 25 ms (3.6 % expected), so a bound at its own p99 (25 ms) found the same-version canary's 14 of 333
    significantly worse. Both sides' p98 puts the bound at 50 ms, beyond which neither has a request."""
    p99 = judge.Metric("latency-p99", "quantile", tolerance=0.02, min_sample=200, bounds=BOUNDS)
    fast_baseline = [[0, 60, 238, 1, 0, 0, 0, 0, 0, 0, 0]]
    canary = [[0, 60, 259, 14, 0, 0, 0, 0, 0, 0, 0]]
    verdict = judge.judge_metric(p99, canary, fast_baseline, alpha=0.001)
    assert verdict.statistic["bound"] == 0.05 and verdict.outcome != judge.FAIL, verdict


def test_the_verdict_is_the_weighted_score_of_the_metrics():
    p50 = judge.Metric("latency-p50", "value", tolerance=0.01, min_sample=12)
    good = {"error-ratio": [(1, 1000)] * 5, "latency-p99": [0.2] * 20, "latency-p50": [0.05] * 20}
    assert judge.judge([ERRORS, P99, p50], good, good).as_dict()["state"] == judge.PASS
    # The p50 worse (weight 1 of 4): 75 -> marginal, the analysis goes on.
    slower = {**good, "latency-p50": [0.09] * 20}
    marginal = judge.judge([ERRORS, P99, p50], slower, good)
    assert (marginal.state, marginal.score) == (judge.MARGINAL, 75.0)
    assert marginal.evidence == [f"latency-p50: {marginal.judgements[2].reason}"]
    # Once the metrics still open could not lift the score to marginal, it fails at once.
    early = judge.judge([ERRORS, P99, p50], {**good, "error-ratio": [(40, 1000)] * 5, "latency-p50": [0.05] * 3},
                        good)
    assert early.state == judge.FAIL and [j.outcome for j in early.judgements] == ["fail", "pass", "extend"]
    # The errors worse (weight 2 of 4): 50 -> fail, naming the metric and its statistics.
    failing = judge.judge([ERRORS, P99, p50], {**good, "error-ratio": [(40, 1000)] * 5}, good)
    assert (failing.state, failing.score) == (judge.FAIL, 50.0)
    recorded = failing.as_dict()["metrics"][0]
    assert recorded["outcome"] == "fail" and recorded["test"] == "fisher-exact"
    assert recorded["canary"] == {"bad": 200, "total": 5000} and recorded["baseline"] == {"bad": 5, "total": 5000}


def test_a_metric_is_refused_when_its_definition_is_wrong():
    with pytest.raises(ValueError, match="kind must be ratio, quantile or value"):
        judge.Metric("x", "histogram", tolerance=0)
    with pytest.raises(ValueError, match="a quantile needs its histogram's bounds"):
        judge.Metric("x", "quantile", tolerance=0)
    with pytest.raises(ValueError, match="worse must be higher or lower"):
        judge.Metric("x", "value", tolerance=0, worse="up")
