"""The canary analysis of the release engine: the canary and a baseline of the current version at the same size, read
from Prometheus at every look of the bake and compared by the canary judge (colors_release_judge.py), while the
threshold gates and the rollouts of both are looked at too (background analysis: the first hard failure aborts at
once, not at the end of the step).

A look reads, for each side's pods (`$pods`: their namespace and ReplicaSet's pod-template-hash), each metric's
cumulative counters and keeps what changed since the look before: one window per look, as the judge wants them.
  ratio     `bad` and `total` (counters; no `bad` series with a `total` is 0 bad)
  quantile  `buckets`: `sum by (le) (<histogram>_bucket{$pods})`; the bounds are the answer's `le` labels
  value     `query`: the value at the look (a gauge, or a rate the query computes)
A counter that went down (a pod restarted) counts from zero again, as increase() does.

The step ends:
  at once, failed   a rollout (canary or baseline) fails, the judge fails, or a threshold gate exceeds its maximum
                    over the judge's minimum sample (the `min_sample` of its first ratio metric) of canary requests
                    within the range the gate's query looks back over (its longest `[...]`; all of them without one)
  passed            the judge passes, the bake (`pause`) is over, every threshold gate has had data and none is above
                    its maximum
  at max_analysis   a threshold gate still above its maximum fails the step. Otherwise undecided (too few requests,
                    or marginal): inconclusive. The policy decides - abort (the canary is removed, as for a failure,
                    recorded as inconclusive) or promote (recorded as such). Too few samples never fail a canary before
                    then: the analysis goes on.
A threshold gate above its maximum over fewer requests is held, not obeyed: the ratio of a handful of requests is
noise (one 5xx among the 24 requests of 2 minutes at 0.2 requests/s is 4 %; the judge benchmark measured 8 % of
healthy canaries aborted at 0.2 requests/s when such a breach aborted at once). It must still hold at the end.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.colors.deploy.plugins.module_utils import colors_release_judge as judge
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_health import Verdict, prometheus_verdict
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_watch import (
    POD_SELECTOR,
    UNREACHABLE,
    Target,
    prometheus_query,
)

JUDGE_GATE, INCONCLUSIVE_GATE = "judge", "judge-inconclusive"
POLICIES = ("abort", "promote")
KIND_QUERIES = {"ratio": ("bad", "total"), "quantile": ("buckets",), "value": ("query",)}


def config_problem(config: dict | None) -> str | None:
    """What is wrong with the `judge` option, or None."""
    if not config:
        return None
    if config.get("inconclusive", "abort") not in POLICIES:
        return f"judge.inconclusive must be one of {', '.join(POLICIES)}, not {config.get('inconclusive')!r}"
    if not config.get("metrics"):
        return "judge needs at least one metric"
    for metric in config["metrics"]:
        kind = metric.get("kind")
        if kind not in KIND_QUERIES:
            return f"judge metric {metric.get('name')!r}: kind must be ratio, quantile or value, not {kind!r}"
        missing = {"name", "tolerance", *KIND_QUERIES[kind]} - {k for k, v in metric.items() if v is not None}
        if missing:
            return f"judge metric {metric.get('name')!r} ({kind}) lacks {', '.join(sorted(missing))}"
    if float(config.get("max_analysis", 0)) <= 0 or float(config.get("interval", 0)) <= 0:
        return "judge.interval and judge.max_analysis must be positive seconds"
    return None


@dataclass
class Side:
    """One side's last cumulative readings and its windows so far, per metric."""

    selector: str
    last: dict[str, Any] = field(default_factory=dict)
    frozen: bool = False  # read once over a range (history), not at the looks
    windows: dict[str, list] = field(default_factory=dict)


class Unreachable(Exception):
    """Prometheus did not answer this look."""


def _answered(answer: dict, query: str) -> dict:
    """The answer of a query, or Unreachable (Prometheus did not answer) or ValueError (it refused the query)."""
    if answer.get("errorType") == UNREACHABLE:
        raise Unreachable(answer.get("error"))
    if answer.get("status") != "success":
        raise ValueError(f"query {query!r} failed: {answer.get('error', answer)}")
    return answer


def _vector(target: Target, query: str) -> list[tuple[dict, float]]:
    answer = _answered(prometheus_query(target, query), query)
    out = []
    for sample in (answer.get("data") or {}).get("result") or []:
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value == value:  # NaN has no reading
            out.append((sample.get("metric") or {}, value))
    return out


