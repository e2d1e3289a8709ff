"""The job summary of a release (roles/app_release/templates/release-summary.md.j2), rendered as Ansible's template
module renders it (trim_blocks), for a canary the judge decided."""

from __future__ import annotations

import jinja2
from helpers import REPO

TEMPLATE = REPO / "roles/app_release/templates/release-summary.md.j2"


class Undefined(jinja2.ChainableUndefined):
    """As Ansible's: an attribute of what is undefined may be asked for (then defaulted), never printed."""

    def __str__(self) -> str:
        raise jinja2.UndefinedError(f"{self._undefined_name} is undefined")

    __add__ = __radd__ = __str__


def _render(result: dict) -> str:
    env = jinja2.Environment(trim_blocks=True, undefined=Undefined, autoescape=False)  # noqa: S701 # nosec B701 - Markdown
    return env.from_string(TEMPLATE.read_text()).render(
        app_release_result=result, app_release_version="1.1.0", colors_environment="staging",
        app_release_strategy="canary", app_release_image_repository="colors", app_release_lock_holder="ci/1")


def test_the_summary_of_a_judged_canary_shows_each_steps_analysis_and_the_metrics_that_decided_it():
    failed = {"percent": 25, "canary": 1, "stable": 3, "state": "failed", "judge": {
        "state": "failed", "score": 0.0, "looks": 3, "seconds": 20.0, "metrics": [
            {"metric": "error-ratio", "outcome": "fail", "reason": "the canary is worse by 0.048 (tolerance 0.005), "
                                                                   "p=1e-09 < 0.001"},
            {"metric": "latency-p99", "outcome": "extend", "reason": "120 requests on the smaller side, 200 needed"}]}}
    text = _render({"failed": True, "changed": True, "previous_image": "colors:1.0.0", "steps": [failed],
                    "verdict": {"state": "failed", "gate": "judge"}})
    assert "### Canary judge: the canary beside a baseline of `colors:1.0.0` at its size" in text
    assert ("| 25 % (1 pods) | failed | 0.0 | 3 | 20.0 | error-ratio fail: the canary is worse by 0.048 (tolerance "
            "0.005), p=1e-09 < 0.001; latency-p99 extend: 120 requests on the smaller side, 200 needed |") in text


def test_a_release_without_the_judge_has_no_judge_section():
    text = _render({"failed": False, "changed": True, "steps": [{"percent": 25, "canary": 1, "state": "healthy"}],
                    "verdict": {"state": "healthy"}})
    assert "Canary judge" not in text and "| Strategy | canary |" in text


def test_the_summary_of_a_judged_blue_green_release_shows_the_analysis_after_the_switch():
    analysis = {"state": "passed", "score": 100.0, "looks": 12, "seconds": 110.0, "metrics": [
        {"metric": "error-ratio", "outcome": "pass", "reason": "no worse than the tolerance 0.005"}]}
    text = _render({"failed": False, "changed": True, "target_color": "green", "analysis": analysis,
                    "verdict": {"state": "healthy"}})
    assert "### Canary judge: the new colour against the previous colour before the switch" in text
    assert ("| after the switch to green | passed | 100.0 | 12 | 110.0 | error-ratio pass: no worse than the "
            "tolerance 0.005 |") in text
