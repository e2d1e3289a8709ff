"""The release_page filter: the release report as one self-contained HTML page - the delivery metrics and their DORA
levels, the timeline of releases with their verdicts, the four metrics week by week, and for each release the judge
decided, the canary's and the baseline's series side by side with the decision. Its charts are images (SVG, as data
URIs), so the page is one file a job can keep as an artifact and any browser opens."""

from __future__ import annotations

import base64
import datetime
import html
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.colors.deploy.plugins.filter.release_report import release_report
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import TIME_FORMAT

VERDICT_COLOURS = {"succeeded": "#2e7d32", "failed": "#c62828", "rolled_back": "#c62828", "aborted": "#c62828",
                   "late": "#ef6c00", "rollback": "#1565c0"}
SIDE_COLOURS = {"canary": "#c62828", "baseline": "#1565c0"}
WIDTH = 720  # of every chart (px)
HEIGHT = 160
PAD = 36  # around a chart's axes


def _image(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode()).decode()
    return f'<img alt="{html.escape(alt)}" width="{WIDTH}" src="data:image/svg+xml;base64,{data}">'


def _svg(body: str, height: int = HEIGHT) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">'
            f'<rect width="{WIDTH}" height="{height}" fill="#fff"/>{body}</svg>')


def _time(value: str) -> datetime.datetime:
    return datetime.datetime.strptime(value, TIME_FORMAT).replace(tzinfo=datetime.UTC)


def timeline(entries: list[dict], start: datetime.datetime, end: datetime.datetime, late_ids: set) -> str:
    """Each release a mark on the time axis, coloured by its verdict (late failures orange, rollbacks blue)."""
    span = max((end - start).total_seconds(), 1.0)
    marks = [f'<line x1="{PAD}" y1="80" x2="{WIDTH - PAD}" y2="80" stroke="#999"/>',
             f'<text x="{PAD}" y="120">{start:%Y-%m-%d}</text>',
             f'<text x="{WIDTH - PAD}" y="120" text-anchor="end">{end:%Y-%m-%d %H:%M}</text>']
    for entry in entries:
        moment = _time(entry["started"])
        if not start <= moment <= end:
            continue
        x = PAD + (WIDTH - 2 * PAD) * (moment - start).total_seconds() / span
        rollback = entry.get("strategy") == "manual-rollback" or entry.get("rollback")
        kind = "late" if entry.get("id") in late_ids else "rollback" if rollback else entry.get("verdict", "")
        colour = VERDICT_COLOURS.get(kind, "#757575")
        label = html.escape(f"{entry.get('version')} {entry.get('strategy')} {kind} {entry['started']}")
        marks.append(f'<circle cx="{x:.1f}" cy="{60 if rollback else 80}" r="5" fill="{colour}">'
                     f'<title>{label}</title></circle>')
    legend = "".join(f'<circle cx="{PAD + 110 * i}" cy="145" r="4" fill="{c}"/><text x="{PAD + 8 + 110 * i}" '
                     f'y="149">{k.replace("_", " ")}</text>'
                     for i, (k, c) in enumerate(VERDICT_COLOURS.items()) if k not in ("aborted", "rolled_back"))
    return _svg("".join(marks) + legend)


