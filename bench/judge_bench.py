#!/usr/bin/env python3
"""Canary judge benchmark: how often it aborts a healthy canary, how often it catches a bad one, and how soon -
beside the threshold gates on the very same trials, in the same run, both read from a real Prometheus.

Each trial is a canary and its baseline (the current version at the same size), each receiving `rate` requests/s
(Poisson) and a readiness probe every 10 s, scraped every INTERVAL seconds as the app's own counters show them:
colors_http_requests_total by route and status, and the colors_http_request_duration_seconds histogram in the app's
buckets.

  A/A           canary identical to baseline: error ratio 0.2 %, latency lognormal (median 8 ms, p99 35 ms: the
                rehearsal's measured figures)
  A/B errors    the canary's error ratio +1 percentage point (1.2 %)
  A/B latency   the canary's slowest 2 % of requests 50 ms slower: p99 +50 ms, the median unchanged

How a trial is judged - the engine's own code on the way:
  1. Every trial's series are written as OpenMetrics (one file, each trial's pods told apart by their
     pod_template_hash) and loaded with `promtool tsdb create-blocks-from openmetrics` into a TSDB that a
     Prometheus of the platform's version then serves.
  2. The judge's metrics are read back with the PromQL of app_release's defaults (`app_release_judge`: the
     readiness probes and scrapes left out by their route), through the engine's Analysis.history (the range read a
     blue-green release makes of the colour serving before its switch), for the canary and the baseline.
     The windows read back must equal those written, trial by trial: the run fails otherwise.
  3. judge: the judge alone (colors_release_judge through Analysis.verdict) is replayed look by look on every trial:
     the first "fail" aborts, "pass" promotes; undecided at max_analysis: inconclusive.
  4. engine: the first --engine-trials of each row run through the release engine's analysis loop itself
     (colors_release_analysis.analyse), its clock the trial's and its instant queries asked of the trial's moment:
     at every look the threshold gates as hard limits, both sides' counters and the judge, with a canary step's bake.
  5. thresholds: the gates of app_release's defaults alone, as before the judge (`app_release_prometheus_gates`:
     error ratio over 2 minutes > 0.02, p95 over 2 minutes > 0.5 s), looked at by the engine's threshold_look at
     the trial's moment once a 5-minute bake is over (waiting for data up to the no-data timeout).
Rates are given with their 95 % Wilson intervals.

Usage: bench/judge_bench.py [--trials 400] [--engine-trials 100] [--seed 1] [--max-analysis SECONDS]
"""

from __future__ import annotations

import argparse
import bisect
import concurrent.futures
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TextIO

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "localplatform"))
from ansible_collections.colors.deploy.plugins.filter.release import duration_seconds  # noqa: E402
from ansible_collections.colors.deploy.plugins.module_utils import colors_release_judge as judge  # noqa: E402
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_analysis import (  # noqa: E402
    Analysis,
    analyse,
    threshold_look,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_watch import (  # noqa: E402
    Target,
    pod_selector,
    url_target,
)
from colors_platform.builds import binary  # noqa: E402 - the package lives beside the project, not on the path
from colors_platform.config import Config  # noqa: E402
from colors_platform.database import free_port  # noqa: E402

DEFAULTS = yaml.safe_load((REPO / "roles" / "app_release" / "defaults" / "main.yml").read_text())
JUDGE = DEFAULTS["app_release_judge"]
GATES = DEFAULTS["app_release_prometheus_gates"]
NO_DATA_TIMEOUT = DEFAULTS["app_release_prometheus_no_data_timeout"]
INTERVAL = int(JUDGE["interval"])  # seconds between two looks (the judge's and the thresholds'), and two scrapes
CANARY_PAUSE = duration_seconds(DEFAULTS["app_release_canary_pause"])  # a canary step's least bake
THRESHOLD_BAKE = 300  # the threshold gates alone: a canary step's 5-minute bake
PROBE_EVERY = 10  # the kubelet's readiness probe: a GET of /readyz, which the judge must leave out
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)  # app/colors_app/observability.py
RATES = (0.2, 2.0, 20.0)
BASE_ERRORS, MEDIAN, P99 = 0.002, 0.008, 0.035
SIGMA = math.log(P99 / MEDIAN) / 2.3263  # lognormal: p99 = median * exp(2.326 sigma)
TAIL = MEDIAN * math.exp(2.0537 * SIGMA)  # the baseline's p98: requests slower than it are the slowest 2 %
SCENARIOS = {"A/A": {}, "A/B errors +1 pp": {"errors": 0.01}, "A/B p99 +50 ms": {"tail": 0.05}}
NAMESPACE = "bench"


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


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    k, p, limit = 0, 1.0, math.exp(-mean)
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def window(rng: random.Random, rate: float, errors: float, cdf: list[float]) -> tuple[int, int, list[int]]:
    """(5xx, requests, bucket counts) of one window of INTERVAL seconds."""
    n = _poisson(rng, rate * INTERVAL)
    bad, counts = 0, [0] * (len(BUCKETS) + 1)
    for _ in range(n):
        bad += rng.random() < errors
        counts[bisect.bisect_left(cdf, rng.random())] += 1
    return bad, n, counts