def _matrix(target: Target, query: str, start: float, end: float, step: float) -> list[tuple[dict, dict]]:
    """(labels, {time: value}) of each series of a range query."""
    answer = _answered(prometheus_query(target, query, "/api/v1/query_range", start=f"{start:.3f}",
                                        end=f"{end:.3f}", step=f"{step:g}"), query)
    out = []
    for series in (answer.get("data") or {}).get("result") or []:
        points = {}
        for moment, raw in series.get("values") or []:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if value == value:
                points[round(float(moment), 3)] = value
        out.append((series.get("metric") or {}, points))
    return out


def _scalar(target: Target, query: str) -> float | None:
    vector = _vector(target, query)
    return sum(v for _, v in vector) if vector else None


def _grown(now: float, before: float) -> float:
    """What a counter added since the reading before; after a reset (it went down), all of its value."""
    return now - before if now >= before else now


class Analysis:
    """The metrics of the judge read for the canary and its baseline, look after look."""

    def __init__(self, target: Target, config: dict, canary_selector: str, baseline_selector: str):
        self.target, self.config = target, config
        self.sides = {"canary": Side(canary_selector), "baseline": Side(baseline_selector)}
        self.specs = config["metrics"]
        self.bounds: dict[str, tuple[float, ...]] = {}

    def _query(self, spec: dict, key: str, side: Side) -> str:
        return str(spec[key]).replace(POD_SELECTOR, side.selector)

    def history(self, name: str, end: float, seconds: float) -> None:
        """The side's windows of the `seconds` before `end` (Unix time), one per interval, read over a range (the
        serving colour of a blue-green release before its switch: its pods get no traffic after it, so the side is
        not read at the looks)."""
        side, step = self.sides[name], float(self.config.get("interval") or 10)
        side.frozen = True
        start = end - seconds
        for spec in self.specs:
            key, kind = spec["name"], spec["kind"]
            if kind == "value":
                series = _matrix(self.target, self._query(spec, "query", side), start, end, step)
                moments = sorted({t for _, points in series for t in points})
                side.windows[key] = [sum(points.get(t, 0.0) for _, points in series) for t in moments]
                continue
            if kind == "ratio":
                totals = _matrix(self.target, self._query(spec, "total", side), start, end, step)
                bads = _matrix(self.target, self._query(spec, "bad", side), start, end, step)
                moments = sorted({t for _, points in totals for t in points})
                readings = [(sum(p.get(t, 0.0) for _, p in bads), sum(p.get(t, 0.0) for _, p in totals))
                            for t in moments]
            else:
                by_le: dict[float, dict] = {}
                for labels, points in _matrix(self.target, self._query(spec, "buckets", side), start, end, step):
                    if "le" in labels:
                        merged = by_le.setdefault(float(labels["le"]), {})
                        for t, v in points.items():
                            merged[t] = merged.get(t, 0.0) + v
                bounds = sorted(by_le)
                if bounds:
                    self.bounds.setdefault(key, tuple(le for le in bounds if le != float("inf")))
                moments = sorted({t for points in by_le.values() for t in points})
                readings = [[by_le[le].get(t, 0.0) for le in bounds] for t in moments]
            side.windows[key] = [w for before, now in itertools.pairwise(readings)
                                 if (w := self._window(kind, now, before)) is not None]

    @staticmethod
    def _window(kind: str, reading: Any, previous: Any) -> Any:
        """What happened between two cumulative readings: (bad, total) of a ratio, the bucket counts of a quantile."""
        if kind == "ratio":
            return tuple(round(_grown(n, b)) for n, b in zip(reading, previous, strict=True))
        if len(previous) != len(reading):
            return None
        cumulative = [round(_grown(n, b)) for n, b in zip(reading, previous, strict=True)]
        return [max(0, c - (cumulative[i - 1] if i else 0)) for i, c in enumerate(cumulative)]

    def look(self) -> None:
        """Read every metric of both sides once and add a window where a reading before it exists."""
        for side in self.sides.values():
            if side.frozen:
                continue
            for spec in self.specs:
                name, kind = spec["name"], spec["kind"]
                if kind == "value":
                    value = _scalar(self.target, self._query(spec, "query", side))
                    if value is not None:
                        side.windows.setdefault(name, []).append(value)
                    continue
                if kind == "ratio":
                    total = _scalar(self.target, self._query(spec, "total", side))
                    if total is None:
                        continue
                    reading: Any = ((_scalar(self.target, self._query(spec, "bad", side)) or 0.0), total)
                else:
                    buckets = {}
                    for labels, value in _vector(self.target, self._query(spec, "buckets", side)):
                        if "le" in labels:
                            buckets[float(labels["le"])] = buckets.get(float(labels["le"]), 0.0) + value
                    if not buckets:
                        continue
                    reading = [buckets[le] for le in sorted(buckets)]
                    self.bounds.setdefault(name, tuple(le for le in sorted(buckets) if le != float("inf")))
                previous = side.last.get(name)
                window = None if previous is None else self._window(kind, reading, previous)
                side.last[name] = reading
                if window is not None:
                    side.windows.setdefault(name, []).append(window)

    def metrics(self) -> list[judge.Metric]:
        out = []
        for spec in self.specs:
            if spec["kind"] == "quantile" and spec["name"] not in self.bounds:
                # no histogram read yet: judged as a value with no windows (extend) until one is
                out.append(judge.Metric(spec["name"], "value", float(spec["tolerance"]),
                                        float(spec.get("weight") or 1), int(spec.get("min_sample") or 0)))
                continue
            out.append(judge.Metric(spec["name"], spec["kind"], float(spec["tolerance"]),
                                    float(spec.get("weight") or 1), int(spec.get("min_sample") or 0),
                                    spec.get("worse") or "higher", float(spec.get("quantile") or 0.99),
                                    self.bounds.get(spec["name"], ())))
        return out

    def served(self, seconds: float | None = None) -> bool:
        """Whether the canary has served the minimum sample of the first ratio metric (True without one) - within its
        last `seconds` (the range a threshold gate's query looks back over), or ever: enough requests for a gate's
        ratio over them to be more than noise."""
        spec = next((m for m in self.specs if m["kind"] == "ratio"), None)
        if spec is None:
            return True
        windows = self.sides["canary"].windows.get(spec["name"], [])
        if seconds is not None:
            windows = windows[-max(1, math.ceil(seconds / float(self.config.get("interval") or 10))):]
        return sum(total for _, total in windows) >= int(spec.get("min_sample") or 0)

    def series(self, most: int = 120) -> dict[str, dict[str, list]]:
        """Each metric's value per window on each side (a ratio's ratio, a quantile's quantile, a value), the last
        `most` windows: what the report page draws beside the decision."""
        out: dict[str, dict[str, list]] = {}
        for spec in self.specs:
            name, kind = spec["name"], spec["kind"]
            for side_name, side in self.sides.items():
                values = []
                for window in side.windows.get(name, [])[-most:]:
                    if kind == "ratio":
                        values.append(round(window[0] / window[1], 5) if window[1] else None)
                    elif kind == "quantile":
                        values.append(round(judge.histogram_quantile(float(spec.get("quantile") or 0.99),
                                                                     self.bounds[name], window), 5)
                                      if sum(window) and name in self.bounds else None)
                    else:
                        values.append(window)
                out.setdefault(name, {})[side_name] = values
        return out

    def verdict(self, looks: int | None = None) -> judge.JudgeVerdict:
        """The judge's verdict on every window so far, or on each side's first `looks` windows (a history replayed
        look by look: the judge benchmark)."""
        canary, baseline = ({name: windows[:looks] for name, windows in self.sides[side].windows.items()}
                            for side in ("canary", "baseline"))
        return judge.judge(self.metrics(), canary, baseline, alpha=float(self.config.get("alpha") or 0.001),
                           pass_score=float(self.config.get("pass_score") or 95),
                           marginal_score=float(self.config.get("marginal_score") or 75))


