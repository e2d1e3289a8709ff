#!/usr/bin/env python3
"""The staging rehearsal (`make rehearsal`): inventories/staging, unchanged but for where its endpoints are
(localplatform/rehearsal/staging.yml), from the pipeline to the pods, on the local platform.

  account         staging's AWS account in the local AWS API (moto): the administrator who makes the first apply,
                  AWX's execution role, the Terraform state bucket (terraform/bootstrap); then IAM is enforced in
                  that account: every later AWS call is allowed only by the caller's own policies (other accounts,
                  the local environment's among them, are left as they are)
  infrastructure  Terraform's staging environment applied as that administrator (infrastructure.yml), only what the
                  local AWS API cannot hold left out (localplatform/rehearsal/aws-gaps.yml); EKS then serves the
                  staging cluster at the local API server (its endpoint, CA and tokens: moto_eks.py)
  database        a real PostgreSQL for RDS: TLS only, its own CA (served as RDS's regional bundle is), an empty
                  database owned by a dedicated application user, whose URL goes into Secrets Manager as the
                  runbook's step after the first apply says
  publish         the release's image pushed to the registry standing in for ECR (the worker node pulls it)
  bootstrap       bootstrap.yml as AWX runs it: the infrastructure role (assumed from AWX's execution role), whose
                  access entry makes it cluster administrator, through the kubeconfig `make kubeconfig` writes
  deploy          the deploy workflow's staging job under act, as GitHub runs it (uid 1001, the operations
                  toolchain, the deploy role assumed with the job's OIDC token, its EKS token): `make deploy`
  verify          the release serves from the worker node, on PostgreSQL as the application user, over TLS
  drills          as the deployer (AWX's job templates' identities), under a steady load through the Service: a
                  release switches colours, a crash-looping release fails its gates and restores itself,
                  rollback.yml to the first version, rotate-secrets.yml rotates the keys and the database login,
                  a contract migration's release whose rollback is refused naming it; failed requests counted
                  (goal 0), time from bad release to restored. Each release that switches is decided by staging's
                  canary judge under that load (it must pass)

It prints each phase's time and exits non-zero naming the first phase that failed. IAM enforcement is switched off
again at the end, whatever happened. Run it on a running local platform with the image built (`make rehearsal`).

`--until infrastructure` stops after that phase and keeps what the later phases need (<state>/rehearsal/state.json);
`--resume` goes on from there (or runs every phase when no run is paused). The AWS phases touch neither the cluster
nor the local environment's account, so `make test` runs them beside other tests, and only the rest alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "localplatform"), str(REPO / "app")]

from colors_platform.config import Config  # noqa: E402
from colors_platform.database import database_certificates, postgres_server, served_bundle  # noqa: E402
from colors_platform.workflows import fake_oidc_token, job_steps, run_job, said  # noqa: E402

CFG = Config.load()
STAGING = yaml.safe_load((REPO / "inventories" / "staging" / "group_vars" / "all" / "main.yml").read_text())
ENVIRONMENT, REGION, ACCOUNT = STAGING["colors_environment"], STAGING["colors_aws_region"], \
    STAGING["colors_aws_account_id"]
CLUSTER = f"colors-{ENVIRONMENT}"
MOTO = f"http://127.0.0.1:{CFG.ports['moto']}"
REGISTRY = CFG.registry_host
OVERLAY = REPO / "localplatform" / "rehearsal" / "staging.yml"
AWS_GAPS = REPO / "localplatform" / "rehearsal" / "aws-gaps.yml"
WORK = CFG.state / "rehearsal"
REPOSITORY = "colors/colors-deploy"  # the GitHub repository the pipeline roles trust
ADMINISTRATOR = f"arn:aws:iam::{ACCOUNT}:role/colors-rehearsal-administrator"
AWX_EXECUTION = STAGING.get("awx_execution_role_arn", f"arn:aws:iam::{ACCOUNT}:role/colors-awx-execution")
APP_USER = "colors_app"
MASTER_USER = "colors"  # the superuser of the rehearsal's PostgreSQL (colors_platform.database.postgres_server)
CA_PATH = "/etc/colors/database-ca/ca.pem"  # where app_release mounts the bundle (database_url's sslrootcert)


class PhaseFailed(Exception):
    pass


def log(message: str) -> None:
    print(f"[rehearsal] {time.strftime('%H:%M:%S')} {message}", flush=True)


# --- the local AWS API ---------------------------------------------------------------------------------------------


def aws(service: str, credentials: dict[str, str] | None = None, account: str | None = ACCOUNT):
    """A boto3 client of moto: with a session's credentials, or as the account's setup (before IAM is enforced)."""
    import boto3

    keys = credentials or {"aws_access_key_id": "rehearsal", "aws_secret_access_key": "rehearsal"}
    client = boto3.session.Session(region_name=REGION, **keys).client(service, endpoint_url=MOTO)
    if credentials is None and account:
        client.meta.events.register(f"before-send.{service}.*",
                                    lambda request, **_: request.headers.__setitem__("x-moto-account-id", account))
    return client


def assume(role_arn: str, session: str, credentials: dict[str, str] | None = None) -> dict[str, str]:
    creds = aws("sts", credentials).assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]
    return {"aws_access_key_id": creds["AccessKeyId"], "aws_secret_access_key": creds["SecretAccessKey"],
            "aws_session_token": creds["SessionToken"]}


def as_env(credentials: dict[str, str]) -> dict[str, str]:
    return {key.upper(): value for key, value in credentials.items()}


def iam_enforcement(on: bool) -> None:
    """moto checks every request in staging's account against the caller's IAM policies from now on (on), or none
    again (off); the other accounts are not touched (moto_server.py's /moto-api/enforce-iam)."""
    request = urllib.request.Request(f"{MOTO}/moto-api/enforce-iam", method="POST",  # noqa: S310
                                     data=json.dumps({"accounts": [ACCOUNT] if on else []}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()  # noqa: S310 # nosec B310 - the local AWS API


# --- running the project's own commands ----------------------------------------------------------------------------


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800,
        check: bool = True) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # Terraform's providers from this machine's mirror (a runner or the EE has its own installation).
    full = dict(base, TF_CLI_CONFIG_FILE=str(CFG.state / "terraform.rc"),
                ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                PATH=os.pathsep.join([str(CFG.bin_links), str(Path(sys.executable).parent), base["PATH"]]),
                **(env or {}))
    result = subprocess.run(argv, cwd=REPO, env=full, capture_output=True, text=True, timeout=timeout, check=False)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", " ".join(Path(a).name for a in argv[:3]))[:80]
    (WORK / "logs" / f"{time.strftime('%H%M%S')}-{name}.log").write_text(result.stdout + result.stderr)
    if check and result.returncode != 0:
        raise PhaseFailed(f"`{' '.join(argv)}` failed (exit {result.returncode}):\n"
                          f"{(result.stdout + result.stderr)[-4000:]}")
    return result


def playbook(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """ansible-playbook of the operations toolchain (what runners and AWX run) on staging with the overlay."""
    ops = Path(os.environ.get("COLORS_OPS_VENV", "")) / "bin" / "ansible-playbook"
    binary = str(ops) if ops.is_file() else str(Path(sys.executable).parent / "ansible-playbook")
    return run([binary, *args[:1], "-i", "inventories/staging", "-e", f"@{OVERLAY}", *args[1:]], env=env,
               check=check)


# --- phases ----------------------------------------------------------------------------------------------------------


def account(state: dict) -> None:
    """The administrator and AWX's execution role (outside the stack, as in an AWS account), the state bucket."""
    iam = aws("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]})
    for arn, policy in ((ADMINISTRATOR, "arn:aws:iam::aws:policy/AdministratorAccess"), (AWX_EXECUTION, None)):
        name = arn.rsplit("/", 1)[1]
        with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
        if policy:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy)
    # AWX's execution nodes may assume the infrastructure role (its trust names them) and nothing else.
    iam.put_role_policy(RoleName=AWX_EXECUTION.rsplit("/", 1)[1], PolicyName="assume-colors-roles",
                        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]}))
    state["administrator"] = assume(ADMINISTRATOR, "rehearsal-administrator")
    # What AWX's execution node gets from its instance metadata: its role's session, issued by EC2, not assumed.
    state["awx"] = assume(AWX_EXECUTION, "i-0awxexecution")
    # The state bucket of environments/staging/backend.hcl: terraform/bootstrap, as the administrator runs it once.
    bootstrap = WORK / "bootstrap"
    bootstrap.mkdir(parents=True, exist_ok=True)
    env = {**as_env(state["administrator"]), "AWS_ENDPOINT_URL": MOTO, "AWS_REGION": REGION,
           "AWS_S3_USE_PATH_STYLE": "true", "TF_DATA_DIR": str(bootstrap / ".terraform"), "TF_IN_AUTOMATION": "1"}
    tf = ["terraform", "-chdir=terraform/bootstrap"]
    run([*tf, "init", "-input=false"], env=env)
    run([*tf, "apply", "-input=false", "-auto-approve", f"-state={bootstrap / 'terraform.tfstate'}",
         f"-var=environment={ENVIRONMENT}", f"-var=aws_region={REGION}"], env=env)
    iam_enforcement(True)
    state["enforced"] = True
    log("IAM enforced: every AWS call from here on is allowed by the caller's own policies only")