def openmetrics(trials: list[dict], start: int, requests: TextIO, buckets: TextIO) -> None:
    """The scrapes of every trial's pods, cumulative from `start` (Unix seconds): the request counter's lines to
    `requests`, the histogram's bucket lines to `buckets` (OpenMetrics wants each family's lines together). A
    status's series appears at its first request, as prometheus_client's labelled children do."""
    les = [f"{b:g}" for b in BUCKETS] + ["+Inf"]
    for t in trials:
        for side in ("canary", "baseline"):
            pods = f'namespace="{NAMESPACE}",pod_template_hash="{t["hashes"][side]}",method="GET"'
            windows = t["windows"][side]
            moments = [start + INTERVAL * k for k in range(len(windows) + 1)]
            ok = bad = probes = 0
            served, failed, probed = [], [], []
            cumulative = [0] * len(les)
            hist: list[list[str]] = [[] for _ in les]
            for k, moment in enumerate(moments):
                if k:
                    b, n, counts = windows[k - 1]
                    ok, bad = ok + n - b, bad + b
                    probes += INTERVAL // PROBE_EVERY
                    running = 0
                    for i, c in enumerate(counts):
                        running += c
                        cumulative[i] += running
                served.append(f'colors_http_requests_total{{{pods},route="/",status="200"}} {ok} {moment}\n')
                if bad:
                    failed.append(f'colors_http_requests_total{{{pods},route="/",status="500"}} {bad} {moment}\n')
                probed.append(f'colors_http_requests_total{{{pods},route="/readyz",status="200"}} {probes} {moment}\n')
                for i, le in enumerate(les):
                    hist[i].append(f'colors_http_request_duration_seconds_bucket{{{pods},route="/",le="{le}"}} '
                                   f'{cumulative[i]} {moment}\n')
            requests.writelines(served + failed + probed)
            buckets.writelines(line for lines in hist for line in lines)