# Prometheus' duration units in seconds (also the release filters' duration_seconds).
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def range_seconds(query: str) -> float | None:
    """The longest range a query looks back over (`rate(x[2m])`: 120), or None when it has no range selector."""
    duration = r"(?:\d+(?:ms|[smhdwy]))+"  # 2m, 1h30m (a character class such as "[45].." is none)
    ranges = [sum(float(n) * UNITS[unit] for n, unit in re.findall(r"(\d+)(ms|[smhdwy])", selector))
              for selector in re.findall(rf"\[({duration})(?::(?:{duration})?)?\]", query)]
    return max(ranges) if ranges else None


def _above(verdict: Verdict) -> bool:
    """A failed gate's verdict is a value above its maximum (not a query Prometheus refused)."""
    return verdict.state == "failed" and "value" in (verdict.detail or {})


def threshold_look(target: Target, queries: list[dict], selector: str, seen: set[str]) -> Verdict | None:
    """Each threshold gate once: the failed verdict of the first above its maximum (or refused), else None (no data
    is not a failure yet; the names of the gates that had data are added to `seen`)."""
    for check in queries:
        query = str(check["query"]).replace(POD_SELECTOR, selector)
        answer = prometheus_query(target, query)
        if answer.get("errorType") == UNREACHABLE:
            raise Unreachable(answer.get("error"))
        verdict = prometheus_verdict(check["name"], query, answer, float(check["max"]))
        if verdict.state == "healthy" or _above(verdict):
            seen.add(check["name"])
        if verdict.state == "failed":
            return verdict
    return None


