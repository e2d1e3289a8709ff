"""The release's database path as staging and prod run it: `app_release_store: postgres`, keys and the database URL
from Secrets Manager, the deployer's identity, a dedicated application user (not the server's superuser) on a real
PostgreSQL that the worker node's pods reach over the network, with a password and only over TLS, verified against
the CA bundle the release fetches from `app_release_database_ca_url` and mounts (sslmode=verify-full), as RDS's bundle
is provided in staging and prod. The first release starts from an empty database; the migration Job finishes before
any pod of the release starts; a migration that fails (here: a bundle that does not verify the server) stops the
release before its pods start, naming what the migration said, and the running release keeps serving. A release
whose migration is not expand-only is recorded so: no rollback, nor a release of the version before it, goes back
past it - each refused, naming the migration, with nothing changed."""

from __future__ import annotations

import datetime
import json
import uuid
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from colors_app.store import MIGRATIONS
from colors_platform.database import database_certificates, served_bundle
from helpers import APP_VERSION, ansible_playbook, image_as, moto_client, postgres_server

pytestmark = [pytest.mark.platform, pytest.mark.usefixtures("worker_node")]
NS = "migrations"
SECRET_ID = "colors-local/migrations"  # noqa: S105 - a name: the values are generated below
APP_USER = "colors_app"
FIRST, SECOND, CONTRACTING = "6.0.0", "6.1.0", "6.2.0"
# A migration that is not expand-only: 6.1.0 inserts palettes without an author, so it cannot run once this ran.
CONTRACT = "0004_contract_palette_author_required.sql"  # app/build_image.py's contract drill
CA_PATH = "/etc/colors/database-ca/ca.pem"  # where app_release mounts the bundle
# A NodePort of its own keeps the smoke gate on (30080: colors, 30081: test_worker_node); the metric gates are off (the
# local Prometheus' PodMonitor job watches the colors namespace).
NODE_PORT = 30082


@pytest.fixture(scope="module")
def certificates(worker_node, tmp_path_factory):
    """The database's own CA and its server certificate for the host's address; and a CA that signed nothing."""
    return database_certificates(tmp_path_factory.mktemp("database-ca"), worker_node["address"])


@pytest.fixture(scope="module")
def ca_url(certificates):
    """Where the release fetches the bundle (RDS: truststore.pki.rds.amazonaws.com); `served` is what it answers."""
    with served_bundle(certificates.ca) as (url, served):
        yield SimpleNamespace(url=url, served=served)


@pytest.fixture(scope="module")
def database(worker_node, certificates):
    """An empty database owned by the application user, on the host's address (where the pods reach it), TLS only."""
    import psycopg
    from psycopg import sql

    password = uuid.uuid4().hex
    with postgres_server(worker_node["address"], tls=certificates.server) as (superuser_url, stop, start):
        with psycopg.connect(superuser_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(APP_USER),
                                                                           sql.Literal(password)))
            conn.execute(sql.SQL("CREATE DATABASE colors_app OWNER {}").format(sql.Identifier(APP_USER)))
        port = urlsplit(superuser_url).port
        yield SimpleNamespace(
            superuser=superuser_url.rsplit("/", 1)[0] + "/colors_app",
            url=f"postgresql://{APP_USER}:{password}@{worker_node['address']}:{port}/colors_app"
                f"?sslmode=verify-full&sslrootcert={CA_PATH}",
            stop=stop, start=start)


@pytest.fixture(scope="module")
def secret(database):
    """The app's secret as staging keeps it in Secrets Manager (database_url included)."""
    client = moto_client("secretsmanager")
    client.create_secret(Name=SECRET_ID, SecretString=json.dumps({
        "api_key": uuid.uuid4().hex, "session_key": uuid.uuid4().hex, "database_url": database.url}))
    yield
    client.delete_secret(SecretId=SECRET_ID, ForceDeleteWithoutRecovery=True)