def infrastructure(state: dict) -> None:
    env = {**as_env(state["administrator"]), "AWS_REGION": REGION}
    playbook("infrastructure.yml", "-e", f"@{AWS_GAPS}", env=env)
    run([sys.executable, "localplatform/platformctl.py", "serve-cluster", CLUSTER, "--account", ACCOUNT, "--region",
         REGION])


def database(state: dict, stack: contextlib.ExitStack) -> None:
    import psycopg
    from psycopg import sql

    address = node_address()
    (WORK / "database-ca").mkdir(parents=True, exist_ok=True)
    certificates = database_certificates(WORK / "database-ca", address)
    superuser, _, _ = stack.enter_context(postgres_server(address, tls=certificates.server))
    url, _ = stack.enter_context(served_bundle(certificates.ca))
    password, master_password = uuid.uuid4().hex, uuid.uuid4().hex
    with psycopg.connect(superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(MASTER_USER),
                                                                sql.Literal(master_password)))
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP_USER),
                                                                       sql.Literal(password)))
        conn.execute(sql.SQL("CREATE DATABASE colors_app OWNER {}").format(sql.Identifier(APP_USER)))
    port = superuser.rsplit(":", 1)[1].split("/", 1)[0]
    state["database"] = {"superuser": superuser.rsplit("/", 1)[0] + "/colors_app", "address": address}
    os.environ["COLORS_REHEARSAL_DATABASE_CA_URL"] = url
    os.environ["COLORS_REHEARSAL_DATABASE_CIDR"] = f"{address}/32"
    # What RDS keeps in the master secret it manages (manage_master_user_password): this server's master login.
    secrets = aws("secretsmanager", state["administrator"], account=None)
    instance = aws("rds", state["administrator"], account=None).describe_db_instances(
        DBInstanceIdentifier=CLUSTER)["DBInstances"][0]
    secrets.put_secret_value(SecretId=instance["MasterUserSecret"]["SecretArn"],
                             SecretString=json.dumps({"username": MASTER_USER, "password": master_password}))
    # The runbook's step after the first apply ("Database connection secret"): database_url into the app's secret.
    secret_id = f"colors-{ENVIRONMENT}/app"
    value = json.loads(secrets.get_secret_value(SecretId=secret_id)["SecretString"])
    value["database_url"] = (f"postgresql://{APP_USER}:{password}@{address}:{port}/colors_app"
                             f"?sslmode=verify-full&sslrootcert={CA_PATH}")
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))


