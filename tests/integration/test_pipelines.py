"""The entry points the GitHub workflows and AWX run, exercised here for real: `make publish` (release.yml) against
a real OCI registry, `make scan-online` (security.yml), `make kubeconfig` and its module against the EKS API of the
moto server, and playbooks/notify.yml (AWX workflow) against a webhook receiver."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest
import yaml
from helpers import (
    APP_VERSION,
    PLATFORM,
    REPO,
    STATE,
    ansible_playbook,
    free_port,
    moto_client,
    recap,
    registry_digest,
    run,
    wait_for,
)

pytestmark = pytest.mark.platform
VERSION = APP_VERSION


# --- make publish (release.yml) --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A CNCF Distribution registry on loopback: the stand-in for ECR (no registry is reachable here)."""
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "log": {"level": "warn"}, "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"}}))
    proc = subprocess.Popen([str(STATE / "bin" / "registry"), "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(root / "registry.log", "w"))  # noqa: SIM115 - closed with the process
    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError("the registry exited: " + (root / "registry.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                return True
        except OSError:
            return False

    wait_for(f"the registry to answer (log {root / 'registry.log'})", answers, timeout=20, every=0.2)
    yield f"127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)


def _publish(registry: str, **env: str) -> subprocess.CompletedProcess:
    return run(["make", "--no-print-directory", "publish"], timeout=1200, REGISTRY=registry, **env)


@pytest.fixture(scope="module")
def published(registry):
    result = _publish(registry, RELEASE_TAG=f"v{VERSION}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_publish_pushes_the_version_and_the_commit_tags(registry, published):
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                         check=True).stdout.strip()
    with urllib.request.urlopen(f"http://{registry}/v2/colors/tags/list", timeout=10) as response:
        tags = json.load(response)["tags"]
    assert sorted(tags) == sorted([VERSION, f"git-{sha[:12]}"])
    assert published["pushed"] == [f"{registry}/colors:{VERSION}", f"{registry}/colors:git-{sha[:12]}"]
    assert registry_digest(registry, "colors", VERSION) == published["digest"]


def test_publish_writes_an_sbom_read_from_the_image(published):
    sbom = json.loads((REPO / "reports" / "release" / "sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX" and sbom["specVersion"] == "1.5"
    assert sbom["metadata"]["component"]["hashes"][0]["content"] == published["digest"].removeprefix("sha256:")
    purls = {c["purl"].split("@")[0] for c in sbom["components"]}
    assert {"pkg:pypi/starlette", "pkg:pypi/uvicorn", "pkg:pypi/colors-app", "pkg:deb/debian/python3"} <= purls


def test_a_published_version_is_never_overwritten(registry, published):
    again = _publish(registry)
    assert again.returncode == 2
    assert (f"{registry}/colors:{VERSION} is already published and tags are immutable: nothing was pushed"
            in again.stderr)


@pytest.mark.parametrize(("env", "expected"), [
    ({"REGISTRY": ""}, "REGISTRY is not set"),
    ({"REGISTRY": "https://registry.example.com/colors"}, "is not a registry host"),
    ({"REGISTRY": "127.0.0.1:5999", "RELEASE_TAG": "v9.9.9"}, f"does not name the app's version {VERSION}"),
])
def test_publish_refuses_bad_input_before_pushing(env, expected):
    result = run(["make", "--no-print-directory", "publish"], timeout=1200, **env)
    assert result.returncode == 2 and expected in result.stderr, result.stderr[-2000:]


# --- make scan-online (security.yml) ---------------------------------------------------------------------------

def test_scan_online_is_not_run_here_and_never_passes_for_it():
    result = run(["make", "--no-print-directory", "scan-online"], timeout=600, TARGET_URL="http://127.0.0.1:9/",
                 SNYK_TOKEN="not-a-real-token")  # noqa: S106 - no real token exists here
    assert result.returncode != 0
    lines = {line.split()[2]: line for line in result.stdout.splitlines() if line.startswith("NOT RUN")}
    assert set(lines) == {"zap-baseline", "snyk"}, result.stdout
    assert "cannot be pulled" in lines["zap-baseline"] and "FAIL" in lines["zap-baseline"]
    assert "the Snyk CLI did not start" in lines["snyk"]
    assert "security gate: FAILED (2 scanners, 0 ran)" in result.stdout


def test_scan_online_names_the_missing_inputs():
    result = run(["make", "--no-print-directory", "scan-online"], timeout=600, TARGET_URL="", SNYK_TOKEN="")
    assert result.returncode != 0
    assert "TARGET_URL is not set" in result.stdout and "SNYK_TOKEN is not set" in result.stdout


# --- make kubeconfig: the EKS kubeconfig entry, from the EKS API ----------------------------------------------

@pytest.fixture
def eks_cluster():
    """An EKS cluster named as Terraform names staging's, in the moto server."""
    eks = moto_client("eks")
    eks.create_cluster(name="colors-staging", roleArn="arn:aws:iam::123456789012:role/colors-staging-cluster",
                       resourcesVpcConfig={"subnetIds": []})
    yield eks.describe_cluster(name="colors-staging")["cluster"]
    eks.delete_cluster(name="colors-staging")


def _kubeconfig_playbook(inventory, path, *args):
    moto = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
    return ansible_playbook("playbooks/kubeconfig.yml", "-i", str(inventory), "-e", f"colors_kubeconfig={path}",
                            "-e", f"colors_aws_endpoint_url={moto}", *args, AWS_ACCESS_KEY_ID="testing",
                            AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106 - moto's dummy pair  # pragma: allowlist secret


@pytest.fixture
def staging_inventory(tmp_path):
    import shutil

    shutil.copytree(REPO / "inventories" / "staging", tmp_path / "staging")
    return tmp_path / "staging"


def test_kubeconfig_writes_the_eks_entry_and_keeps_the_others(eks_cluster, staging_inventory, tmp_path):
    path = tmp_path / "kube" / "config"
    path.parent.mkdir()
    other = {"apiVersion": "v1", "kind": "Config", "current-context": "mine",
             "clusters": [{"name": "mine", "cluster": {"server": "https://10.0.0.1"}}],
             "users": [{"name": "mine", "user": {"token": "x"}}],
             "contexts": [{"name": "mine", "context": {"cluster": "mine", "user": "mine"}}]}
    path.write_text(yaml.safe_dump(other))
    check = _kubeconfig_playbook(staging_inventory, path, "--check")
    assert check.returncode == 0 and recap(check)["changed"] == 1, check.stdout[-3000:]
    assert yaml.safe_load(path.read_text()) == other  # check mode wrote nothing
    result = _kubeconfig_playbook(staging_inventory, path)
    assert result.returncode == 0 and recap(result)["changed"] == 1, result.stdout[-3000:]
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == "mine"
    clusters = {c["name"]: c["cluster"] for c in config["clusters"]}
    assert clusters["mine"] == other["clusters"][0]["cluster"]
    assert clusters["colors-staging"] == {"server": eks_cluster["endpoint"],
                                          "certificate-authority-data": eks_cluster["certificateAuthority"]["data"]}
    user = {u["name"]: u["user"] for u in config["users"]}["colors-staging"]["exec"]
    assert user["command"] == "aws" and user["args"][:6] == ["--region", "eu-west-1", "eks", "get-token",
                                                             "--cluster-name", "colors-staging"]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = _kubeconfig_playbook(staging_inventory, path)
    assert again.returncode == 0 and recap(again)["changed"] == 0


def test_kubeconfig_names_a_cluster_that_does_not_exist(staging_inventory, tmp_path):
    result = _kubeconfig_playbook(staging_inventory, tmp_path / "config")
    assert result.returncode != 0
    assert "EKS cluster colors-staging does not exist in eu-west-1" in " ".join(result.stdout.split())
    assert not (tmp_path / "config").exists()


def test_make_kubeconfig_on_the_local_environment_changes_nothing():
    before = (STATE / "kubeconfig").read_text()
    result = run(["make", "--no-print-directory", "kubeconfig"], ENV="local")
    assert result.returncode == 0, result.stdout[-2000:]
    assert "The local platform writes its own kubeconfig" in result.stdout
    assert (STATE / "kubeconfig").read_text() == before


# --- playbooks/notify.yml (the AWX workflow's last step) ------------------------------------------------------

def test_notify_posts_the_outcome_to_the_webhook(webhook):
    url, received = webhook
    result = ansible_playbook("playbooks/notify.yml", "-i", "inventories/local", "-e",
                              "colors_notify_outcome=rolled_back", "-e", "app_release_version=1.4.2", "-v",
                              COLORS_NOTIFY_WEBHOOK_URL=url)
    assert result.returncode == 0, result.stdout[-3000:]
    assert len(received) == 1
    assert received[0]["outcome"] == "rolled_back" and received[0]["environment"] == "local"
    assert received[0]["text"] == ":rewind: Colors 1.4.2 in local: rolled back"
    assert "colors-secret-path" not in result.stdout  # the webhook URL is a credential


@pytest.mark.parametrize(("url", "outcome", "expected"), [
    ("", "deployed", "No notification webhook"),
    ("http://127.0.0.1:9/hook", "deployed", "the message was not delivered"),
    ("http://127.0.0.1:9/hook", "exploded", "colors_notify_outcome"),
    ("http://hooks.127.0.0.1:9/hook", "deployed", "is not an https:// URL"),  # plain http off this machine
])
def test_notify_fails_clearly_without_leaking_the_url(url, outcome, expected):
    result = ansible_playbook("playbooks/notify.yml", "-i", "inventories/local", "-e",
                              f"colors_notify_outcome={outcome}", COLORS_NOTIFY_WEBHOOK_URL=url)
    assert result.returncode != 0
    assert expected in result.stdout, result.stdout[-3000:]
    assert "127.0.0.1:9" not in result.stdout