@pytest.fixture(scope="module")
def namespace(k8s, secret):
    yield NS
    from kubernetes import client

    core, _, api = k8s
    core.delete_namespace(NS)
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.delete_cluster_role_binding(f"colors-deployer-namespace-{NS}")
    rbac.delete_cluster_role(f"colors-deployer-namespace-{NS}")


def deploy(ca_url, version: str, *extra: str, built: bool = False):
    """deploy.yml of `version`: the tree's image tagged so, unless `built` (an image of its own under that tag)."""
    return ansible_playbook(
        "deploy.yml", "-i", "inventories/local",
        "-e", f"app_release_version={version if built else image_as(version)}",
        "-e", f"app_release_database_ca_url={ca_url.url}",
        "-e", f"app_release_namespace={NS}", "-e", f"cluster_bootstrap_app_namespace={NS}",
        "-e", f"app_release_node_port={NODE_PORT}", "-e", "app_release_prometheus_url=",
        "-e", "app_release_store=postgres",
        "-e", "app_secrets_source=secretsmanager", "-e", f"app_secrets_secretsmanager_id={SECRET_ID}", *extra)


def migration_jobs(k8s, version: str) -> list:
    from kubernetes import client

    jobs = client.BatchV1Api(k8s[2]).list_namespaced_job(
        NS, label_selector=f"app.kubernetes.io/name=colors-migrate,app.kubernetes.io/version={version}").items
    return sorted(jobs, key=lambda job: job.metadata.creation_timestamp)


def release_pods(k8s, version: str) -> list:
    return k8s[0].list_namespaced_pod(
        NS, label_selector=f"app.kubernetes.io/name=colors,app.kubernetes.io/version={version}").items


def ready(pods: list) -> bool:
    return bool(pods) and all(p.status.container_statuses and p.status.container_statuses[0].ready for p in pods)


def bundle_of(pod) -> str:
    """The ConfigMap of the CA bundle the pod mounts."""
    (name,) = [v.config_map.name for v in pod.spec.volumes if v.name == "database-ca"]
    return name


def applied(database) -> list[str]:
    import psycopg

    with psycopg.connect(database.superuser) as conn:
        owner = conn.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'schema_migrations'").fetchone()
        assert owner == (APP_USER,), f"the migrations ran as {owner}, not as the application user"
        return [name for (name,) in conn.execute("SELECT name FROM schema_migrations ORDER BY version")]


def app_connections(database) -> list[tuple[bool, str]]:
    """(TLS in use, client address) of each connection of the application user, as the server reports them."""
    import psycopg

    with psycopg.connect(database.superuser) as conn:
        return conn.execute("SELECT s.ssl, host(a.client_addr) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
                            " WHERE a.usename = %s", (APP_USER,)).fetchall()


def test_the_first_release_migrates_the_empty_database_before_its_pods_start(k8s, database, ca_url, namespace):
    import psycopg

    with psycopg.connect(database.superuser) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    result = deploy(ca_url, FIRST)
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"Colors {FIRST} is released" in result.stdout
    assert applied(database) == [name for name, _ in MIGRATIONS]
    (job,) = migration_jobs(k8s, FIRST)
    assert job.status.succeeded == 1, job.status
    pods = release_pods(k8s, FIRST)
    assert ready(pods)
    # Every pod of the release was created after its migration had finished.
    assert min(p.metadata.creation_timestamp for p in pods) >= job.status.completion_time, (
        job.status.completion_time, [p.metadata.creation_timestamp for p in pods])
    # The pods' connections come from the worker node's pod network, over TLS (the server accepts nothing else).
    connections = app_connections(database)
    assert connections and all(tls for tls, _ in connections), connections
    assert {address for _, address in connections} <= {p.status.pod_ip for p in pods}, connections
    configmap = k8s[0].read_namespaced_config_map(bundle_of(pods[0]), NS)
    assert configmap.immutable and configmap.data["ca.pem"].encode() == ca_url.served["pem"]
    # The same release again migrates nothing more: no second Job.
    again = deploy(ca_url, FIRST)
    assert again.returncode == 0, again.stdout[-4000:]
    assert [j.metadata.uid for j in migration_jobs(k8s, FIRST)] == [job.metadata.uid]


