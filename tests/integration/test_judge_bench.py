"""`make bench-judge`: the canary judge's benchmark writes its trials as OpenMetrics, loads them with promtool, reads
them back through a real Prometheus with app_release's own PromQL, and judges them - a few trials of each row here,
on the platform's promtool and Prometheus (installed by the toolchain; no platform needs to run)."""

from __future__ import annotations

import re
import sys

from helpers import run


def test_the_judge_benchmark_reads_every_trial_back_from_prometheus_and_judges_it():
    result = run([sys.executable, "bench/judge_bench.py", "--trials", "2", "--engine-trials", "1",
                  "--max-analysis", "300"], timeout=300)
    assert result.returncode == 0, result.stderr[-3000:] or result.stdout[-3000:]
    # Each side's windows as the engine read them equal those written: the data went through promtool and PromQL.
    assert "read back: 36 of 36 sides' windows equal to those written" in result.stdout, result.stdout
    rows = {(m.group(1), m.group(2)): m.group(3)
            for m in re.finditer(r"^(A/.+?)\s+(\d+(?:\.\d+)?) \|(.*)$", result.stdout, re.M)}
    assert len(rows) == 9, result.stdout
    # At 20 requests/s the judge promotes a canary like its baseline and aborts both regressions, in the replay
    # (the first column) and in the engine's own loop (the second).
    none_aborted, all_aborted = r"^\s+0\.0 %.*?\|\s+0\.0 %", r"^\s+100\.0 %.*?\|\s+100\.0 %"
    assert re.match(none_aborted, rows["A/A", "20"]), rows
    for regression in ("A/B errors +1 pp", "A/B p99 +50 ms"):
        assert re.match(all_aborted, rows[regression, "20"]), rows
