"""`deploy.yml` on the local default: rolls out for real, is idempotent, and refuses bad input unchanged."""

from __future__ import annotations

import contextlib
import datetime
import json
import socket
import sys

import pytest
import yaml
from helpers import KUBECONFIG, ON_SIMULATED_NODES, RELEASE_ONLY, ansible_playbook, recap, run
from kubernetes.client.rest import ApiException

# Made-up versions (0.9.x) have no image: their releases stay on the simulated nodes.
ON_KWOK = ["-i", "inventories/local", *ON_SIMULATED_NODES]
# ... released as staging releases, once the module's first deploy (as the local inventory runs it) bootstrapped.
RELEASED_ON_KWOK = [*ON_KWOK, *RELEASE_ONLY]

pytestmark = pytest.mark.platform
NS = "colors"


def _deployment(k8s):
    _, apps, _ = k8s
    try:
        return apps.read_namespaced_deployment("colors", NS)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


@pytest.fixture(scope="module")
def deployed(k8s):
    result = ansible_playbook("deploy.yml", *ON_KWOK, "-e", "app_release_version=0.9.0")
    assert result.returncode == 0, result.stdout[-4000:]
    return result


def test_deploy_rolls_out_the_requested_version_to_available(k8s, deployed):
    deployment = _deployment(k8s)
    assert deployment.spec.template.spec.containers[0].image == "localhost/colors:0.9.0"
    assert deployment.status.ready_replicas == deployment.spec.replicas == 2
    assert deployment.status.updated_replicas == 2
    available = [c for c in deployment.status.conditions if c.type == "Available"]
    assert available and available[0].status == "True"


def test_the_service_selects_the_ready_pods(k8s, deployed):
    from kubernetes import client

    _, _, api = k8s
    slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
        NS, label_selector="kubernetes.io/service-name=colors").items
    ready = [e for s in slices for e in (s.endpoints or []) if e.conditions.ready]
    assert len(ready) == 2


def test_deploy_again_changes_nothing(deployed):
    again = ansible_playbook("deploy.yml", *ON_KWOK, "-e", "app_release_version=0.9.0")
    assert again.returncode == 0, again.stdout[-3000:]
    assert recap(again)["changed"] == 0


@pytest.mark.parametrize(("extra", "expected"), [
    (["-e", "app_release_version=v1.2"], ['app_release_version="v1.2"', "semantic version"]),
    (["-e", "app_release_version=1.2"], ['app_release_version="1.2"', "MAJOR.MINOR.PATCH"]),
    (["-e", "colors_environment=qa"], ["colors_environment", "local, staging, prod"]),
    (["-e", "app_release_replicas=0"], ["app_release_replicas=0", "1 to 50"]),
    (["-e", "app_release_image_repository=Not A Repo"], ["app_release_image_repository", "image repository"]),
    (["-e", "colors_confirm_environment=prod"], ['colors_confirm_environment="prod"', "type local to run against it"]),
    (["-e", "app_release_strategy=bluegreen"],
     ["value of app_release_strategy must be one of: rolling, blue_green, canary, got: bluegreen"]),
    (["-e", "cluster_bootstrap_app_namespace=Colors"], ['cluster_bootstrap_app_namespace="Colors"', "DNS-1123 label"]),
])
def test_bad_input_is_refused_before_any_change(k8s, deployed, extra, expected):
    before = _deployment(k8s)
    result = ansible_playbook("deploy.yml", "-i", "inventories/local", *extra)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for text in expected:
        assert text in output, f"{text!r} missing from:\n{output[-3000:]}"
    assert "argument_spec_data" not in output, "a bad value is one line, not the whole argument spec"
    assert recap(result)["changed"] == 0
    after = _deployment(k8s)
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.template.spec.containers[0].image == before.spec.template.spec.containers[0].image


def test_an_unknown_environment_is_refused_with_the_allowed_ones():
    result = run(["make", "--no-print-directory", "deploy", "ENV=qa"])
    assert result.returncode != 0
    assert "unknown environment ENV=qa; allowed: local staging prod" in result.stderr


def test_an_inventory_that_does_not_exist_is_an_error():
    result = ansible_playbook("deploy.yml", "-i", "inventories/qa")
    assert result.returncode != 0
    assert "inventories/qa" in result.stdout + result.stderr


def test_staging_without_a_version_names_the_missing_variable():
    result = ansible_playbook("deploy.yml", "-i", "inventories/staging")
    assert result.returncode != 0
    assert "app_release_version" in result.stdout and "missing required arguments" in result.stdout
    assert recap(result)["changed"] == 0


