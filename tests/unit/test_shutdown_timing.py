"""A pod leaving a release drains exactly as long as the traffic in front of it: behind the ALB (staging, prod) the
app keeps serving until the load balancer controller has deregistered it and the ALB acts on that, then finishes
in-flight requests; the ALB's deregistration delay is that sum, and the kubelet's grace period outlasts it. Before,
the pods drained 5 s against a 30 s deregistration delay: the ALB kept sending requests to pods that had stopped."""

from __future__ import annotations

import re

import pytest
import yaml
from helpers import REPO, inventory_variables, role_template

ROLE = REPO / "roles" / "app_release"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
# The ALB acts on a deregistration within seconds (the controller reacts to the endpoint change at once); below this
# margin a leaving pod may still be sent new requests after it stopped accepting.
BEHIND_AN_ALB_AT_LEAST = 15


def _timing(environment: str) -> tuple[int, int]:
    values = {**DEFAULTS, **inventory_variables(REPO / "inventories" / environment)}
    return values["app_release_shutdown_delay_seconds"], values["app_release_graceful_timeout_seconds"]


def _deregistration_delay(environment: str) -> int:
    tfvars = (REPO / "terraform" / "environments" / environment / "terraform.tfvars").read_text()
    return int(re.search(r"^alb_deregistration_delay_seconds\s*=\s*(\d+)", tfvars, re.M).group(1))


@pytest.mark.parametrize("environment", ["local", "staging", "prod"])
def test_the_load_balancer_drains_a_pod_exactly_as_long_as_the_pod_drains(environment):
    delay, graceful = _timing(environment)
    assert _deregistration_delay(environment) == delay + graceful, (
        f"{environment}: terraform alb_deregistration_delay_seconds is {_deregistration_delay(environment)}, the pods "
        f"drain {delay} s + {graceful} s")


@pytest.mark.parametrize("environment", ["staging", "prod"])
def test_behind_the_alb_a_leaving_pod_serves_until_the_alb_stopped_sending(environment):
    delay, _ = _timing(environment)
    assert delay >= BEHIND_AN_ALB_AT_LEAST, f"{environment}: app_release_shutdown_delay_seconds {delay}"


@pytest.mark.parametrize("environment", ["local", "staging", "prod"])
def test_the_kubelet_never_kills_a_pod_that_is_still_draining(environment):
    delay, graceful = _timing(environment)
    (deployment,) = role_template("app_release", "deployment.yml.j2", environment, app_release_version="1.2.3",
                                  app_release_image_repository="registry.example/colors")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    settings = {e["name"]: e.get("value") for e in container["env"]}
    assert (settings["COLORS_SHUTDOWN_DELAY_SECONDS"], settings["COLORS_GRACEFUL_TIMEOUT_SECONDS"]) == (
        str(delay), str(graceful))
    assert spec["terminationGracePeriodSeconds"] == delay + graceful + 5


def test_the_timing_given_on_the_command_line_renders_as_numbers():
    """`-e app_release_shutdown_delay_seconds=20` (and an AWX survey's answer) arrives as a string."""
    (deployment,) = role_template("app_release", "deployment.yml.j2", "staging", app_release_version="1.2.3",
                                  app_release_image_repository="registry.example/colors",
                                  app_release_shutdown_delay_seconds="20", app_release_graceful_timeout_seconds="10")
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 35