def serve(tsdb: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    """A Prometheus of the platform's version on the TSDB, ready: (its process, its URL)."""
    config = workdir / "prometheus.yml"
    config.write_text("global: {}\nscrape_configs: []\n")
    port = free_port()
    proc = subprocess.Popen([str(binary(Config.load(), "prometheus")), f"--config.file={config}",
                             f"--storage.tsdb.path={tsdb}", f"--web.listen-address=127.0.0.1:{port}",
                             "--storage.tsdb.retention.time=30d", "--log.level=warn"],
                            stdout=subprocess.DEVNULL, stderr=(workdir / "prometheus.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"judge_bench: Prometheus exited: {(workdir / 'prometheus.log').read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:  # noqa: S310 # nosec B310 - local http
                if answer.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("judge_bench: Prometheus was not ready within 120 s")


def read_back(url: str, t: dict, start: int, looks: int) -> Analysis:
    """The trial's windows as the engine reads them: app_release_judge's queries through Analysis.history."""
    analysis = Analysis(url_target(url), JUDGE, pod_selector(NAMESPACE, t["hashes"]["canary"]),
                        pod_selector(NAMESPACE, t["hashes"]["baseline"]))
    for side in ("canary", "baseline"):
        analysis.history(side, start + looks * INTERVAL, looks * INTERVAL)
    return analysis


def written(t: dict, side: str) -> dict[str, list]:
    return {"error-ratio": [(b, n) for b, n, _ in t["windows"][side]],
            "latency-p99": [c for *_, c in t["windows"][side]]}


def judged(analysis: Analysis, looks: int) -> tuple[str, int]:
    """The judge replayed look by look: (verdict, seconds to it)."""
    for look in range(1, looks + 1):
        state = analysis.verdict(look).state
        if state in (judge.PASS, judge.FAIL):
            return ("promoted" if state == judge.PASS else "aborted"), look * INTERVAL
    return "inconclusive", looks * INTERVAL


def at_the_moment(url: str, start: int, now: list[float]) -> Target:
    """The trial's Prometheus as a release asks it at the trial's moment: instant queries asked of `start + now[0]`
    (`time=`)."""
    direct = url_target(url)

    def get(path: str) -> tuple[int, bytes]:
        return direct.get(f"{path}&time={start + now[0]:.3f}" if path.startswith("/api/v1/query?") else path)

    return Target(f"{url} (the trial's moment)", get)


def thresholds(url: str, t: dict, start: int) -> tuple[str, int]:
    """The threshold gates alone, as before the judge: the engine's threshold_look once a 5-minute bake is over,
    again while a gate has no data, up to the no-data timeout. (verdict, seconds)"""
    now = [0.0]
    target, selector = at_the_moment(url, start, now), pod_selector(NAMESPACE, t["hashes"]["canary"])
    for seconds in range(THRESHOLD_BAKE, THRESHOLD_BAKE + NO_DATA_TIMEOUT + 1, INTERVAL):
        now[0], seen = seconds, set()
        if threshold_look(target, GATES, selector, seen):
            return "aborted", seconds
        if len(seen) == len(GATES):
            return "promoted", seconds
    return "aborted", THRESHOLD_BAKE + NO_DATA_TIMEOUT


def engine(url: str, t: dict, start: int, max_analysis: int) -> tuple[str, int]:
    """The judged step as a release runs it: colors_release_analysis.analyse itself, its clock the trial's, its
    instant queries asked of the trial's moment - at every look the threshold gates (hard limits), both sides'
    counters and the judge, until the step is decided. (verdict, seconds)"""
    now = [0.0]
    analysis = Analysis(at_the_moment(url, start, now), {**JUDGE, "max_analysis": max_analysis},
                        pod_selector(NAMESPACE, t["hashes"]["canary"]),
                        pod_selector(NAMESPACE, t["hashes"]["baseline"]))
    _, record = analyse(analysis, list, GATES, NO_DATA_TIMEOUT, CANARY_PAUSE, clock=lambda: now[0],
                        sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    state = {"passed": "promoted", "inconclusive": "inconclusive"}.get(record["state"], "aborted")
    return state, round(record["seconds"])


def rate_text(k: int, n: int) -> str:
    low, high = judge.wilson(k, n, 1.96)  # 95 %
    low, high = max(0.0, low), min(1.0, high)
    return f"{100 * k / n:5.1f} % [{100 * low:4.1f}, {100 * high:5.1f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=400,
                        help="trials per scenario and rate (>= 200; with 400, none aborted bounds the rate below 1 %%)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-analysis", type=int, default=int(JUDGE["max_analysis"]),
                        help="the judge's longest analysis in seconds (app_release_judge.max_analysis: %(default)s)")
    parser.add_argument("--engine-trials", type=int, default=100,
                        help="trials per row also run through the engine's own analysis loop (every look's instant "
                             "queries: slower)")
    args = parser.parse_args()
    looks = max(args.max_analysis, THRESHOLD_BAKE + NO_DATA_TIMEOUT) // INTERVAL
    rng = random.Random(args.seed)  # noqa: S311 # nosec B311 - simulated traffic, not secrets
    cdfs = {0: bucket_cdf(0), 0.05: bucket_cdf(0.05)}
    began = time.monotonic()
    rows: dict[tuple[str, float], list[dict]] = {}
    for s, (name, scenario) in enumerate(SCENARIOS.items()):
        for r, rate in enumerate(RATES):
            rows[name, rate] = [
                {"hashes": {"canary": f"s{s}r{r}t{i}c", "baseline": f"s{s}r{r}t{i}b"},
                 "windows": {"canary": [window(rng, rate, BASE_ERRORS + scenario.get("errors", 0),
                                               cdfs[scenario.get("tail", 0)]) for _ in range(looks)],
                             "baseline": [window(rng, rate, BASE_ERRORS, cdfs[0]) for _ in range(looks)]}}
                for i in range(args.trials)]
    drawn = time.monotonic()
    start = (int(time.time()) - 6 * 3600) // 3600 * 3600  # hours ago: blocks wholly before Prometheus' head
    trials = [t for row in rows.values() for t in row]
    workdir = Path(tempfile.mkdtemp(prefix="judge-bench-"))
    proc = None
    try:
        source, histograms = workdir / "trials.om", workdir / "buckets.om"
        with source.open("w") as requests, histograms.open("w") as buckets:
            requests.write("# TYPE colors_http_requests counter\n")
            buckets.write("# TYPE colors_http_request_duration_seconds histogram\n")
            openmetrics(trials, start, requests, buckets)
        with source.open("a") as out, histograms.open() as buckets:
            shutil.copyfileobj(buckets, out)
            out.write("# EOF\n")
        histograms.unlink()
        size = source.stat().st_size
        loaded = subprocess.run([str(binary(Config.load(), "promtool")), "tsdb", "create-blocks-from",
                                 "openmetrics", str(source), str(workdir / "tsdb")],
                                capture_output=True, text=True, check=False)
        if loaded.returncode:
            raise SystemExit(f"judge_bench: promtool failed: {loaded.stderr[-2000:] or loaded.stdout[-2000:]}")
        source.unlink()
        blocks = time.monotonic()
        proc, url = serve(workdir / "tsdb", workdir)
        results: dict[tuple[str, float], list[dict]] = {}
        mismatched = []
        for key, row in rows.items():
            for t in row:
                analysis = read_back(url, t, start, looks)
                for side in ("canary", "baseline"):
                    if analysis.sides[side].windows != written(t, side):
                        mismatched.append(t["hashes"][side])
                results.setdefault(key, []).append({"judge": judged(analysis, args.max_analysis // INTERVAL),
                                                    "threshold": thresholds(url, t, start)})
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                for verdict, entry in zip(pool.map(lambda t: engine(url, t, start, args.max_analysis),
                                                   row[:args.engine_trials]), results[key], strict=False):
                    entry["engine"] = verdict
        judged_at = time.monotonic()
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.trials} trials per row, {len(trials)} in all, {looks} windows of {INTERVAL} s per side: "
          f"{size / 1e6:.0f} MB of OpenMetrics, loaded by promtool, read back through a Prometheus with "
          "app_release_judge's and app_release_prometheus_gates' PromQL.")
    engines = min(args.engine_trials, args.trials)
    print(f"judge: the judge alone on every trial, replayed look by look (a look every {INTERVAL} s for up to "
          f"{args.max_analysis} s, alpha {JUDGE['alpha']} per look). engine: the first {engines} trials of each row "
          f"through the release engine's analysis loop (colors_release_analysis.analyse): the judge with the threshold "
          f"gates as hard limits at every look, a canary step's bake of {CANARY_PAUSE:g} s. thresholds: the gates "
          f"alone, as before the judge - once after a {THRESHOLD_BAKE} s bake, waiting up to {NO_DATA_TIMEOUT} s for "
          "data.")
    print("aborted: share of trials aborted [95 % Wilson interval]; undecided: inconclusive at the end (the policy "
          "decides); s: median seconds to the verdict")
    print(f"{'scenario':17} {'req/s':>5} | {'judge aborted':>22} {'promoted':>8} {'undecided':>9} {'s':>5} | "
          f"{'engine aborted':>22} {'undecided':>9} {'s':>5} | {'thresholds aborted':>22} {'s':>5}")
    for (name, rate), verdicts in results.items():
        row = [f"{name:17} {rate:5g} |"]
        for gate in ("judge", "engine", "threshold"):
            outcomes = [v[gate] for v in verdicts if gate in v]
            if not outcomes:  # --engine-trials 0
                row.append(f"{'-':>22} {'-':>9} {'-':>5} |")
                continue
            aborted = sum(v == "aborted" for v, _ in outcomes)
            row.append(f"{rate_text(aborted, len(outcomes)):>22}")
            if gate == "judge":
                row.append(f"{sum(v == 'promoted' for v, _ in outcomes):>8}")
            if gate != "threshold":
                row.append(f"{sum(v == 'inconclusive' for v, _ in outcomes):>9}")
            decided = [s for v, s in outcomes if v != "inconclusive"]
            row.append(f"{statistics.median(decided) if decided else '-':>5}" + (" |" if gate != "threshold" else ""))
        print(" ".join(row))
    print(f"read back: {2 * len(trials) - len(mismatched)} of {2 * len(trials)} sides' windows equal to those "
          f"written. Seconds: drawn {drawn - began:.0f}, written and loaded {blocks - drawn:.0f}, read and judged "
          f"{judged_at - blocks:.0f}.")
    if mismatched:
        print(f"judge_bench: the windows read back differ from those written for {len(mismatched)} sides "
              f"(first: {', '.join(mismatched[:5])}): the figures above are not the judge's on this data",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