def test_an_unreachable_cluster_names_the_kubeconfig_and_context(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = yaml.safe_load(KUBECONFIG.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{port}"
    config["contexts"][0]["name"] = config["current-context"] = "colors-staging"
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    result = ansible_playbook("deploy.yml", "-i", "inventories/staging", "-e", "app_release_version=1.0.0",
                              "-e", f"colors_kubeconfig={kubeconfig}", "-e", "preflight_cluster_timeout=10",
                              timeout=120)
    assert result.returncode != 0
    assert "unreachable" in result.stdout and str(kubeconfig) in result.stdout
    assert "context colors-staging" in result.stdout
    assert recap(result)["changed"] == 0


# (playbook, the context it runs with): the deployer's, or the administrator's for bootstrap and the access audit.
@pytest.mark.parametrize(("playbook", "context"), [
    ("deploy.yml", "colors_kube_context"), ("bootstrap.yml", "colors_kube_admin_context"),
    ("access_audit.yml", "colors_kube_admin_context"), ("rollback.yml", "colors_kube_context")])
def test_a_wrong_context_is_named(playbook, context):
    result = ansible_playbook(playbook, "-i", "inventories/local", "-e", f"{context}=no-such-context")
    assert result.returncode != 0
    assert "no-such-context" in result.stdout and str(KUBECONFIG.name) in result.stdout
    assert recap(result)["changed"] == 0


def test_a_second_checkout_cannot_start_a_platform_on_ports_in_use(tmp_path):
    result = run([sys.executable, "localplatform/platformctl.py", "up"], COLORS_PLATFORM_STATE=str(tmp_path / "state"))
    assert result.returncode == 2
    assert "is in use by another process" in result.stderr and "etcd" in result.stderr
    assert not list((tmp_path / "state").glob("run/*.pid"))  # nothing was started for the second checkout
    status = run([sys.executable, "localplatform/platformctl.py", "status"])  # the first one is untouched
    assert status.returncode == 0 and json.loads(status.stdout)["healthy"]


def _lease(holder: str, renewed: datetime.datetime, duration: int) -> dict:
    stamp = renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "colors-release", "namespace": NS},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration,
                     "acquireTime": stamp, "renewTime": stamp}}


@pytest.fixture
def leases(k8s):
    from kubernetes import client

    _, _, api = k8s
    coordination = client.CoordinationV1Api(api)
    yield coordination
    with contextlib.suppress(ApiException):
        coordination.delete_namespaced_lease("colors-release", NS)


def test_a_second_deploy_is_refused_while_another_holds_the_release_lock(k8s, deployed, leases):
    now = datetime.datetime.now(datetime.UTC)
    leases.create_namespaced_lease(NS, _lease("alice@ci/run-1", now, 600))
    before = _deployment(k8s)
    result = ansible_playbook("deploy.yml", *RELEASED_ON_KWOK, "-e", "app_release_version=0.9.1")
    assert result.returncode != 0
    assert "Another release is running" in result.stdout and "held by alice@ci/run-1" in result.stdout
    after = _deployment(k8s)
    assert after.metadata.generation == before.metadata.generation  # nothing was rolled out
    assert leases.read_namespaced_lease("colors-release", NS).spec.holder_identity == "alice@ci/run-1"


def test_the_lock_of_a_deploy_that_died_expires_and_the_next_deploy_proceeds(k8s, deployed, leases):
    long_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=120)
    leases.create_namespaced_lease(NS, _lease("crashed@ci/run-7", long_ago, 60))
    result = ansible_playbook("deploy.yml", *RELEASED_ON_KWOK, "-e", "app_release_version=0.9.0")
    assert result.returncode == 0, result.stdout[-3000:]
    with pytest.raises(ApiException) as err:  # released at the end of the release
        leases.read_namespaced_lease("colors-release", NS)
    assert err.value.status == 404


def test_a_person_can_break_the_lock_of_a_run_known_to_be_dead(k8s, deployed, leases):
    now = datetime.datetime.now(datetime.UTC)
    leases.create_namespaced_lease(NS, _lease("hung@ci/run-9", now, 900))
    result = ansible_playbook("deploy.yml", *RELEASED_ON_KWOK, "-e", "app_release_version=0.9.0",
                              "-e", "app_release_lock_force_release=true")
    assert result.returncode == 0, result.stdout[-3000:]
    with pytest.raises(ApiException):
        leases.read_namespaced_lease("colors-release", NS)


def test_verify_reads_back_the_release_that_serves_traffic(deployed):
    result = ansible_playbook("playbooks/verify.yml", "-i", "inventories/local", "-e", "app_release_version=0.9.0")
    assert result.returncode == 0, result.stdout[-3000:]
    assert "colors 0.9.0: 2" in result.stdout and recap(result)["changed"] == 0


def test_verify_fails_naming_what_runs_when_another_version_was_expected(deployed):
    result = ansible_playbook("playbooks/verify.yml", "-i", "inventories/local", "-e", "app_release_version=0.8.0")
    assert result.returncode != 0
    assert "2 of 2 serving pods ready, running version(s) 0.9.0, expected 0.8.0" in " ".join(result.stdout.split())


def test_deploy_writes_the_job_summary_where_github_asks_for_it(deployed, tmp_path):
    summary = tmp_path / "summary.md"
    result = ansible_playbook("deploy.yml", *RELEASED_ON_KWOK, "-e", "app_release_version=0.9.0",
                              GITHUB_STEP_SUMMARY=str(summary))
    assert result.returncode == 0, result.stdout[-3000:]
    text = summary.read_text()
    assert text.startswith("## Colors 0.9.0 → local: healthy (no change: already running)")
    assert "| Image | `localhost/colors:0.9.0` |" in text and "| Rolled back | no |" in text
    assert recap(result)["changed"] == 0


def test_the_pods_get_no_service_link_variables_that_would_override_the_apps_settings(k8s, deployed):
    # Kubernetes injects <SERVICE>_PORT=tcp://<ip>:<port> for every Service in the namespace; the Service "colors"
    # would set COLORS_PORT, the app's own port setting, and the app would exit 78 (found on a real node: kwok runs
    # no container, so nothing here could show it).
    spec = _deployment(k8s).spec.template.spec
    assert spec.enable_service_links is False
    env = {e.name: e.value for e in spec.containers[0].env}
    assert env["COLORS_PORT"] == str(spec.containers[0].ports[0].container_port)