def test_a_migration_that_fails_stops_the_release_before_its_pods_start(k8s, database, ca_url, certificates,
                                                                         namespace):
    """A bundle that does not verify the database's certificate: the migration fails, the release stops, the
    running release keeps its own bundle and serves on."""
    running = release_pods(k8s, FIRST)
    ca_url.served["pem"] = certificates.other
    try:
        started = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        result = deploy(ca_url, SECOND, "-e", "app_release_migration_backoff_limit=0")
    finally:
        ca_url.served["pem"] = certificates.ca
    said = " ".join(result.stdout.split())
    assert result.returncode != 0
    assert f"The migrations of Colors {SECOND} failed (Job {NS}/colors-migrate-{SECOND}-" in said, said[-3000:]
    assert "BackoffLimitExceeded" in said and "migration failed: " in said and "certificate verify failed" in said
    assert "The running release was not changed." in said
    assert release_pods(k8s, SECOND) == [], "a pod of the release started though its migration failed"
    _, apps, _ = k8s
    assert apps.read_namespaced_deployment("colors", NS).spec.template.metadata.labels[
        "app.kubernetes.io/version"] == FIRST
    still = release_pods(k8s, FIRST)
    assert ready(still) and {p.metadata.uid for p in still} == {p.metadata.uid for p in running}
    assert {bundle_of(p) for p in still} == {bundle_of(running[0])}
    (failed,) = migration_jobs(k8s, SECOND)
    assert failed.status.failed == 1 and failed.metadata.creation_timestamp >= started

    # The right bundle again: the same release runs a new migration Job and goes out; the failed Job stays.
    result = deploy(ca_url, SECOND)
    assert result.returncode == 0, result.stdout[-4000:]
    jobs = migration_jobs(k8s, SECOND)
    assert len(jobs) == 2 and jobs[0].metadata.uid == failed.metadata.uid and jobs[1].status.succeeded == 1
    pods = release_pods(k8s, SECOND)
    assert ready(pods) and {bundle_of(p) for p in pods} == {bundle_of(running[0])}


def test_no_rollback_goes_back_past_a_migration_that_is_not_expand_only(k8s, database, ca_url, namespace):
    """The drill as the deployer: a release runs a contract migration; rollback.yml, and releasing the version
    before it again, are each refused naming the migration, and the release keeps serving."""
    contracting = image_as(CONTRACTING, source=f"localhost/colors:{APP_VERSION}-drill-contract")
    result = deploy(ca_url, contracting, built=True)
    assert result.returncode == 0, result.stdout[-4000:]
    assert applied(database)[-1] == CONTRACT
    entries = [json.loads(cm.data["entry"]) for cm in k8s[0].list_namespaced_config_map(
        NS, label_selector="colors.io/release-ledger=colors").items]
    (newest,) = [e for e in entries if e["version"] == CONTRACTING]
    assert newest["verdict"] == "succeeded" and newest["contract_migrations"] == [CONTRACT], newest
    serving = {p.metadata.uid for p in release_pods(k8s, CONTRACTING)}
    refused = (f"refused: release {CONTRACTING} (localhost/colors:{CONTRACTING}) ran migration {CONTRACT}, which is "
               f"not expand-only (contract): localhost/colors:{SECOND} cannot run on that schema. Nothing was changed.")
    rolled = ansible_playbook("rollback.yml", "-i", "inventories/local", "-e", f"app_release_namespace={NS}",
                              "-e", f"cluster_bootstrap_app_namespace={NS}")
    said = " ".join(rolled.stdout.split())
    assert rolled.returncode != 0 and f"Rollback to localhost/colors:{SECOND} {refused}" in said, said[-3000:]
    again = deploy(ca_url, SECOND)
    said = " ".join(again.stdout.split())
    assert again.returncode != 0 and f"going back to localhost/colors:{SECOND} {refused}" in said, said[-3000:]
    pods = release_pods(k8s, CONTRACTING)
    assert ready(pods) and {p.metadata.uid for p in pods} == serving
    assert release_pods(k8s, SECOND) == []
