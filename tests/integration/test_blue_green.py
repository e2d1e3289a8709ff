"""Blue-green releases on the real API server: the Service switches only after every gate passed, a failed
release never receives traffic, and switching back is instant."""

from __future__ import annotations

import pytest
from helpers import ON_SIMULATED_NODES, ansible_playbook

pytestmark = pytest.mark.platform
NS = "bluegreen"
ARGS = ["-i", "inventories/local", *ON_SIMULATED_NODES,
        "-e", f"app_release_namespace={NS}", "-e", f"cluster_bootstrap_app_namespace={NS}",
        "-e", "app_release_strategy=blue_green"]


def _routed(k8s):
    core, apps, _ = k8s
    color = core.read_namespaced_service("colors", NS).spec.selector["colors.io/color"]
    deployment = apps.read_namespaced_deployment(f"colors-{color}", NS)
    return color, deployment.spec.template.spec.containers[0].image, deployment.status.ready_replicas


def _deploy(version):
    return ansible_playbook("deploy.yml", *ARGS, "-e", f"app_release_version={version}")


@pytest.fixture(scope="module")
def two_colours(k8s):
    for version in ("4.0.0", "4.1.0"):
        assert _deploy(version).returncode == 0
    yield
    core, _, _ = k8s
    core.delete_namespace(NS)


def test_each_release_goes_to_the_idle_colour_and_the_service_follows(k8s, two_colours):
    colour, image, ready = _routed(k8s)
    assert image == "localhost/colors:4.1.0" and ready == 2
    _, apps, _ = k8s
    other = "green" if colour == "blue" else "blue"
    previous = apps.read_namespaced_deployment(f"colors-{other}", NS)
    assert previous.spec.template.spec.containers[0].image == "localhost/colors:4.0.0"
    assert previous.status.ready_replicas == 2  # kept running for an instant switch-back


def test_a_failed_release_never_receives_traffic(k8s, two_colours):
    before = _routed(k8s)
    result = _deploy("4.2.0-drill-pull-error")
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "failed gate image-pull" in out and f"traffic stayed on {before[0]} ({before[1]})" in out
    assert _routed(k8s) == before
    _, apps, _ = k8s
    idle = "green" if before[0] == "blue" else "blue"
    assert apps.read_namespaced_deployment(f"colors-{idle}", NS).spec.replicas == 0  # scaled away


def test_switching_back_and_forth_is_instant(k8s, two_colours):
    assert _deploy("4.3.0").returncode == 0
    colour, image, _ = _routed(k8s)
    assert image == "localhost/colors:4.3.0"
    back = ansible_playbook("rollback.yml", *ARGS)
    assert back.returncode == 0, back.stdout[-3000:]
    assert _routed(k8s)[1] == "localhost/colors:4.1.0" and _routed(k8s)[0] != colour
    forth = ansible_playbook("rollback.yml", *ARGS)
    assert forth.returncode == 0 and _routed(k8s)[:2] == (colour, image)


def test_the_same_release_again_changes_nothing(k8s, two_colours):
    _deploy("4.3.0")
    again = _deploy("4.3.0")
    assert again.returncode == 0
    assert "changed=0" in again.stdout