def analyse(analysis: Analysis, states: Callable[[], list[Verdict]], thresholds: list[dict],
            no_data_timeout: float, pause: float, clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep,
            report: Callable[[str], None] = lambda message: None) -> tuple[Verdict, dict[str, Any]]:
    """Look every `interval` seconds until the step is decided (see the module's docstring): (the step's verdict,
    the judge's record for the ledger and the job summary)."""
    config = analysis.config
    interval, longest = float(config.get("interval") or 10), float(config["max_analysis"])
    policy = config.get("inconclusive") or "abort"
    start, looks, seen = clock(), 0, set()
    unreachable_since: float | None = None
    canary_selector = analysis.sides["canary"].selector
    ranges = {f"prometheus:{check['name']}": range_seconds(str(check["query"])) for check in thresholds}
    decision = judge.JudgeVerdict(judge.EXTEND, None, [])

    def record(state: str) -> dict[str, Any]:
        return {**decision.as_dict(), "judge_state": decision.state, "state": state, "looks": looks,
                "seconds": round(clock() - start, 1), "interval": interval, "series": analysis.series()}

    while True:
        now = clock()
        for state in states():
            if state.state == "failed":
                return Verdict("failed", state.gate, state.evidence, state.detail), record("aborted")
        try:
            breached = threshold_look(analysis.target, thresholds, canary_selector, seen)
            analysis.look()
            if breached and (not _above(breached) or analysis.served(ranges.get(breached.gate))):
                return breached, record("aborted")
            unreachable_since = None
        except ValueError as exc:  # Prometheus refused a query (a PromQL error): the canary cannot be judged
            return Verdict("failed", JUDGE_GATE, [f"{exc}: the judge's metrics could not be read"]), record("aborted")
        except Unreachable as exc:
            unreachable_since = now if unreachable_since is None else unreachable_since
            if now - unreachable_since >= no_data_timeout:
                return Verdict("failed", "prometheus-unreachable", [
                    f"{exc}, still after {now - unreachable_since:.0f}s: the canary's metrics could not be read, "
                    "so it is not promoted"], {"inconclusive": True}), record("aborted")
        else:
            looks += 1
            decision = analysis.verdict()
            if decision.state == judge.FAIL:
                return Verdict("failed", JUDGE_GATE, decision.evidence or [
                    f"score {decision.score} below {config.get('marginal_score') or 75}"]), record("failed")
            waiting = [c["name"] for c in thresholds if c["name"] not in seen]
            elapsed = clock() - start
            if decision.state == judge.PASS and elapsed >= pause and not waiting and not breached:
                report(f"judge: pass (score {decision.score}) after {looks} looks, {elapsed:.0f}s")
                return Verdict("healthy"), record("passed")
            if waiting and elapsed >= no_data_timeout:
                return Verdict("failed", f"prometheus:{waiting[0]}", [
                    f"threshold gate {waiting[0]} returned no data for {elapsed:.0f}s (a gate without data never "
                    "passes)"]), record("aborted")
            if elapsed >= longest and breached:  # held through the analysis: no longer noise of a few requests
                return breached, record("aborted")
            if elapsed >= longest:
                open_ = [f"{j.metric}: {j.reason}" for j in decision.judgements if j.outcome != judge.PASS]
                evidence = [f"undecided after {elapsed:.0f}s ({decision.state}"
                            + (f", score {decision.score}" if decision.score is not None else "") + ")", *open_]
                report(f"judge: inconclusive after {looks} looks ({'; '.join(evidence)}); policy {policy}")
                if policy == "promote":
                    return Verdict("healthy", detail={"inconclusive": True}), record("inconclusive")
                return Verdict("failed", INCONCLUSIVE_GATE, evidence, {"inconclusive": True}), record("inconclusive")
            report(f"judge: {decision.state} after {looks} looks ({elapsed:.0f}s): "
                   + "; ".join(f"{j.metric} {j.outcome}" for j in decision.judgements))
        sleep(interval)


def baseline_of(live: dict, replicas: int, track_label: str) -> dict:
    """The baseline Deployment: the live Deployment's template at `replicas`, <name>-baseline, its own selector
    (the track label), its pods still selected by the Service - so it receives its share of the traffic."""
    name = live["metadata"]["name"]
    spec = copy.deepcopy(live["spec"])
    spec["replicas"] = replicas
    spec["selector"] = copy.deepcopy(spec["selector"])
    spec["selector"].setdefault("matchLabels", {})[track_label] = "baseline"
    spec["template"].setdefault("metadata", {}).setdefault("labels", {})[track_label] = "baseline"
    spec.pop("paused", None)
    labels = {**(live["metadata"].get("labels") or {}), track_label: "baseline"}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": f"{name}-baseline", "namespace": live["metadata"].get("namespace"),
                         "labels": labels}, "spec": spec}