def node_address() -> str:
    """The worker node's host address: where its pods reach the host (the rehearsal's database)."""
    node = kube().read_node(CFG.node["name"])
    return next(a.address for a in node.status.addresses if a.type == "InternalIP")


def publish(state: dict) -> None:
    run(["make", "--no-print-directory", "publish", f"REGISTRY={REGISTRY}"], check=False)
    state["version"] = state.get("version") or app_version()


def app_version() -> str:
    import tomllib

    return tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]


def bootstrap(state: dict) -> None:
    """As AWX runs it: the execution node's role assumes the infrastructure role (the job template's credential)."""
    infra_role = f"arn:aws:iam::{ACCOUNT}:role/colors-{ENVIRONMENT}-infrastructure"
    infra = assume(infra_role, "awx-cluster-bootstrap", state["awx"])
    kubeconfig = WORK / "kubeconfig"
    env = {**as_env(infra), "AWS_REGION": REGION, "KUBECONFIG": str(kubeconfig)}
    playbook("playbooks/kubeconfig.yml", env=env)
    # The AWS Load Balancer Controller's chart cannot be fetched here (no chart repository): its part is skipped.
    playbook("bootstrap.yml", "--skip-tags", "bootstrap_load_balancer", env=env)
    # The Colors pods hold the security group the database admits (security groups for pods): the policies name the
    # group staging's Terraform made, as bootstrap.yml looked it up (nothing here acts on them: no ENIs).
    (group,) = aws("ec2", infra, account=None).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"colors-{ENVIRONMENT}-app-pods"]}])["SecurityGroups"]
    from kubernetes import client

    policies = client.CustomObjectsApi(kube().api_client).list_namespaced_custom_object(
        "vpcresources.k8s.aws", "v1beta1", "colors", "securitygrouppolicies")["items"]
    given = {p["metadata"]["name"]: p["spec"]["securityGroups"]["groupIds"] for p in policies}
    if given != {"colors-app-pods": [group["GroupId"]], "colors-migrations": [group["GroupId"]]}:
        raise PhaseFailed(f"the SecurityGroupPolicies give {given}, not {group['GroupId']} ({group['GroupName']}) to "
                          "the application's pods and its migration Jobs")
    state["pod_security_group"] = {"id": group["GroupId"], "policies": sorted(given)}
    log(f"the application's pods and migration Jobs get {group['GroupName']} ({group['GroupId']}), which the "
        "database admits (SecurityGroupPolicies)")


