"""The deployer's grants, derived from what the deploy path really does.

Releases run as the identity EKS maps the deploy role to (user = the assumed role's session, group
colors:deployers: a client certificate of the local PKI carries both). The local API server's audit log records
every request of that group. This module runs each operation of the deploy path as the deployer - a rolling
release, a canary, a failing release and its automatic rollback, rollback.yml, rotate-secrets.yml, verify.yml,
release_report.yml, a deploy freeze with the release it refuses, blue-green releases on PostgreSQL (their
migration Jobs) with their switch back, and on the real worker node a rolling and a blue-green release whose smoke
gate asks through the API server (the release's Service, the preview Service of the colour judged) -
then compares the (verb, resource, namespace) the log shows with what the deployer's Role and ClusterRole grant: a
request refused fails, and so does a grant nothing used. The on-call identity is tried the same way, by hand.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import uuid
from collections import Counter

import pytest
import yaml
from helpers import (
    APP_VERSION,
    KUBECONFIG,
    ON_SIMULATED_NODES,
    RELEASE_ONLY,
    REPO,
    STATE,
    ansible_playbook,
    moto_client,
)

pytestmark = pytest.mark.platform
NS, BG, NODE = "access", "access-bg", "access-node"
AUDIT_LOG = STATE / "logs" / "kube-apiserver-audit.log"
DEPLOYERS = "colors:deployers"
DEPLOYER_NAME = "colors-deployer"  # cluster_bootstrap_deployer_name


SECRET_ID = "colors-local/access"  # noqa: S105 - a name: the keys come from Secrets Manager, as in staging and prod


def _args(namespace: str, *extra: str) -> list[str]:
    """As staging and prod run: keys from Secrets Manager, no bootstrap on deploy (bootstrap.yml ran first)."""
    return ["-i", "inventories/local", *ON_SIMULATED_NODES, *RELEASE_ONLY, "-e", f"app_release_namespace={namespace}",
            "-e", f"cluster_bootstrap_app_namespace={namespace}", "-e", "app_release_node_port=0",
            "-e", "app_secrets_source=secretsmanager", "-e", f"app_secrets_secretsmanager_id={SECRET_ID}", *extra]


def _on_the_node(namespace: str, *extra: str) -> list[str]:
    """As staging and prod release, on the real worker node (the tree's image): the smoke gate asks the release's
    Service - a blue-green release its preview Service - through the API server, not a URL."""
    return ["-i", "inventories/local", *RELEASE_ONLY, "-e", f"app_release_namespace={namespace}",
            "-e", f"cluster_bootstrap_app_namespace={namespace}", "-e", "app_release_node_port=0",
            "-e", "app_secrets_source=secretsmanager", "-e", f"app_secrets_secretsmanager_id={SECRET_ID}",
            "-e", "app_release_smoke_url=", "-e", "app_release_prometheus_url=",
            "-e", f"app_release_version={APP_VERSION}", *extra]


def _lock_of_a_run_that_died(k8s) -> None:
    """The release lock as a run leaves it when it dies mid-release: held, and expired an hour ago."""
    from kubernetes import client

    _, _, api = k8s
    an_hour_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    client.CoordinationV1Api(api).create_namespaced_lease(NS, {
        "metadata": {"name": "colors-release"},
        "spec": {"holderIdentity": "a-run-that-died", "leaseDurationSeconds": 60,
                 "acquireTime": an_hour_ago.isoformat(), "renewTime": an_hour_ago.isoformat()}})


# (what, playbook, arguments, whether it must succeed, what happened before): the deploy path, in the order an
# environment lives it.
DEPLOY_PATH = [
    ("rolling release", "deploy.yml", _args(NS, "-e", "app_release_version=5.0.0"), True, None),
    ("release after a run that died holding the lock", "deploy.yml", _args(NS, "-e", "app_release_version=5.0.1"),
     True, _lock_of_a_run_that_died),
    ("canary release", "deploy.yml",
     _args(NS, "-e", "app_release_version=5.1.0", "-e", "app_release_strategy=canary",
           "-e", "app_release_canary_pause=1s", "-e", "app_release_replicas=4"), True, None),
    ("failing release, rolled back automatically", "deploy.yml",
     _args(NS, "-e", "app_release_version=5.2.0-drill-never-ready",
           "-e", "app_release_progress_deadline_seconds=10"), False, None),
    ("rollback.yml", "rollback.yml", _args(NS), True, None),
    ("rotate-secrets.yml", "rotate-secrets.yml", _args(NS), True, None),
    ("verify.yml", "playbooks/verify.yml", _args(NS, "-e", "app_release_version=5.0.1"), True, None),
    ("release_report.yml", "release_report.yml", _args(NS), True, None),
    ("deploy freeze", "freeze.yml", _args(NS, "-e", "app_release_freeze_reason=drill"), True, None),
    ("release refused during the freeze", "deploy.yml", _args(NS, "-e", "app_release_version=5.3.0"), False, None),
    ("freeze lifted", "freeze.yml", _args(NS, "-e", "app_release_freeze_state=lifted"), True, None),
    # As staging and prod release: blue-green, on PostgreSQL (each release runs its migration Job first).
    ("blue-green release", "deploy.yml", _args(BG, "-e", "app_release_strategy=blue_green",
                                               "-e", "app_release_store=postgres",
                                               "-e", "app_release_version=6.0.0"), True, None),
    ("blue-green release to the idle colour", "deploy.yml",
     _args(BG, "-e", "app_release_strategy=blue_green", "-e", "app_release_store=postgres",
           "-e", "app_release_version=6.1.0"), True, None),
    ("blue-green rollback", "rollback.yml", _args(BG, "-e", "app_release_strategy=blue_green"), True, None),
    # On the worker node, the gates through the API server, as staging and prod ask them.
    ("rolling release, smoke gate through the API server", "deploy.yml", _on_the_node(NODE), True, None),
    ("blue-green release, judged through its preview Service", "deploy.yml",
     _on_the_node(NODE, "-e", "app_release_strategy=blue_green"), True, None),
]


# Open to every authenticated identity (the built-in system:basic-user and system:discovery roles): asking who one
# is and what one may do - the deploy path's access check.
EVERYONE = {"selfsubjectreviews", "selfsubjectaccessreviews"}


def _requests(start: int, end: int) -> list[dict]:
    """The audit events of the deployers' group whose lines begin between bytes `start` and `end` of the log:
    requests for resources that need a grant (discovery and EVERYONE's are open to every authenticated identity)."""
    events, offset = [], 0
    with AUDIT_LOG.open("rb") as log:
        for line in log:
            if start <= offset < end and line.strip():
                events.append(json.loads(line))
            offset += len(line)
    return [e for e in events if DEPLOYERS in e["user"].get("groups", []) and e.get("objectRef")
            and e["objectRef"]["resource"] not in EVERYONE]


def _keys(event: dict) -> list[tuple[str, str, str, str]]:
    """(namespace, apiGroup, resource, verb) the request needed: a patch answered 201 (server-side apply of an
    object that did not exist) was authorized as a create too."""
    ref = event["objectRef"]
    resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
    # A Namespace is cluster-scoped: its own name is where the request was made.
    where = ref.get("namespace") or (ref.get("name", "") if resource == "namespaces" else "")
    key = (where, ref.get("apiGroup", ""), resource)
    created = event["verb"] == "patch" and event["responseStatus"]["code"] == 201
    return [(*key, event["verb"])] + ([(*key, "create")] if created else [])


def _key(event: dict) -> tuple[str, str, str, str]:
    return _keys(event)[0]


@pytest.fixture(scope="module")
def deploy_path(k8s):
    """Run the deploy path as the deployer; the audit events each step caused."""
    assert AUDIT_LOG.exists(), f"{AUDIT_LOG} is missing: the API server writes no audit log (make down && make up)"
    secrets = moto_client("secretsmanager")
    # The simulated nodes' pods connect nowhere: database_url only has to be there, as staging's secret has it.
    secrets.create_secret(Name=SECRET_ID, SecretString=json.dumps({
        "api_key": uuid.uuid4().hex, "session_key": uuid.uuid4().hex,
        "database_url": "postgresql://colors_app@database.invalid:5432/colors"}))
    core, _, _ = k8s
    try:
        # The namespaces first, by their administrator (bootstrap.yml): not audited as the deployer.
        for namespace in (NS, BG, NODE):
            result = ansible_playbook("bootstrap.yml", *_args(namespace))
            assert result.returncode == 0, result.stdout[-3000:]
        # The three namespaces' paths run side by side (each in its order); a request is its path's by the namespace
        # it names, and one that names none of them counts for every step that ran when it was made.
        windows: dict[str, tuple[str, int, int]] = {}

        def live(namespace: str) -> None:
            for what, playbook, args, succeeds, before in DEPLOY_PATH:
                if f"app_release_namespace={namespace}" not in args:
                    continue
                if before:
                    before(k8s)
                start = AUDIT_LOG.stat().st_size
                result = ansible_playbook(playbook, *args)
                assert (result.returncode == 0) == succeeds, f"{what}: {result.stdout[-3000:]}"
                windows[what] = (namespace, start, AUDIT_LOG.stat().st_size)

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            for path in [pool.submit(live, namespace) for namespace in (NS, BG, NODE)]:
                path.result()
        steps = {what: [e for e in _requests(start, end)
                        if _key(e)[0] == namespace or _key(e)[0] not in (NS, BG, NODE)]
                 for what, (namespace, start, end) in windows.items()}
        assert set(steps) == {what for what, *_ in DEPLOY_PATH}
        yield steps
    finally:
        from kubernetes import client

        rbac = client.RbacAuthorizationV1Api(k8s[2])
        secrets.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)
        for namespace in (NS, BG, NODE):
            core.delete_namespace(namespace)
            # The Namespace reader is cluster-scoped: it outlives the namespace.
            rbac.delete_cluster_role_binding(f"{DEPLOYER_NAME}-namespace-{namespace}")
            rbac.delete_cluster_role(f"{DEPLOYER_NAME}-namespace-{namespace}")


def _granted(k8s, namespace: str) -> set[tuple[str, str, str, str]]:
    """(namespace, apiGroup, resource, verb) the deployer's Role grants in `namespace` and its ClusterRole grants
    on that Namespace, read back from the API server."""
    from kubernetes import client

    _, _, api = k8s
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_namespaced_role(DEPLOYER_NAME, namespace)
    cluster_role = rbac.read_cluster_role(f"{DEPLOYER_NAME}-namespace-{namespace}")
    granted = set()
    for scope, rules in ((namespace, role.rules), ("", cluster_role.rules)):
        for rule in rules:
            for group in rule.api_groups:
                for resource in rule.resources:
                    for verb in rule.verbs:
                        # A Namespace is cluster-scoped; the audit log names it as its own namespace.
                        granted.add((namespace if resource == "namespaces" else scope, group, resource, verb))
    return granted


def test_every_request_of_the_deploy_path_was_allowed(deploy_path):
    refused = [(what, _key(e), e["responseStatus"].get("message", "")[:200])
               for what, events in deploy_path.items() for e in events if e["responseStatus"]["code"] == 403]
    assert not refused, "the deployer lacks a grant the deploy path needs:\n" + "\n".join(map(str, refused))
    for what, events in deploy_path.items():
        assert events, f"{what}: no request of the deployer in the audit log (did it run as the deployer?)"
        users = {e["user"]["username"] for e in events}
        assert users == {"arn:aws:sts::123456789012:assumed-role/colors-local-deploy/local"}, (what, users)


def test_the_deployer_is_granted_exactly_what_the_deploy_path_uses(k8s, deploy_path):
    events = [e for steps in deploy_path.values() for e in steps]
    assert {_key(e)[0] for e in events} <= {NS, BG, NODE}, "the deployer made requests outside its namespaces"
    # The Role is one template in every application namespace: compare (apiGroup, resource, verb).
    used = Counter(key[1:] for e in events for key in _keys(e))
    granted = {grant[1:] for grant in _granted(k8s, NS)}
    pairs = "\n".join(f"  {g or 'core'}/{r} {v}: {c}" for (g, r, v), c in sorted(used.items()))
    print(f"{len(used)} (verb, resource) pairs the deploy path used, of {len(granted)} granted; requests:\n{pairs}")
    assert set(used) <= granted, f"used but not granted: {sorted(set(used) - granted)}"
    assert granted <= set(used), f"granted but never used by the deploy path: {sorted(granted - set(used))}"
    # ... and what the deploy path checks before it changes anything (app_release's "access" entry point).
    needs_file = REPO / "roles" / "app_release" / "vars" / "main.yml"
    needs = yaml.safe_load(needs_file.read_text())["_app_release_access_needs"]
    checked = {(n["group"], n["resource"], v) for n in needs for v in n["verbs"]} | {("", "namespaces", "get")}
    assert checked == granted, f"checked, not granted: {checked - granted}; granted, not checked: {granted - checked}"


def test_a_release_refused_by_a_freeze_read_the_freeze_and_changed_nothing(deploy_path):
    requests = [_key(e) for e in deploy_path["release refused during the freeze"]]
    assert ("access", "", "configmaps", "get") in requests
    assert [r for r in requests if r[3] not in ("get", "list", "watch")] == [], requests


def test_a_missing_grant_stops_the_release_before_anything_changes_in_one_line(k8s, deploy_path):
    """As staging runs it (no bootstrap on deploy): the Role loses one verb; the release stops at its access check,
    naming the identity, the verb, the resource and who grants it; nothing changed. bootstrap.yml restores it."""
    from kubernetes import client

    _, apps, api = k8s
    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_namespaced_role(DEPLOYER_NAME, NS)
    before = apps.read_namespaced_deployment("colors", NS)
    for rule in role.rules:
        if rule.resources == ["deployments"]:
            rule.verbs = [v for v in rule.verbs if v != "patch"]
    rbac.replace_namespaced_role(DEPLOYER_NAME, NS, role)
    try:
        result = ansible_playbook("deploy.yml", *_args(NS, "-e", "app_release_version=5.9.0"))
    finally:
        restored = ansible_playbook("bootstrap.yml", *_args(NS))
    assert result.returncode != 0
    line = ('arn:aws:sts::123456789012:assumed-role/colors-local-deploy/local may not patch deployments.apps in '
            f'namespace {NS}, which the deploy path needs')
    assert line in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert "roles/cluster_bootstrap" in result.stdout and "Traceback" not in result.stdout
    after = apps.read_namespaced_deployment("colors", NS)
    assert after.metadata.resource_version == before.metadata.resource_version  # nothing changed
    assert restored.returncode == 0


def test_the_deployer_cannot_read_other_namespaces_or_their_secrets(k8s, deploy_path):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(config.new_client_from_config(str(KUBECONFIG), context="colors-local-deployer"))
    assert core.read_namespace(NS).metadata.name == NS
    for call in (lambda: core.read_namespace("kube-system"), lambda: core.list_namespaced_secret("kube-system"),
                 lambda: core.list_namespaced_pod("default"), lambda: core.list_node()):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403


def test_on_call_reads_what_it_diagnoses_and_changes_nothing(k8s, deploy_path):
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    api = config.new_client_from_config(str(KUBECONFIG), context="colors-local-oncall")
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    assert core.list_namespaced_pod(NS).items
    assert apps.list_namespaced_deployment(NS).items
    assert core.list_node().items
    for call in (lambda: core.list_namespaced_secret(NS),
                 lambda: core.delete_collection_namespaced_pod(NS),
                 lambda: apps.patch_namespaced_deployment_scale("colors", NS, {"spec": {"replicas": 0}})):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403
