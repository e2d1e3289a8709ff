"""Helpers shared by the unit and integration tests (imported as `helpers`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import yaml
from colors_platform.database import postgres_server  # noqa: F401 - the tests' PostgreSQL, shared with the rehearsal

REPO = Path(__file__).resolve().parents[1]
PLATFORM = yaml.safe_load((REPO / "localplatform" / "platform.yml").read_text())
STATE = Path(os.environ.get("COLORS_PLATFORM_STATE", REPO / ".platform"))
KUBECONFIG = STATE / "kubeconfig"
# The version of the Colors app (its image tag: localhost/colors:<version>).
APP_VERSION = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]

# Extra variables that keep a release on the simulated (kwok) nodes: for tests that release made-up versions, which
# have no image (kwok runs no container and simulates the drills by tag). Colors itself runs on the real worker node.
ON_SIMULATED_NODES = ("-e", f"@{REPO / 'localplatform' / 'simulated-nodes.yml'}")
# A release as staging and prod run it: the namespace was bootstrapped before (bootstrap.yml there; here the module's
# first deploy, which bootstraps as the local inventory asks), so the run goes from its checks, the deployer's access
# check included, straight to the release (about 9 s less than a local deploy, which bootstraps and installs the
# monitoring first).
RELEASE_ONLY = ("-e", '{"colors_bootstrap_on_deploy": false}')


def inventory_variables(inventory: Path) -> dict:
    """The variables an inventory's group_vars set, merged as Ansible merges the files of one group (file order);
    a vault-encrypted file (the local inventory's) is not read."""
    merged: dict = {}
    for path in sorted((inventory / "group_vars").rglob("*.yml")):
        text = path.read_text()
        if not text.startswith("$ANSIBLE_VAULT"):
            merged.update(yaml.safe_load(text) or {})
    return merged


def registry_digest(registry: str, repository: str, tag: str) -> str:
    """The digest a registry on loopback (plain HTTP) holds for repository:tag, read from its manifest."""
    request = urllib.request.Request(f"http://{registry}/v2/{repository}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 # nosec B310 - loopback
        return response.headers["Docker-Content-Digest"]


def tool_env(**extra: str) -> dict[str, str]:
    """The environment `make` gives the tools: the venv and the pinned binaries first on PATH."""
    path = os.pathsep.join([str(STATE / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])
    return dict(os.environ, PATH=path, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_FORCE_COLOR="0", **extra)


def run(argv: list[str], timeout: float = 600, input: str | None = None,
        **extra: str) -> subprocess.CompletedProcess:
    """argv in the repository with the tools' environment (keyword arguments: extra variables); input on stdin."""
    return subprocess.run(argv, cwd=REPO, env=tool_env(**extra), capture_output=True, text=True, input=input,
                          timeout=timeout, check=False)


def ansible_playbook(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """ansible-playbook of the venv with args; keyword arguments are extra environment variables."""
    return run([str(Path(sys.executable).parent / "ansible-playbook"), *args], timeout=timeout, **env)


def recap(result: subprocess.CompletedProcess) -> dict[str, int]:
    """The counters of the PLAY RECAP line for localhost."""
    for line in result.stdout.splitlines():
        if line.startswith("localhost") and "ok=" in line:
            return {k: int(v) for k, v in (part.split("=") for part in line.split()[2:])}
    raise AssertionError(f"no PLAY RECAP in output:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def moto_client(service: str, region: str | None = None):
    """A boto3 client of the local platform's AWS API (moto accepts any credentials)."""
    import boto3

    return boto3.client(service, endpoint_url=f"http://127.0.0.1:{PLATFORM['ports']['moto']}",
                        region_name=region or PLATFORM["aws"]["region"],
                        aws_access_key_id="testing", aws_secret_access_key="testing")  # noqa: S106 - moto's dummy pair


def load_plugin(relative: str, name: str | None = None):
    """Import a file of the project: a plugin under plugins/ as the collection colors.deploy's module, as Ansible
    imports it (ansible_collections.colors.deploy.plugins.<kind>.<name>; `collections` is on pytest's pythonpath),
    any other file (a bench script) by its path under `name`."""
    import importlib
    import importlib.util

    path = Path(relative)
    if path.parts[0] == "plugins":
        return importlib.import_module(".".join(("ansible_collections.colors.deploy", *path.with_suffix("").parts)))
    spec = importlib.util.spec_from_file_location(name or path.stem, REPO / relative)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def wait_for(what: str, check, timeout: float = 90, every: float = 1):
    """check() until it returns something truthy (returned), or fail naming what did not happen in time."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# The error alerts of Colors, and the alerts that inhibit them in Alertmanager (a Colors target or endpoint that is
# down: a kwok pod in the namespace is one, its IP answers nothing).
ERROR_ALERTS = ("ColorsHighErrorRatio", "ColorsAvailabilityBudgetBurnFast")
INHIBITING_ALERTS = ("ColorsEndpointDown", "ColorsTargetDown")


def prometheus_query(expr: str) -> list[dict]:
    """The result of an instant query of the local platform's Prometheus."""
    import json
    import urllib.parse
    import urllib.request

    url = f"http://127.0.0.1:{PLATFORM['ports']['prometheus']}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)["data"]["result"]


def quiet(alerts: tuple[str, ...]) -> None:
    """Wait until none of these alerts is active in Prometheus or Alertmanager (earlier errors age out of the 5-minute
    window, a target that was down resolves), so that the next firing is a new notification that nothing inhibits."""
    import json
    import urllib.request

    wait_for(f"{alerts} to be inactive in Prometheus", lambda: not [
        a for a in prometheus_query("ALERTS") if a["metric"]["alertname"] in alerts], timeout=400, every=5)
    alertmanager = f"http://127.0.0.1:{PLATFORM['ports']['alertmanager']}/api/v2/alerts?active=true"

    def held() -> list:
        with urllib.request.urlopen(alertmanager, timeout=10) as response:
            return [a for a in json.load(response) if a["labels"]["alertname"] in alerts]

    wait_for(f"Alertmanager to hold none of {alerts}", lambda: not held(), timeout=60)


def received_alerts(since: float, receiver: str, status: str | None = None, **labels: str) -> list[dict]:
    """The alerts the local platform's alert receiver got at `receiver` since `since` (unix seconds), optionally only
    those of one status (firing, resolved) and carrying these labels."""
    import json
    import urllib.parse
    import urllib.request

    query = urllib.parse.urlencode({"since": since, "receiver": receiver})
    url = f"http://127.0.0.1:{PLATFORM['ports']['alert_receiver']}/notifications?{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        entries = json.load(response)
    return [a for e in entries for a in e["payload"]["alerts"]
            if (status is None or a["status"] == status) and all(a["labels"].get(k) == v for k, v in labels.items())]


def role_template(role: str, template: str, environment: str | None = None, **values) -> list[dict]:
    """The documents a role's template renders with the role's defaults, the environment's inventory variables (its
    group_vars as written) and `values` over them - as the role would render them there."""
    import json

    import jinja2

    folder = REPO / "roles" / role
    context = yaml.safe_load((folder / "defaults" / "main.yml").read_text())
    if environment:
        context |= inventory_variables(REPO / "inventories" / environment)
    env = jinja2.Environment(undefined=jinja2.ChainableUndefined, autoescape=False)  # noqa: S701 - YAML, not HTML
    env.filters["to_json"] = json.dumps
    rendered = env.from_string((folder / "templates" / template).read_text()).render(**(context | values))
    return [d for d in yaml.safe_load_all(rendered) if d]


def role_pod_monitor(**overrides) -> dict:
    """The monitoring role's PodMonitor, rendered from its template with the role's defaults (as the role does)."""
    import json

    import jinja2

    role = REPO / "roles" / "monitoring"
    values = {**yaml.safe_load((role / "defaults" / "main.yml").read_text()), **overrides}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - YAML, not HTML
    env.filters["to_json"] = json.dumps
    return yaml.safe_load(env.from_string((role / "templates" / "podmonitor.yml.j2").read_text()).render(**values))


def template_hashes(apps, namespace: str, image: str) -> set[str]:
    """The pod-template-hash of each ReplicaSet in the namespace whose pods run this image."""
    return {rs.metadata.labels["pod-template-hash"] for rs in apps.list_namespaced_replica_set(namespace).items
            if rs.spec.template.spec.containers[0].image == image}


def image_as(version: str, source: str = f"localhost/colors:{APP_VERSION}") -> str:
    """An image of the tree (by default the release's, or one of its drills) under another version tag, loaded into
    the worker node (a release that changes the pods)."""
    subprocess.run(["docker", "tag", source, f"localhost/colors:{version}"], check=True)
    loaded = run(["python", "localplatform/platformctl.py", "load-images", f"localhost/colors:{version}"])
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    return version


class Plan(dict):
    """{address: planned values} of a plan, with the whole of `terraform show -json` as `shown` (its
    configuration holds the references between modules)."""

    shown: dict


def tfvars(environment: str) -> dict[str, str]:
    """Top-level assignments of an environment's terraform.tfvars (name -> raw value text)."""
    text = (REPO / "terraform" / "environments" / environment / "terraform.tfvars").read_text()
    return dict(re.findall(r"^(\w+)\s*=\s*(.+?)\s*$", text, flags=re.M))


def terraform_plan(environment: str, work: Path, *variables: str) -> Plan:
    """{address: planned values} of `terraform plan -refresh=false` of a fresh state of the environment, with its
    own tfvars and region (and `variables`, "name=value", over them), against the local AWS API (only the endpoint
    swapped): the stack is copied into `work` with a local backend. Data sources are there too: those read at plan
    time with their values, those read during apply with what is known at plan time."""
    import json
    import shutil

    shutil.copytree(REPO / "terraform", work / "terraform", ignore=shutil.ignore_patterns(".terraform*"))
    (work / "inventories").mkdir()  # the add-on versions terraform/stack/addons.tf reads
    shutil.copy2(REPO / "inventories" / "sources.yml", work / "inventories" / "sources.yml")
    stack = work / "terraform" / "stack"
    (stack / "backend_override.tf").write_text('terraform {\n  backend "local" {}\n}\n')
    env = tool_env(TF_CLI_CONFIG_FILE=str(STATE / "terraform.rc"), TF_DATA_DIR=str(work / "data"),
                   AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106 - moto's dummy pair
    region = yaml.safe_load((REPO / "inventories" / environment / "group_vars" / "all" / "main.yml").read_text())[
        "colors_aws_region"]
    if environment == "local":
        region = PLATFORM["aws"]["region"]

    def terraform(*args: str) -> str:
        result = subprocess.run(["terraform", f"-chdir={stack}", *args, "-no-color"], env=env, capture_output=True,
                                text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        return result.stdout

    terraform("init", "-input=false")
    terraform("plan", "-input=false", "-refresh=false", "-lock=false",
              f"-var-file={REPO / 'terraform' / 'environments' / environment / 'terraform.tfvars'}",
              f"-var=aws_region={region}", f"-var=aws_endpoint_url=http://127.0.0.1:{PLATFORM['ports']['moto']}",
              *[f"-var={v}" for v in variables], f"-out={work / 'plan'}")
    shown = json.loads(terraform("show", "-json", str(work / "plan")))

    def read(module: dict) -> dict[str, dict]:
        found = {r["address"]: r["values"] for r in module.get("resources", [])}
        for child in module.get("child_modules", []):
            found |= read(child)
        return found

    plan = Plan(read(shown.get("prior_state", {}).get("values", {}).get("root_module", {})))
    plan |= {rc["address"]: rc["change"]["after"] for rc in shown["resource_changes"]}
    plan.shown = shown
    return plan


class RegisteredExporter:
    """An exporter of the test that the local platform's Prometheus scrapes: an HTTP server answering every GET with
    `exposition()` (the text format), registered as a file_sd target (`<name>.json` in the platform's targets folder)
    with the target labels given. close() unregisters and stops it."""

    def __init__(self, name: str, labels: dict, exposition):
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.target = STATE / "prometheus" / "targets" / f"{name}.json"
        self.target.write_text(json.dumps([{"targets": [f"127.0.0.1:{self.server.server_port}"], "labels": labels}]))

    def close(self) -> None:
        self.target.unlink(missing_ok=True)
        self.server.shutdown()


def test_judge(interval: float, max_analysis: float, min_sample: int) -> dict:
    """The canary judge's settings as a test can afford them: app_release's metrics (the error ratio, weight 2, and
    a latency quantile of what people ask), with tolerances of 5 percentage points and 50 ms at p90 and alpha 0.01 -
    a pass needs ~110 requests a side with no error, where the defaults' half a point at p99 need ~2000."""
    asked = '$pods,route!~"/healthz|/readyz|/metrics"'
    return {"interval": interval, "max_analysis": max_analysis, "alpha": 0.01, "pass_score": 95, "marginal_score": 75,
            "inconclusive": "abort", "metrics": [
                {"name": "error-ratio", "kind": "ratio", "weight": 2, "tolerance": 0.05, "min_sample": min_sample,
                 "bad": f'sum(colors_http_requests_total{{{asked},status=~"5.."}})',
                 "total": f"sum(colors_http_requests_total{{{asked}}})"},
                {"name": "latency-p90", "kind": "quantile", "quantile": 0.9, "tolerance": 0.05,
                 "min_sample": min_sample,
                 "buckets": f"sum by (le) (colors_http_request_duration_seconds_bucket{{{asked}}})"}]}


test_judge.__test__ = False  # a helper, not a test


def headless_page():
    """A page of Debian's Chromium driven by Playwright, and the list of the page errors it met (a context)."""
    import contextlib

    from playwright.sync_api import sync_playwright

    @contextlib.contextmanager
    def opened():
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page, errors = browser.new_page(), []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                yield page, errors
            finally:
                browser.close()
    return opened()
