"""The canary judge: the canary compared with a baseline of the current version at the same size, metric by metric,
by a one-sided nonparametric test combined with an effect-size tolerance (pure functions, no I/O).

Three kinds of metric:
  ratio     per-window (bad, total) counts - the error ratio: the canary's and the baseline's totals compared by
            Fisher's exact test (one-sided: the canary worse), and the difference of the two ratios against an
            absolute tolerance (0.005: half a percentage point)
  quantile  per-window histogram bucket counts (non-cumulative, +Inf last) - a latency quantile q: each side's
            q-quantile of its pooled histogram (histogram_quantile), and the share of requests beyond a bucket bound
            near q (that of both sides' pooled 1 - 2(1 - q) quantile) compared by Fisher's exact test. A tail
            regression makes the canary's share beyond that bound grow, which a per-window quantile of a few requests
            hides. The effect is the difference of the two quantiles, in seconds, against the tolerance; "no worse"
            is the share's upper confidence bound within (1 - q) of the baseline's share
  value     one value per window - any query the inventory adds: the canary's and the baseline's windows compared by
            the Mann-Whitney U test (one-sided, ties corrected, normal approximation with continuity correction),
            and the difference of their medians against a tolerance in the metric's unit

Each look decides each metric, or not yet:
  fail    the test finds the canary worse (p below alpha) AND the effect exceeds the tolerance: a difference too
          small to matter never fails a release, and a large one the samples cannot yet tell from noise does not
          either
  pass    the samples show the canary no worse than the tolerance (non-inferiority at the same alpha: the upper
          confidence bound of the ratios' difference below the tolerance - Newcombe's score interval; for values,
          the Mann-Whitney test that the canary is below the baseline plus the tolerance)
  extend  neither yet, or below the metric's minimum sample: the analysis goes on - it never aborts for want of data
The verdict is a weighted score, 0-100, of the metrics that passed: "fail" as soon as the metrics still open could
no longer lift it to `marginal_score`; once every metric is decided, pass at or above `pass_score`, marginal at or
above `marginal_score`, fail below; "extend" otherwise.

The engine evaluates the judge at every interval of the bake; alpha is the error rate of one look, and the benchmark
(bench/judge_bench.py) measures the rates of the whole analysis - every look - on A/A and A/B trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist, median
from typing import Any

PASS, MARGINAL, FAIL, EXTEND = "pass", "marginal", "fail", "extend"


@dataclass
class Metric:
    """One metric the judge compares; `worse` is the direction in which the canary is worse (higher, lower)."""

    name: str
    kind: str  # ratio | quantile | value
    tolerance: float
    weight: float = 1.0
    min_sample: int = 0  # ratio, quantile: requests per side; value: windows per side
    worse: str = "higher"
    quantile: float = 0.99  # quantile: which one
    bounds: tuple[float, ...] = ()  # quantile: the histogram's bucket bounds (le), +Inf excluded

    def __post_init__(self):
        if self.kind not in ("ratio", "quantile", "value"):
            raise ValueError(f"metric {self.name}: kind must be ratio, quantile or value, not {self.kind!r}")
        if self.kind == "quantile" and (not self.bounds or not 0 < self.quantile < 1):
            raise ValueError(f"metric {self.name}: a quantile needs its histogram's bounds and 0 < quantile < 1")
        if self.worse not in ("higher", "lower"):
            raise ValueError(f"metric {self.name}: worse must be higher or lower, not {self.worse!r}")
        if self.tolerance < 0 or self.weight <= 0:
            raise ValueError(f"metric {self.name}: tolerance must be >= 0 and weight > 0")


@dataclass
class Judgement:
    metric: str
    outcome: str  # pass | fail | extend
    statistic: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "outcome": self.outcome, "reason": self.reason, **self.statistic}


@dataclass
class JudgeVerdict:
    state: str  # pass | marginal | fail | extend
    score: float | None
    judgements: list[Judgement]

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "score": self.score, "metrics": [j.as_dict() for j in self.judgements]}

    @property
    def evidence(self) -> list[str]:
        return [f"{j.metric}: {j.reason}" for j in self.judgements if j.outcome == FAIL]


def normal_sf(z: float) -> float:
    """P(Z > z) of the standard normal distribution (erfc keeps the far tail's precision, which 1 - cdf loses)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mann_whitney_greater(x: list[float], y: list[float]) -> tuple[float, float]:
    """(U of x, one-sided p that x tends to be greater than y): ranks averaged over ties, the variance corrected for
    them, a normal approximation with continuity correction. Both samples must be non-empty."""
    n1, n2 = len(x), len(y)
    pooled = sorted([(v, 0) for v in x] + [(v, 1) for v in y])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:  # every value equal: nothing tells the samples apart
        return u1, 1.0
    z = (u1 - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return u1, normal_sf(z)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(bad_a: int, total_a: int, bad_b: int, total_b: int) -> float:
    """One-sided p of Fisher's exact test that sample a's ratio bad/total is greater than sample b's: the
    probability, given both margins, of a's bad count being at least what it is."""
    bad, total = bad_a + bad_b, total_a + total_b
    if total_a == 0 or total_b == 0 or bad == 0:
        return 1.0
    denominator = _log_choose(total, total_a)
    top = min(bad, total_a)
    terms = [_log_choose(bad, k) + _log_choose(total - bad, total_a - k) - denominator
             for k in range(bad_a, top + 1) if total_a - k <= total - bad]
    if not terms:
        return 0.0
    peak = max(terms)
    return min(1.0, math.exp(peak) * sum(math.exp(t - peak) for t in terms))


def wilson(bad: int, total: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of the proportion bad/total (unclamped: callers add it to a difference)."""
    p = bad / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return centre - half, centre + half


def _newcombe_half_width(bad_c: int, total_c: int, bad_b: int, total_b: int, alpha: float, worse: str) -> float:
    """How far above the observed difference (canary worse) the one-sided upper confidence bound of the difference
    of two proportions lies: Newcombe's hybrid score interval (method 10), from each side's Wilson interval."""
    z = NormalDist().inv_cdf(1 - alpha)
    p_c, p_b = bad_c / total_c, bad_b / total_b
    (low_c, up_c), (low_b, up_b) = wilson(bad_c, total_c, z), wilson(bad_b, total_b, z)
    if worse == "higher":
        return math.sqrt((up_c - p_c) ** 2 + (p_b - low_b) ** 2)
    return math.sqrt((p_c - low_c) ** 2 + (up_b - p_b) ** 2)


def judge_metric(metric: Metric, canary: list, baseline: list, alpha: float) -> Judgement:
    """One metric: `canary` and `baseline` are lists of (bad, total) windows (ratio) or of values (value)."""
    if metric.kind == "quantile":
        return _judge_quantile(metric, canary, baseline, alpha)
    if metric.kind == "ratio":
        bad_c, total_c = sum(b for b, _ in canary), sum(t for _, t in canary)
        bad_b, total_b = sum(b for b, _ in baseline), sum(t for _, t in baseline)
        stats = {"kind": "ratio", "canary": {"bad": bad_c, "total": total_c}, "baseline": {"bad": bad_b,
                                                                                             "total": total_b}}
        if min(total_c, total_b) < max(metric.min_sample, 1):
            return Judgement(metric.name, EXTEND, stats, f"{min(total_c, total_b)} requests on the smaller side, "
                                                         f"{metric.min_sample} needed")
        ratio_c, ratio_b = bad_c / total_c, bad_b / total_b
        if metric.worse == "higher":
            effect, p = ratio_c - ratio_b, fisher_greater(bad_c, total_c, bad_b, total_b)
        else:
            effect, p = ratio_b - ratio_c, fisher_greater(bad_b, total_b, bad_c, total_c)
        upper = effect + _newcombe_half_width(bad_c, total_c, bad_b, total_b, alpha, metric.worse)
        stats |= {"test": "fisher-exact", "p": round(p, 6), "effect": round(effect, 6),
                  "effect_upper_bound": round(upper, 6), "canary_ratio": round(ratio_c, 6),
                  "baseline_ratio": round(ratio_b, 6)}
        no_worse = upper < metric.tolerance
    else:
        canary = [v for v in canary if v is not None and not math.isnan(v)]
        baseline = [v for v in baseline if v is not None and not math.isnan(v)]
        stats = {"kind": "value", "canary": {"windows": len(canary)}, "baseline": {"windows": len(baseline)}}
        if min(len(canary), len(baseline)) < max(metric.min_sample, 1):
            return Judgement(metric.name, EXTEND, stats, f"{min(len(canary), len(baseline))} windows on the smaller "
                                                         f"side, {metric.min_sample} needed")
        med_c, med_b = median(canary), median(baseline)
        tol = metric.tolerance
        if metric.worse == "higher":
            (u, p), effect = mann_whitney_greater(canary, baseline), med_c - med_b
            p_no_worse = mann_whitney_greater(baseline, [v - tol for v in canary])[1]
        else:
            (u, p), effect = mann_whitney_greater(baseline, canary), med_b - med_c
            p_no_worse = mann_whitney_greater([v + tol for v in canary], baseline)[1]
        stats |= {"test": "mann-whitney-u", "u": u, "p": round(p, 6), "effect": round(effect, 6),
                  "p_no_worse": round(p_no_worse, 6), "canary_median": med_c, "baseline_median": med_b}
        no_worse = p_no_worse < alpha
    stats |= {"alpha": alpha, "tolerance": metric.tolerance}
    if p < alpha and effect > metric.tolerance:
        return Judgement(metric.name, FAIL, stats, f"the canary is worse by {effect:.4g} (tolerance "
                                                   f"{metric.tolerance:g}), p={p:.2g} < {alpha:g}")
    if no_worse:
        return Judgement(metric.name, PASS, stats, f"no worse than the tolerance {metric.tolerance:g} "
                                                   f"(effect {effect:.4g}, p={p:.2g})")
    return Judgement(metric.name, EXTEND, stats, f"not decided yet: effect {effect:.4g}, p={p:.2g}")


def histogram_quantile(q: float, bounds: tuple[float, ...], counts: list[int]) -> float:
    """Prometheus' histogram_quantile on (non-cumulative) bucket counts, the last one +Inf: linear within the bucket
    the rank falls in; the highest finite bound when it falls in +Inf; NaN without observations."""
    total = sum(counts)
    if total == 0:
        return math.nan
    rank, seen = q * total, 0
    for i, count in enumerate(counts):
        if count and seen + count >= rank:
            if i == len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i else 0.0
            return lower + (bounds[i] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


def _judge_quantile(metric: Metric, canary: list, baseline: list, alpha: float) -> Judgement:
    """canary and baseline: per-window bucket counts, non-cumulative, one more than bounds (+Inf last)."""
    size = len(metric.bounds) + 1
    pooled_c = [sum(w[i] for w in canary) for i in range(size)]
    pooled_b = [sum(w[i] for w in baseline) for i in range(size)]
    total_c, total_b = sum(pooled_c), sum(pooled_b)
    stats: dict[str, Any] = {"kind": "quantile", "quantile": metric.quantile, "canary": {"total": total_c},
                             "baseline": {"total": total_b}}
    if min(total_c, total_b) < max(metric.min_sample, 1):
        return Judgement(metric.name, EXTEND, stats, f"{min(total_c, total_b)} requests on the smaller side, "
                                                     f"{metric.min_sample} needed")
    q_c = histogram_quantile(metric.quantile, metric.bounds, pooled_c)
    q_b = histogram_quantile(metric.quantile, metric.bounds, pooled_b)
    # The tail both sides are compared beyond: the upper bound of the bucket holding the pooled 1 - 2(1 - q) quantile
    # (the 98th percentile for p99). Chosen from both sides alike: a bound taken from the baseline's own sample would
    # sit where that sample happens to be fast, and find a same-version canary worse (a false abort, measured). Set
    # below q, so that a regression of the slowest requests shows beyond it rather than moving it.
    pooled = [c + b for c, b in zip(pooled_c, pooled_b, strict=True)]
    level = histogram_quantile(1 - 2 * (1 - metric.quantile), metric.bounds, pooled)
    cut = next((i for i, bound in enumerate(metric.bounds) if bound >= level), len(metric.bounds) - 1)
    beyond_c, beyond_b = sum(pooled_c[cut + 1:]), sum(pooled_b[cut + 1:])
    p = fisher_greater(beyond_c, total_c, beyond_b, total_b)
    share = beyond_c / total_c - beyond_b / total_b
    upper = share + _newcombe_half_width(beyond_c, total_c, beyond_b, total_b, alpha, "higher")
    effect = q_c - q_b
    stats |= {"test": "fisher-exact-tail", "bound": metric.bounds[cut], "p": round(p, 6),
              "canary": {"total": total_c, "beyond": beyond_c}, "baseline": {"total": total_b, "beyond": beyond_b},
              "canary_quantile": round(q_c, 6), "baseline_quantile": round(q_b, 6), "effect": round(effect, 6),
              "share_upper_bound": round(upper, 6), "alpha": alpha, "tolerance": metric.tolerance}
    if p < alpha and effect > metric.tolerance:
        return Judgement(metric.name, FAIL, stats, f"p{round(100 * metric.quantile)} {q_c:.4g}s against "
                                                   f"{q_b:.4g}s: worse by {effect:.4g}s (tolerance "
                                                   f"{metric.tolerance:g}s), {beyond_c} of {total_c} requests beyond "
                                                   f"{metric.bounds[cut]:g}s against {beyond_b} of {total_b}, "
                                                   f"p={p:.2g} < {alpha:g}")
    if upper < 1 - metric.quantile:
        return Judgement(metric.name, PASS, stats, f"no worse than the tolerance {metric.tolerance:g}s "
                                                   f"(p{round(100 * metric.quantile)} {q_c:.4g}s against {q_b:.4g}s)")
    return Judgement(metric.name, EXTEND, stats, f"not decided yet: p{round(100 * metric.quantile)} {q_c:.4g}s "
                                                 f"against {q_b:.4g}s, p={p:.2g}")


def judge(metrics: list[Metric], canary: dict[str, list], baseline: dict[str, list], alpha: float = 0.01,
          pass_score: float = 95.0, marginal_score: float = 75.0) -> JudgeVerdict:
    """Every metric, then the weighted score of those judged: the verdict of one look."""
    judgements = [judge_metric(m, canary.get(m.name) or [], baseline.get(m.name) or [], alpha) for m in metrics]
    weights = {m.name: m.weight for m in metrics}
    total = sum(weights.values())
    passed = sum(weights[j.metric] for j in judgements if j.outcome == PASS)
    open_ = sum(weights[j.metric] for j in judgements if j.outcome == EXTEND)
    if total and 100 * (passed + open_) / total < marginal_score:  # what is still open can no longer save it
        return JudgeVerdict(FAIL, round(100 * passed / total, 1), judgements)
    if open_:
        return JudgeVerdict(EXTEND, None, judgements)
    score = round(100 * passed / total, 1) if total else 100.0
    state = PASS if score >= pass_score else MARGINAL if score >= marginal_score else FAIL
    return JudgeVerdict(state, score, judgements)
