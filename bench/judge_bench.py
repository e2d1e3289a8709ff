#!/usr/bin/env python3
"""Canary judge benchmark: how often it aborts a healthy canary, how often it catches a bad one, and how soon -
beside the threshold gates on the very same trials, in the same run.

Each trial is a canary and its baseline (the current version at the same size), each receiving `rate` requests/s
(Poisson), seen in windows of WINDOW seconds as Prometheus sees them: per window a count of requests and of 5xx
answers, and the request durations in the app's own histogram buckets (quantiles are histogram_quantile's, linear
within a bucket).

  A/A           canary identical to baseline: error ratio 0.2 %, latency lognormal (median 8 ms, p99 35 ms: the
                rehearsal's measured figures)
  A/B errors    the canary's error ratio +1 percentage point (1.2 %)
  A/B latency   the canary's slowest 2 % of requests 50 ms slower: p99 +50 ms, the median unchanged

The judge (plugins/module_utils/colors_release_judge.py: the error ratio by Fisher's exact test, p99 by the share
of requests beyond the baseline's p99 bucket, each with its tolerance) looks at everything so far at every window
(background analysis): "fail" aborts, "pass" promotes, and after MAX_BAKE it is undecided (inconclusive). The
threshold gates of app_release's defaults (error ratio over 2 minutes > 0.02, p95 over 2 minutes > 0.5 s, "no data"
when those 2 minutes hold no request) are looked at every window from the second minute, and promote at the end of
a 5-minute bake. Rates are given with their 95 % Wilson intervals.

Phase one of #21's benchmark: the series are drawn here, in-process. (Next: the same trials written as OpenMetrics,
loaded with `promtool tsdb create-blocks-from-openmetrics` and read back through the judge's PromQL, and real
canaries on the worker node.)

Usage: bench/judge_bench.py [--trials 400] [--seed 1]
"""

from __future__ import annotations

import argparse
import bisect
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "collections"))
from ansible_collections.colors.deploy.plugins.module_utils import colors_release_judge as judge

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)  # app/colors_app/observability.py
WINDOW = 10  # seconds between two looks: the judge's and the thresholds'
MAX_BAKE = 1800  # the judge's longest analysis; undecided then: inconclusive
THRESHOLD_BAKE, RATE_WINDOW = 300, 120  # the threshold gates: a 5-minute bake, rate() over 2 minutes
RATES = (0.2, 2.0, 20.0)
BASE_ERRORS, MEDIAN, P99 = 0.002, 0.008, 0.035
SIGMA = math.log(P99 / MEDIAN) / 2.3263  # lognormal: p99 = median * exp(2.326 sigma)
TAIL = MEDIAN * math.exp(2.0537 * SIGMA)  # the baseline's p98: requests slower than it are the slowest 2 %
METRICS = [judge.Metric("error-ratio", "ratio", tolerance=0.005, weight=2, min_sample=200),
           judge.Metric("latency-p99", "quantile", tolerance=0.02, weight=1, min_sample=200, quantile=0.99,
                        bounds=BUCKETS)]
ALPHA = 0.001
SCENARIOS = {"A/A": {}, "A/B errors +1 pp": {"errors": 0.01}, "A/B p99 +50 ms": {"tail": 0.05}}


def _latency_cdf(t: float, tail: float) -> float:
    """P(duration <= t): lognormal, its slowest 2 % `tail` seconds slower."""
    def lognormal(x: float) -> float:
        return 0.0 if x <= 0 else 0.5 * math.erfc(-(math.log(x) - math.log(MEDIAN)) / (SIGMA * math.sqrt(2)))

    if not tail:
        return lognormal(t)
    return lognormal(min(t, TAIL)) + max(0.0, lognormal(t - tail) - lognormal(TAIL))


def bucket_cdf(tail: float) -> list[float]:
    """Cumulative probability of each histogram bucket (the last, +Inf, is 1)."""
    return [_latency_cdf(b, tail) for b in BUCKETS]