def bars(title: str, points: list[tuple[str, float | None]], unit: str) -> str:
    """A bar chart of one metric, week by week (no bar: not measured that week)."""
    top = max((v for _, v in points if v is not None), default=0.0) or 1.0
    step = (WIDTH - 2 * PAD) / max(len(points), 1)
    parts = [f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
             f'<line x1="{PAD}" y1="{HEIGHT - 24}" x2="{WIDTH - PAD}" y2="{HEIGHT - 24}" stroke="#999"/>']
    for i, (label, value) in enumerate(points):
        x = PAD + i * step
        parts.append(f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle">{html.escape(label)}</text>')
        if value is None:
            continue
        h = (HEIGHT - 56) * value / top
        parts.append(f'<rect x="{x + step * 0.2:.1f}" y="{HEIGHT - 24 - h:.1f}" width="{step * 0.6:.1f}" '
                     f'height="{h:.1f}" fill="#5c6bc0"><title>{value:g} {unit}</title></rect>'
                     f'<text x="{x + step / 2:.1f}" y="{HEIGHT - 28 - h:.1f}" text-anchor="middle">{value:.3g}</text>')
    return _svg("".join(parts))


def lines(title: str, series: dict[str, list], interval: float) -> str:
    """The canary's and the baseline's value per window of the analysis, side by side."""
    values = [v for side in series.values() for v in side if v is not None]
    top = max(values, default=0.0) or 1.0
    longest = max((len(side) for side in series.values()), default=1)
    parts = [f'<text x="{PAD}" y="16" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{PAD}" y="{HEIGHT - 6}">0 s</text>',
             f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" text-anchor="end">{longest * interval:g} s</text>',
             f'<text x="{PAD - 4}" y="34" text-anchor="end">{top:.3g}</text>']
    for i, (side, points) in enumerate(series.items()):
        colour = SIDE_COLOURS.get(side, "#757575")
        coords = [(PAD + (WIDTH - 2 * PAD) * j / max(longest - 1, 1), HEIGHT - 24 - (HEIGHT - 60) * v / top)
                  for j, v in enumerate(points) if v is not None]
        if coords:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                         + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
        parts.append(f'<text x="{WIDTH - PAD - 120 + 60 * i}" y="16" fill="{colour}">{side}</text>')
    return _svg("".join(parts))


def _judged(entry: dict) -> list[tuple[str, dict]]:
    out = [(f"step {s.get('percent')} %", s["judge"]) for s in entry.get("steps") or [] if s.get("judge")]
    if entry.get("analysis"):
        out.append(("after the switch", entry["analysis"]))
    return out


def release_page(entries: Any, days: int = 30, now: str | None = None, alerts: Any = None,
                 late_window_minutes: int = 60, title: str = "Colors releases") -> str:
    """The page (HTML) of the release report of `entries` (the release_report filter's arguments)."""
    report = release_report(entries, days=days, now=now, alerts=alerts, late_window_minutes=late_window_minutes)
    done = sorted((e for e in entries if e.get("finished")), key=lambda e: e["started"])
    if not done:
        raise AnsibleFilterError("release_page: the ledger holds no finished release to show")
    end = _time(now) if now else max(_time(e["finished"]) for e in done)
    start = end - datetime.timedelta(days=int(days))
    late_ids = {late["id"] for late in report["late_failures"]}
    weeks = []
    for back in range(max(int(days) // 7, 1) - 1, -1, -1):
        week_end = end - datetime.timedelta(days=7 * back)
        week = release_report(entries, days=7, now=week_end.strftime(TIME_FORMAT), alerts=alerts,
                              late_window_minutes=late_window_minutes)
        weeks.append((f"{week_end:%m-%d}", week))
    level = report.get("level") or "not measured"
    rows = "".join(f"<tr><td>{html.escape(m)}</td><td>{html.escape(str(report.get(k)))}</td>"
                   f"<td>{html.escape(str(report['levels'].get(lk, '-')))}</td></tr>"
                   for m, k, lk in (("Deploys per day", "deploys_per_day", "deploys_per_day"),
                                    ("Lead time (s, median)", "lead_time_seconds", "lead_time_seconds"),
                                    ("Change failure rate", "change_failure_rate", "change_failure_rate"),
                                    ("Time to restore (s, mean)", "mean_time_to_restore_seconds",
                                     "time_to_restore_seconds")))
    late = "".join(f"<li>{html.escape(str(x['version']))}: {html.escape(x['alert'])} fired "
                   f"{x['after_promotion_seconds']:.0f} s after its promotion</li>" for x in report["late_failures"])
    charts = [_image(bars(name, [(label, week[key]) for label, week in weeks], unit), f"{name} week by week")
              for name, key, unit in (("Deploys per day", "deploys_per_day", "a day"),
                                      ("Lead time, median (s)", "lead_time_seconds", "s"),
                                      ("Change failure rate", "change_failure_rate", ""),
                                      ("Time to restore, mean (s)", "mean_time_to_restore_seconds", "s"))]
    judged = []
    for entry in reversed(done):
        for where, record in _judged(entry):
            reasons = "".join(f"<li><b>{html.escape(m.get('metric', ''))}</b> {html.escape(m.get('outcome', ''))}: "
                              f"{html.escape(m.get('reason', ''))}</li>" for m in record.get("metrics") or [])
            images = "".join(_image(lines(f"{metric}: canary and baseline per window", sides,
                                          float(record.get("interval") or 10)),
                                    f"{entry.get('version')} {where} {metric}")
                             for metric, sides in (record.get("series") or {}).items())
            judged.append(f'<section class="judged"><h3>{html.escape(str(entry.get("version")))} - {where}: '
                          f'{html.escape(str(record.get("state")))} (score {record.get("score")}, '
                          f'{record.get("looks")} looks, {record.get("seconds")} s)</h3><ul>{reasons}</ul>'
                          f'{images}</section>')
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            '<style>body{font-family:sans-serif;margin:2em;max-width:780px}td{padding:2px 12px}'
            'img{display:block;margin:8px 0}</style></head><body>'
            f'<h1>{html.escape(title)}</h1><p>{report["window_days"]} days to {end:%Y-%m-%d %H:%M} UTC: '
            f'{report["releases"]} releases, {report["failed"]} failed changes '
            f'({len(report["late_failures"])} late). DORA 2024 level: <b id="level">{html.escape(level)}</b>.'
            f'{"" if report["late_failures_counted"] else " Late failures were not counted (no alert history)."}'
            f'</p><table><tr><th>Metric</th><th>Value</th><th>Level</th></tr>{rows}</table>'
            f'{"<h2>Late failures</h2><ul>" + late + "</ul>" if late else ""}'
            f'<h2>Releases</h2>{_image(timeline(done, start, end, late_ids), "timeline of releases")}'
            f'<h2>Week by week</h2>{"".join(charts)}'
            f'<h2>Judged releases</h2>{"".join(judged) or "<p>No release was judged in this window.</p>"}'
            '</body></html>')


class FilterModule:
    def filters(self):
        return {"release_page": release_page}
