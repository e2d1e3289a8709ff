"""Unit tests of the release_page filter (plugins/filter/release_page.py): the report as one HTML page whose charts
are SVG images. tests/integration/test_release_page.py opens it in a headless browser."""

from __future__ import annotations

import base64
import re
import xml.etree.ElementTree as ET

import pytest
from ansible.errors import AnsibleFilterError
from helpers import load_plugin

page = load_plugin("plugins/filter/release_page.py").FilterModule().filters()["release_page"]
JUDGED = {"state": "failed", "score": 0.0, "looks": 3, "seconds": 20.0, "interval": 10, "metrics": [
    {"metric": "error-ratio", "outcome": "fail", "reason": "the canary is worse by 0.048"}],
    "series": {"error-ratio": {"canary": [0.05, 0.04, None], "baseline": [0.002, 0.001, 0.0]}}}


def ledger() -> list[dict]:
    def entry(day, verdict, **extra):
        return {"id": f"r{day}", "version": f"1.{day}.0", "strategy": "canary",
                "started": f"2026-11-{day:02d}T10:00:00Z", "finished": f"2026-11-{day:02d}T10:05:00Z",
                "verdict": verdict, **extra}
    return [entry(1, "succeeded"), entry(3, "rolled_back", steps=[{"percent": 25, "judge": JUDGED}]),
            entry(9, "succeeded"), entry(20, "succeeded", strategy="manual-rollback")]


def images(text: str) -> dict[str, ET.Element]:
    """alt -> the parsed SVG of each image."""
    return {alt: ET.fromstring(base64.b64decode(data))  # noqa: S314 # nosec B314 - the filter's own output
            for alt, data in re.findall(r'<img alt="([^"]+)" width="\d+" src="data:image/svg\+xml;base64,([^"]+)">',
                                        text)}


def test_the_page_shows_the_metrics_the_timeline_the_weeks_and_each_judged_release_as_images():
    text = page(ledger(), days=28, now="2026-11-28T12:00:00Z", alerts=[])
    charts = images(text)  # every image parses as SVG
    assert set(charts) == {"timeline of releases", "Deploys per day week by week", "Lead time, median (s) week by "
                           "week", "Change failure rate week by week", "Time to restore, mean (s) week by week",
                           "1.3.0 step 25 % error-ratio"}
    ns = "{http://www.w3.org/2000/svg}"
    marks = charts["timeline of releases"].findall(f"{ns}circle/{ns}title")
    assert [m.text.split()[0] for m in marks] == ["1.1.0", "1.3.0", "1.9.0", "1.20.0"]
    deploys = charts["Deploys per day week by week"].findall(f"{ns}rect/{ns}title")
    assert [t.text for t in deploys] == ["0.143 a day", "0.143 a day", "0 a day", "0 a day"]  # 4 weeks, oldest first
    assert charts["Change failure rate week by week"].findall(f"{ns}rect/{ns}title")[0].text == "0.5 "
    polylines = charts["1.3.0 step 25 % error-ratio"].findall(f"{ns}polyline")
    assert len(polylines) == 2 and len(polylines[0].get("points").split()) == 2  # the canary's None is no point
    assert "1.3.0 - step 25 %: failed (score 0.0, 3 looks, 20.0 s)" in text
    assert "the canary is worse by 0.048" in text and 'DORA 2024 level: <b id="level">' in text


def test_a_ledger_with_nothing_finished_has_no_page():
    with pytest.raises(AnsibleFilterError, match="no finished release"):
        page([{"id": "x", "started": "2026-11-01T10:00:00Z"}])