# The relay the staging Prometheus Service selects: the API server's service proxy reaches pods only, and the local
# Prometheus is a process of the host, so a pod of the release's image relays to it (through the host forwarder).
RELAY = """
import socket, sys, threading
target = (sys.argv[1], int(sys.argv[2]))
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
server = socket.create_server(("0.0.0.0", 9090))
while True:
    conn, _ = server.accept()
    try:
        upstream = socket.create_connection(target, timeout=5)
    except OSError:
        conn.close()
        continue
    for a, b in ((conn, upstream), (upstream, conn)):
        threading.Thread(target=pipe, args=(a, b), daemon=True).start()
"""


def monitoring(state: dict, stack: contextlib.ExitStack) -> None:
    """Staging's Prometheus (kube-prometheus-stack, which monitoring.yml installs: no chart can be fetched here) is
    the local platform's, set up by the project's monitoring role (its PodMonitor's scrape job, its rules) and
    reached where staging's is: the Service monitoring/monitoring-prometheus, port http-web, whose pod relays to
    the local Prometheus (the API server's service proxy reaches pods only; the local Prometheus listens on the
    host's loopback, so a forwarder on the node's address stands between)."""
    from kubernetes import client

    # The local Prometheus as the monitoring role sets it up (its PodMonitor's scrape job, its rules).
    run([str(Path(sys.executable).parent / "ansible-playbook"), "monitoring.yml", "-i", "inventories/local"])
    address = node_address()
    port = stack.enter_context(forwarded(address, CFG.ports["prometheus"]))
    service = STAGING["app_release_prometheus_service"]
    namespace, name = service["namespace"], service["name"]
    labels = {"app.kubernetes.io/name": "prometheus-relay", "app.kubernetes.io/part-of": "colors-rehearsal"}
    core = kube()
    for delete in (core.delete_namespaced_pod, core.delete_namespaced_service):
        with contextlib.suppress(client.rest.ApiException):
            delete(name, namespace, grace_period_seconds=0)
    wait_until(lambda: not [p for p in core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/"
                                                                "name=prometheus-relay").items], 60, "old relay gone")
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"automountServiceAccountToken": False, "enableServiceLinks": False,
                 "containers": [{"name": "relay", "image": f"{REGISTRY}/colors:{state['version']}",
                                 "imagePullPolicy": "IfNotPresent", "command": ["python3", "-c", RELAY, address,
                                                                               str(port)],
                                 "ports": [{"name": service["port"], "containerPort": 9090}],
                                 "readinessProbe": {"tcpSocket": {"port": 9090}, "periodSeconds": 1}}]}})
    core.create_namespaced_service(namespace, {
        "metadata": {"name": name, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": service["port"], "port": 9090, "targetPort": 9090}]}})
    wait_until(lambda: all(c.ready for c in (core.read_namespaced_pod(name, namespace).status.container_statuses
                                              or [client.V1ContainerStatus(name="x", image="", image_id="",
                                                                           ready=False, restart_count=0)])),
               120, "the Prometheus relay pod ready")
    log(f"staging's Prometheus Service {namespace}/{name}:{service['port']} -> a relay pod -> the local "
        f"Prometheus ({address}:{port} -> 127.0.0.1:{CFG.ports['prometheus']})")


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise PhaseFailed(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


@contextlib.contextmanager
def forwarded(address: str, target_port: int) -> Iterator[int]:
    """A TCP forwarder from a free port of `address` to 127.0.0.1:target_port, for the rehearsal's duration."""
    import socket
    import threading

    listener = socket.create_server((address, 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def serve() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", target_port))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        listener.close()


def deploy(state: dict) -> None:
    image = build_runner_image()
    deploy_role = f"arn:aws:iam::{ACCOUNT}:role/colors-{ENVIRONMENT}-deploy"
    result = run_job("deploy.yml", ENVIRONMENT, image, WORK / f"act-{time.strftime('%H%M%S')}",
                     inputs={"version": state["version"], "promote": "false"},
                     variables={"AWS_DEPLOY_ROLE_ARN": deploy_role, "AWS_REGION": REGION},
                     env={"AWS_ENDPOINT_URL": MOTO, "OVERLAY": str(OVERLAY.relative_to(REPO)),
                          "COLORS_STAND_IN_OIDC_TOKEN": fake_oidc_token(REPOSITORY, ENVIRONMENT),
                          "COLORS_REHEARSAL_DATABASE_CA_URL": os.environ["COLORS_REHEARSAL_DATABASE_CA_URL"],
                          "COLORS_REHEARSAL_DATABASE_CIDR": os.environ["COLORS_REHEARSAL_DATABASE_CIDR"]})
    out = result.stdout + result.stderr
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    (WORK / "logs" / "deploy-workflow.log").write_text(out)
    steps = job_steps(out)
    state["deploy_steps"] = steps
    if result.returncode != 0:
        raise PhaseFailed(f"the deploy workflow's {ENVIRONMENT} job failed: {steps}\n{said(out)[-3000:]}")


# The drills' releases: the next version (the same image under another tag, published for the switch there and back)
# and a release that crash-loops (app/build_image.py's drill image), each pushed to the registry the kubelet pulls from.
SUFFIXES = {"switch": "-rehearsal-switch", "crash": "-drill-crashloop", "contract": "-drill-contract"}
# Requests/s of GET / through the Service, each on a connection of its own. The canary judge passes a new colour once
# it has about 2000 requests of its own (p99 within 20 ms at alpha 0.001): 40 s a release at 50/s (100 s at 20/s).
LOAD_RATE, LOAD_WORKERS = 50, 6


def push_drill_images(version: str) -> dict[str, str]:
    """The drill versions in the registry, as the registry holds a release (a tag of the repository the inventory
    pulls from): what `make image` built, tagged again for the registry. Each tag ends in its image's id, as tags
    are immutable in ECR: another build is another version, never a tag the kubelet may have cached another
    image under."""
    pushed = {}
    for name, suffix in SUFFIXES.items():
        source = f"localhost/colors:{version}{'' if name == 'switch' else suffix}"
        image_id = run(["docker", "image", "inspect", "--format", "{{.Id}}", source]).stdout.strip()
        tag = f"{version}{suffix}.i{image_id.split(':')[-1][:12]}"
        target = f"{REGISTRY}/colors:{tag}"
        run(["docker", "tag", source, target])
        run(["docker", "push", "--quiet", target], timeout=600)
        pushed[name] = tag
    return pushed


def serving(namespace: str) -> dict:
    """What the Colors Service routes to, read from its selector and its ready endpoints (never assumed)."""
    from kubernetes import client

    core = kube()
    discovery = client.DiscoveryV1Api(core.api_client)
    service = core.read_namespaced_service("colors", namespace)
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector="kubernetes.io/service-name=colors")
    endpoints = [e for s in slices.items for e in (s.endpoints or [])
                 if e.conditions and e.conditions.ready and e.target_ref]
    ready = [e.target_ref.name for e in endpoints]
    pods = {p.metadata.name: p for p in core.list_namespaced_pod(namespace).items}
    versions = sorted({pods[name].metadata.labels.get("app.kubernetes.io/version", "?") for name in ready
                       if name in pods})
    return {"selector": dict(service.spec.selector or {}), "cluster_ip": service.spec.cluster_ip,
            "port": service.spec.ports[0].port, "ready_endpoints": len(ready), "versions": versions,
            "addresses": sorted({a for e in endpoints for a in e.addresses})}


# The drills whose release switches the Service: each is judged after its switch (staging's app_release_judge_enabled).
JUDGED = ("switch", "rollback", "rotation", "contract")


def judged(entry: dict) -> dict | None:
    """The canary judge's analysis of a ledger entry, in short: its state, looks, seconds, score, and each metric's
    outcome and requests on each side (None: not judged)."""
    analysis = entry.get("analysis")
    if not analysis:
        return None
    return {**{k: analysis.get(k) for k in ("state", "looks", "seconds", "score")},
            "metrics": {m["metric"]: {"outcome": m.get("outcome"),
                                      "canary": (m.get("canary") or {}).get("total"),
                                      "baseline": (m.get("baseline") or {}).get("total")}
                        for m in analysis.get("metrics") or []}}


def newest_ledger_entry(namespace: str) -> dict:
    """The release ledger's newest entry (the engine's ConfigMaps, read back)."""
    items = kube().list_namespaced_config_map(namespace, label_selector="colors.io/release-ledger=colors").items
    entries = [json.loads(item.data["entry"]) for item in items]
    return max(entries, key=lambda e: e["id"]) if entries else {}


def app_connections(state: dict, addresses: list[str]) -> list[tuple[str, bool]]:
    """(login user, over TLS) of each connection the pods at `addresses` (those the Service routes to) hold, as the
    server reports them. The other colour keeps the release before, and its login, for switching back."""
    import psycopg

    with psycopg.connect(state["database"]["superuser"]) as conn:
        return [tuple(row) for row in conn.execute(
            "SELECT a.usename, s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.application_name = 'colors' AND host(a.client_addr) = ANY(%s)", (addresses,)).fetchall()]


def drills(state: dict) -> None:
    """As the deployer, the way AWX's job templates run (its execution role assumes the deploy role, and the
    rollback role for rollback.yml and rotate-secrets.yml), under a steady load through the Colors Service: a
    release of the next version switches the Service to the idle colour; a crash-looping release fails its gates
    and restores itself while the Service stays where it was; rollback.yml to the first version releases it
    again to the idle colour and switches to it; rotate-secrets.yml rotates the keys and the database login (the
    login not in use gets a new password) and rolls the pods onto it; a release whose migration is not
    expand-only goes out, and rollback.yml is refused naming the migration. Failed requests are counted across
    all of it (goal 0), and the time from the bad release's start to restored is measured."""
    sys.path.insert(0, str(REPO / "bench"))
    from zero_downtime_bench import Load

    namespace = STAGING.get("app_release_namespace", "colors")
    version = state["version"]
    tags = push_drill_images(version)
    kubeconfig = str(WORK / "kubeconfig")
    identities = {kind: {**as_env(assume(f"arn:aws:iam::{ACCOUNT}:role/colors-{ENVIRONMENT}-{kind}", f"awx-{kind}",
                                        state["awx"])), "AWS_REGION": REGION, "KUBECONFIG": kubeconfig}
                  for kind in ("deploy", "rollback")}
    before = serving(namespace)
    if before["versions"] != [version]:
        raise PhaseFailed(f"the Service routes to {before['versions']}, not {version}, before the drills")
    load = Load(before["cluster_ip"], before["port"], rate=LOAD_RATE, workers=LOAD_WORKERS, keepalive=False,
                timeout=5).start()
    results: dict = {}

    def timed(step: str, *args: str, identity: str, expect: str | None, check: bool = True,
              seconds: str = "seconds") -> subprocess.CompletedProcess:
        """One playbook as `identity`, timed; what the Service routes to afterwards goes into results[step], and
        must be `expect` (a version) when given."""
        began = time.monotonic()
        result = playbook(*args, env=identities[identity], check=check)
        results[step] = {seconds: round(time.monotonic() - began, 1), **serving(namespace),
                         "judge": judged(newest_ledger_entry(namespace))}
        if expect is not None and results[step]["versions"] != [expect]:
            raise PhaseFailed(f"after {step} ({args[0]}) the Service routes to {results[step]['versions']}, "
                              f"not {expect} (the canary judge: {results[step]['judge']})")
        return result

    try:
        timed("switch", "deploy.yml", "-e", f"app_release_version={tags['switch']}", identity="deploy",
              expect=tags["switch"])
        crash = timed("crash", "deploy.yml", "-e", f"app_release_version={tags['crash']}", identity="deploy",
                      expect=None, check=False, seconds="seconds_to_restored")
        out = " ".join(crash.stdout.split())
        gate = re.search(rf"Release {re.escape(tags['crash'])} \(\S+\) failed gate (\S+)", out)
        results["crash"]["gate"] = gate.group(1) if gate else None
        if crash.returncode == 0 or not gate:
            raise PhaseFailed(f"the crash-looping release did not fail a gate (exit {crash.returncode}):\n"
                              f"{said(crash.stdout + crash.stderr)[-3000:]}")
        if results["crash"]["versions"] != [tags["switch"]] or results["crash"]["selector"] != \
                results["switch"]["selector"]:
            raise PhaseFailed(f"after the crash-looping release the Service routes to {results['crash']}, not to "
                              f"{tags['switch']} as before it")
        # As after an incident: the version chosen (the colours hold it no longer: the crash-looping release went
        # to the idle one), released again to the idle colour through the gates.
        timed("rollback", "rollback.yml", "-e", f"app_release_rollback_to_version={version}", identity="rollback",
              expect=version)
        recorded = newest_ledger_entry(namespace)  # a restoration, not a change, for the release report
        results["rollback"]["recorded"] = {k: recorded.get(k) for k in ("version", "strategy", "verdict", "rollback")}
        if results["rollback"]["recorded"] != {"version": version, "strategy": "blue_green", "verdict": "succeeded",
                                               "rollback": True}:
            raise PhaseFailed(f"the rollback to {version} is recorded as {results['rollback']['recorded']}, not as a "
                              "blue-green rollback that succeeded")
        timed("rotation", "rotate-secrets.yml", identity="rollback", expect=version)
        results["rotation"]["connections"] = app_connections(state, results["rotation"]["addresses"])
        # A release whose migration is not expand-only; then rollback.yml, refused naming it, nothing changed.
        timed("contract", "deploy.yml", "-e", f"app_release_version={tags['contract']}", identity="deploy",
              expect=tags["contract"])
        refused = playbook("rollback.yml", env=identities["rollback"], check=False)
        said_there = " ".join(refused.stdout.split())
        named = re.search(r"refused: release (\S+) \(\S+\) ran migration (\S+), which is not expand-only", said_there)
        results["contract"]["rollback"] = {"exit": refused.returncode, **serving(namespace),
                                           **({"release": named.group(1), "migration": named.group(2)} if named
                                              else {})}
        if refused.returncode == 0 or not named or \
                results["contract"]["rollback"]["selector"] != results["contract"]["selector"]:
            raise PhaseFailed(f"rollback.yml past the contract migration was not refused as it should be "
                              f"(exit {refused.returncode}): {said(refused.stdout)[-2000:]}")
    finally:
        results["load"] = load.stop()
        state["drills"] = results
    measured = results["load"]
    # Every release that switched was judged under the load against the colour serving before it, and passed.
    undecided = {step: results[step]["judge"] for step in JUDGED if (results[step]["judge"] or {}).get("state") !=
                 "passed"}
    if undecided:
        raise PhaseFailed(f"releases the canary judge did not pass after their switch: {undecided}")
    logins = sorted({user for user, _ in results["rotation"]["connections"]})
    if logins != [f"{APP_USER}_clone"] or not all(tls for _, tls in results["rotation"]["connections"]):
        raise PhaseFailed(f"after the rotation the pods the Service routes to connect as "
                          f"{results['rotation']['connections']}, not only as {APP_USER}_clone over TLS")
    log(f"drills under load ({measured['requests']} requests, {measured['rate']}/s): switch to {tags['switch']} "
        f"{results['switch']['seconds']} s; {tags['crash']} failed gate {results['crash']['gate']} and was "
        f"restored {results['crash']['seconds_to_restored']} s after its start; rollback.yml "
        f"{results['rollback']['seconds']} s; rotate-secrets.yml {results['rotation']['seconds']} s (the database "
        f"login now {', '.join(logins)}); {tags['contract']} ran {results['contract']['rollback']['migration']} "
        f"({results['contract']['seconds']} s) and rollback.yml was refused naming it; the judge passed "
        + ", ".join(f"{step} after {results[step]['judge']['seconds']} s" for step in JUDGED)
        + f"; failed requests: {measured['failed']} {measured['failures'] or ''}")
    if measured["failed"]:
        raise PhaseFailed(f"{measured['failed']} requests failed during the drills: {measured['failures']}")


def build_runner_image() -> str:
    built = run([sys.executable, "localplatform/runner/build_runner_image.py"], timeout=900)
    return built.stdout.strip().splitlines()[-1]


def verify(state: dict) -> None:
    import psycopg

    pods = [p for p in kube().list_namespaced_pod(
        STAGING.get("app_release_namespace", "colors"), label_selector="app.kubernetes.io/name=colors").items
        if p.metadata.deletion_timestamp is None and p.status.container_statuses
        and all(c.ready for c in p.status.container_statuses)]
    versions = {p.metadata.labels["app.kubernetes.io/version"] for p in pods}
    if versions != {state["version"]}:
        raise PhaseFailed(f"the ready Colors pods run {sorted(versions) or 'nothing'}, not {state['version']}")
    images = {c.image for p in pods for c in p.spec.containers}
    if images != {f"{REGISTRY}/colors:{state['version']}"}:
        raise PhaseFailed(f"the pods run {sorted(images)}, not the image pulled from {REGISTRY}")
    with psycopg.connect(state["database"]["superuser"]) as conn:
        connections = conn.execute(
            "SELECT s.ssl, host(a.client_addr) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
            " WHERE a.usename = %s", (APP_USER,)).fetchall()
    if not connections or not all(tls for tls, _ in connections):
        raise PhaseFailed(f"the application user's connections are not all over TLS: {connections}")
    state["pods"] = [{"name": p.metadata.name, "node": p.spec.node_name, "ip": p.status.pod_ip} for p in pods]
    log(f"Colors {state['version']} serves from {len(pods)} pods on {sorted({p.spec.node_name for p in pods})}, "
        f"pulled from {REGISTRY}; {len(connections)} database connections as {APP_USER}, all over TLS")


PHASES: list[tuple[str, Callable]] = [
    ("account", account), ("infrastructure", infrastructure), ("database", database), ("publish", publish),
    ("bootstrap", bootstrap), ("monitoring", monitoring), ("deploy", deploy), ("verify", verify),
    ("drills", drills)]
# The phases that keep something running until the rehearsal ends (a server, a forwarder): they get the exit stack.
WITH_STACK = {"database", "monitoring"}


def kube():
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(config_file=str(CFG.kubeconfig)))


def delete_namespace(core, name: str, timeout: float = 180) -> None:
    from kubernetes.client.rest import ApiException

    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(1)
    raise PhaseFailed(f"namespace {name} was not deleted within {timeout:.0f} s")


@contextlib.contextmanager
def staging_cluster() -> Iterator[None]:
    """The local cluster as staging's: its nodes are EKS's managed nodes, which run any pod - the real worker node
    without the taint that keeps everything but the local inventory's app off it, the simulated nodes (they run no
    container) cordoned - and staging's application namespace as a first bootstrap finds it: absent (the local
    release in it is deleted). Put back as it was afterwards; the local release is not: `make deploy` brings it."""
    core = kube()
    namespace = STAGING.get("app_release_namespace", "colors")
    worker = core.read_node(CFG.node["name"])
    taints = worker.spec.taints or []
    simulated = [node["name"] for node in CFG.data["kwok_nodes"]]
    delete_namespace(core, namespace)
    core.patch_node(worker.metadata.name, {"spec": {"taints": None}})
    for name in simulated:
        core.patch_node(name, {"spec": {"unschedulable": True}})
    log(f"cluster as staging's: {worker.metadata.name} untainted, {', '.join(simulated) or 'no simulated node'} "
        f"cordoned, namespace {namespace} deleted")
    try:
        yield
    finally:
        delete_namespace(core, namespace)
        for name in simulated:
            core.patch_node(name, {"spec": {"unschedulable": None}})
        core.patch_node(worker.metadata.name, {"spec": {"taints": [t.to_dict() for t in taints] or None}})
        log("cluster put back: the worker node tainted again, the simulated nodes schedulable, namespace "
            f"{namespace} deleted (`make deploy` releases the local one again)")


@contextlib.contextmanager
def enforcement_lifted(state: dict) -> Iterator[None]:
    try:
        yield
    finally:
        if state.get("enforced"):
            iam_enforcement(False)
            log("IAM enforcement switched off again")


# The phases that change the cluster: `staging_cluster` holds it as staging's while they run.
CLUSTER_PHASES = {"bootstrap", "monitoring", "deploy", "verify", "drills"}
SAVED = WORK / "state.json"


def paused_run() -> dict | None:
    """What a run stopped by --until left for --resume (None when no run is paused)."""
    if not SAVED.is_file():
        return None
    saved = json.loads(SAVED.read_text())
    return saved if saved.get("paused") else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--version", help="the release to rehearse (default: the tree's app version)")
    names = [name for name, _ in PHASES]
    parser.add_argument("--until", choices=names, help="stop after this phase, kept for --resume")
    parser.add_argument("--resume", action="store_true", help="go on after the phase a run with --until stopped at")
    args = parser.parse_args()
    # Stopped (SIGTERM), it still puts the cluster back and lifts IAM enforcement: the `finally` blocks run.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    WORK.mkdir(parents=True, exist_ok=True)
    saved = paused_run() if args.resume else None
    state: dict = saved["state"] if saved else {"version": args.version}
    timings: list[tuple[str, float]] = list(saved["timings"].items()) if saved else []
    todo = names[names.index(saved["paused"]) + 1:] if saved else names
    if args.until:
        todo = todo[:todo.index(args.until) + 1] if args.until in todo else []
    if saved:
        log(f"resuming the run paused after {saved['paused']}: {', '.join(todo)}")
    SAVED.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack, enforcement_lifted(state):
        if state.get("enforced"):
            iam_enforcement(True)
            log("IAM enforced again in the account: every AWS call is allowed by the caller's own policies only")
        if CLUSTER_PHASES & set(todo):
            stack.enter_context(staging_cluster())
        for name, phase in PHASES:
            if name not in todo:
                continue
            log(f"{name} ...")
            began = time.monotonic()
            try:
                phase(state, stack) if name in WITH_STACK else phase(state)
            except Exception as exc:  # any failure ends the rehearsal, naming its phase
                log(f"{name} FAILED after {time.monotonic() - began:.0f} s: {exc}")
                return 1
            timings.append((name, time.monotonic() - began))
            log(f"{name} done in {timings[-1][1]:.1f} s")
    if args.until and todo and todo[-1] != names[-1]:
        SAVED.write_text(json.dumps({"paused": todo[-1], "state": state, "timings": dict(timings)}, default=str))
        log(f"paused after {todo[-1]}: `{Path(sys.argv[0]).name} --resume` goes on")
        return 0
    print("\n| phase | seconds |\n| --- | --- |")
    for name, seconds in timings:
        print(f"| {name} | {seconds:.1f} |")
    print(f"| **rehearsal** | **{sum(seconds for _, seconds in timings):.1f}** |")
    (WORK / "result.json").write_text(json.dumps({"timings": dict(timings), **{
        k: v for k, v in state.items() if k in ("version", "pods", "deploy_steps", "drills")}}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