def window(rng: random.Random, rate: float, errors: float, cdf: list[float]) -> tuple[int, int, list[int]]:
    """(5xx, requests, bucket counts) of one window."""
    n = _poisson(rng, rate * WINDOW)
    bad, counts = 0, [0] * (len(BUCKETS) + 1)
    for _ in range(n):
        bad += rng.random() < errors
        counts[bisect.bisect_left(cdf, rng.random())] += 1
    return bad, n, counts


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    k, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def trial(rng: random.Random, rate: float, scenario: dict, cdfs: dict) -> dict:
    """One canary beside its baseline, looked at every WINDOW seconds: the judge's verdict and when, and the
    threshold gates' (abort, or promote at the end of their bake)."""
    canary_errors = BASE_ERRORS + scenario.get("errors", 0)
    canary_cdf = cdfs[scenario.get("tail", 0)]
    series: dict[str, list] = {"canary": [], "baseline": []}
    out = {"judge": ("inconclusive", MAX_BAKE), "threshold": ("promoted", THRESHOLD_BAKE)}
    judged = thresholds_done = False
    for look in range(1, MAX_BAKE // WINDOW + 1):
        seconds = look * WINDOW
        series["canary"].append(window(rng, rate, canary_errors, canary_cdf))
        series["baseline"].append(window(rng, rate, BASE_ERRORS, cdfs[0]))
        if not judged:
            samples = {side: {"error-ratio": [(b, n) for b, n, _ in s],
                              "latency-p99": [c for *_, c in s]}
                       for side, s in series.items()}
            state = judge.judge(METRICS, samples["canary"], samples["baseline"], alpha=ALPHA).state
            if state in (judge.PASS, judge.FAIL):
                out["judge"], judged = ("promoted" if state == judge.PASS else "aborted", seconds), True
        if not thresholds_done and seconds >= RATE_WINDOW:
            recent = series["canary"][-(RATE_WINDOW // WINDOW):]
            bad, total = sum(w[0] for w in recent), sum(w[1] for w in recent)
            counts = [sum(w[2][i] for w in recent) for i in range(len(BUCKETS) + 1)]
            if total == 0 or bad / total > 0.02 or judge.histogram_quantile(0.95, BUCKETS, counts) > 0.5:
                out["threshold"], thresholds_done = ("aborted", seconds), True
            elif seconds >= THRESHOLD_BAKE:
                thresholds_done = True
        if judged and thresholds_done:
            break
    return out


def rate_text(k: int, n: int) -> str:
    low, high = judge.wilson(k, n, 1.96)  # 95 %
    low, high = max(0.0, low), min(1.0, high)
    return f"{100 * k / n:5.1f} % [{100 * low:4.1f}, {100 * high:5.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=400, help="trials per scenario and rate (>= 200)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 # nosec B311 - simulated traffic, not secrets
    cdfs = {0: bucket_cdf(0), 0.05: bucket_cdf(0.05)}
    start = time.monotonic()
    print(f"{args.trials} trials per row. Judge: a look every {WINDOW} s for up to {MAX_BAKE} s, alpha {ALPHA} per "
          f"look. Thresholds: a look every {WINDOW} s from {RATE_WINDOW} s, promoted at {THRESHOLD_BAKE} s.")
    print("aborted: share of trials aborted [95 % Wilson interval]; s: median seconds to the verdict")
    print(f"{'scenario':17} {'req/s':>5} | {'judge aborted':>22} {'promoted':>8} {'undecided':>9} {'s':>5} | "
          f"{'thresholds aborted':>22} {'s':>5}")
    for name, scenario in SCENARIOS.items():
        for rate in RATES:
            results = [trial(rng, rate, scenario, cdfs) for _ in range(args.trials)]
            row = [f"{name:17} {rate:5g} |"]
            for gate in ("judge", "threshold"):
                verdicts = [r[gate] for r in results]
                aborted = sum(v == "aborted" for v, _ in verdicts)
                row.append(f"{rate_text(aborted, args.trials):>22}")
                if gate == "judge":
                    row.append(f"{sum(v == 'promoted' for v, _ in verdicts):>8} "
                               f"{sum(v == 'inconclusive' for v, _ in verdicts):>9}")
                decided = [s for v, s in verdicts if v != "inconclusive"]
                row.append(f"{statistics.median(decided) if decided else '-':>5}" + (" |" if gate == "judge" else ""))
            print(" ".join(row))
    print(f"{time.monotonic() - start:.0f} s of simulation")
    return 0


if __name__ == "__main__":
    sys.exit(main())
