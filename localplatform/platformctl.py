#!/usr/bin/env python3
"""Build, start, stop and check the local platform: the project's embedded default target.

The platform is real software on this machine, bound to loopback:

  etcd -> kube-apiserver (TLS, RBAC, admission) -> kube-controller-manager, kube-scheduler
       -> kwok (simulated kubelets; nodes are created by the local_platform role)
       -> one real worker node: containerd (its own instance) + runc, CNI bridge, kubelet, kube-proxy
          (where the host can run it: root, the Debian packages; otherwise the platform runs kwok-only)
  moto server (the AWS API that Terraform applies to)

Binaries are built from pinned Go modules (localplatform/build/*/go.mod) into a cache outside the
repository, keyed by version, and rebuilt only when missing. Runtime state (PKI, etcd data, logs,
pid files, kubeconfig) lives in the git-ignored ``.platform/`` folder of the checkout.

Commands: build, up, down, status, env, terraformrc, load-images.  ``up`` twice is a no-op; ``down`` stops only
processes this checkout started (pid files carry the process start time, so a reused pid is never signalled).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CONFIG = yaml.safe_load((HERE / "platform.yml").read_text())
STATE = Path(os.environ.get("COLORS_PLATFORM_STATE", REPO / ".platform"))
CACHE = Path(os.environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy"))
PORTS = CONFIG["ports"]
VERSIONS = CONFIG["versions"]


class PlatformError(Exception):
    """A problem the operator can act on; printed without a traceback."""


def log(msg: str) -> None:
    print(f"[platform] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------
# Binaries: pinned Go builds cached outside the repository
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GoBuild:
    name: str  # cache key prefix and module folder under localplatform/build
    version: str
    binaries: dict[str, str]  # binary name -> Go package
    ldflags: str = ""

    @property
    def bindir(self) -> Path:
        return CACHE / "bin" / f"{self.name}-v{self.version}"

    def missing(self) -> list[str]:
        return [b for b in self.binaries if not (self.bindir / b).is_file()]


def _k8s_ldflags(version: str) -> str:
    major, minor, _ = version.split(".")
    pkg = "k8s.io/component-base/version"
    return (f"-X {pkg}.gitVersion=v{version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
            f" -X {pkg}.gitTreeState=clean -X {pkg}.buildDate=1970-01-01T00:00:00Z")


BUILDS = [
    GoBuild("etcd", VERSIONS["etcd"], {"etcd": "go.etcd.io/etcd/server/v3"}),
    GoBuild("kubernetes", VERSIONS["kubernetes"], {
        "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
        "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
        "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
        # The client of the same minor as the server (the machine's kubectl may be older).
        "kubectl": "k8s.io/kubernetes/cmd/kubectl",
        # The real worker node.
        "kubelet": "k8s.io/kubernetes/cmd/kubelet",
        "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
    }, _k8s_ldflags(VERSIONS["kubernetes"])),
    # The sandbox process of the worker node's pods (no registry is reachable for registry.k8s.io/pause).
    GoBuild("pause", VERSIONS["pause"], {"pause": "colors.local/platform/pause"}),
    GoBuild("kwok", VERSIONS["kwok"], {
        "kwok": "sigs.k8s.io/kwok/cmd/kwok",
        # kwok's own cluster tool: the baseline of `make bench`.
        "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl",
    }),
    GoBuild("actionlint", VERSIONS["actionlint"], {"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"}),
    # VictoriaLogs (Apache-2.0): the local log store; the Colors container's Docker syslog driver ships to it.
    GoBuild("victorialogs", VERSIONS["victorialogs"],
            {"victoria-logs": "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"}),
    # Prometheus and promtool: Debian's build lacks Kubernetes service discovery, which finds the Colors pods here as
    # the Prometheus Operator's configuration finds them in a cluster.
    GoBuild("prometheus", VERSIONS["prometheus"], {
        "prometheus": "github.com/prometheus/prometheus/cmd/prometheus",
        "promtool": "github.com/prometheus/prometheus/cmd/promtool",
    }, f"-X github.com/prometheus/common/version.Version={VERSIONS['prometheus']}"
       f" -X github.com/prometheus/common/version.Branch=release"
       f" -X github.com/prometheus/common/version.Revision=v{VERSIONS['prometheus']}"),
    # An OCI registry: the local stand-in for ECR when `make publish` is tested (no registry is reachable here).
    GoBuild("registry", VERSIONS["registry"], {"registry": "github.com/distribution/distribution/v3/cmd/registry"}),
]


def binary(name: str) -> Path:
    for build in BUILDS:
        if name in build.binaries:
            return build.bindir / name
    raise KeyError(name)


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise PlatformError("the Go toolchain is not installed (needed once to build etcd, Kubernetes "
                            "and kwok from pinned modules); install Go >= 1.24 and run `make toolchain`")
    return go


BIN_LINKS = STATE / "bin"


def build_all(force: bool = False) -> bool:
    """Build every missing binary and link them into .platform/bin. Returns True when something was built."""
    built = False
    for build in BUILDS:
        todo = list(build.binaries) if force else build.missing()
        if todo:
            built = True
            _build(build, todo)
    BIN_LINKS.mkdir(parents=True, exist_ok=True)
    for build in BUILDS:
        for name in build.binaries:
            link = BIN_LINKS / name
            if not link.is_symlink() or os.readlink(link) != str(build.bindir / name):
                link.unlink(missing_ok=True)
                link.symlink_to(build.bindir / name)
    return built


def _build(build: GoBuild, todo: list[str]) -> None:
    go = _go()
    moddir = HERE / "build" / build.name
    tmp = build.bindir.with_name(build.bindir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    # CGO off: static binaries (the pause binary runs alone in an image FROM scratch).
    env = dict(os.environ, GOFLAGS=f"{os.environ.get('GOFLAGS', '')} -mod=readonly -trimpath".strip(),
               CGO_ENABLED="0")
    pkgs = [build.binaries[b] for b in todo]
    log(f"resolving the pinned modules of {build.name} v{build.version} (downloads them on a fresh machine)")
    total = len(subprocess.run([go, "list", "-deps", *pkgs], cwd=moddir, env=env, check=True,
                               capture_output=True, text=True).stdout.split())
    log(f"building {', '.join(todo)} v{build.version} ({total} packages; a first build takes "
        f"minutes on 2 cores, later ones come from {build.bindir})")
    start = time.monotonic()
    for name in todo:
        cmd = [go, "build", "-v", "-ldflags", f"-s -w {build.ldflags}".strip(), "-o", str(tmp / name),
               build.binaries[name]]
        proc = subprocess.Popen(cmd, cwd=moddir, env=env, stderr=subprocess.PIPE, text=True)
        tail: collections.deque[str] = collections.deque(maxlen=30)
        assert proc.stderr is not None
        for compiled, line in enumerate(proc.stderr, start=1):
            tail.append(line.rstrip())
            if compiled % 100 == 0:
                log(f"  {name}: {compiled}/{total} packages compiled, {time.monotonic() - start:.0f}s")
        if proc.wait() != 0:
            raise PlatformError(f"building {name} failed:\n" + "\n".join(tail))
        log(f"  {name}: built in {time.monotonic() - start:.0f}s")
    build.bindir.mkdir(parents=True, exist_ok=True)
    for name in todo:
        os.replace(tmp / name, build.bindir / name)
    shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# PKI and kubeconfigs
# ----------------------------------------------------------------------------------------------

PKI = STATE / "pki"
KUBECONFIG = STATE / "kubeconfig"
CONTEXT = "colors-local"


def host_ip() -> str:
    """The address the API server advertises (the endpoint of the `kubernetes` Service)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent; this only asks the routing table
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _identities() -> list[tuple[str, str, str | None, list[str] | None]]:
    """(file name, CN, O, server SANs or None for a client) of every certificate the platform uses."""
    domain = CONFIG["kubernetes"]["cluster_domain"]
    service_ip = str(next(ipaddress.ip_network(CONFIG["kubernetes"]["service_cidr"]).hosts()))
    node = CONFIG["worker_node"]["name"]
    return [
        ("apiserver", "kube-apiserver", None,
         ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
          f"kubernetes.default.svc.{domain}", "127.0.0.1", host_ip(), service_ip]),
        # Cluster administrator of the local platform (the kubeconfig handed to Ansible and to people).
        ("admin", "colors-local-admin", "system:masters", None),
        ("kube-controller-manager", "system:kube-controller-manager", None, None),
        ("kube-scheduler", "system:kube-scheduler", None, None),
        # kwok stands in for every simulated kubelet at once, which the Node authorizer cannot express.
        ("kwok", "kwok-controller", "system:masters", None),
        # The real worker node: its kubelet is a node to the Node authorizer, kube-proxy has its default binding
        # (system:node-proxier), and the API server presents its own identity to the kubelet (logs, exec).
        ("kubelet", f"system:node:{node}", "system:nodes", None),
        ("kubelet-server", node, None, [node, host_ip()]),
        ("kube-proxy", "system:kube-proxy", None, None),
        ("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters", None),
        # The local Prometheus: /metrics of the API server through the built-in system:monitoring group; the pods of
        # Colors through the pods get/list/watch the monitoring role grants this user (as kube-prometheus-stack's
        # chart grants its Prometheus).
        ("prometheus", CONFIG["prometheus"]["identity"], "system:monitoring", None),
    ]


def ensure_pki() -> None:
    """The cluster CA, the service-account key and every identity of _identities(), each made when missing (a
    platform started before the worker node existed gains the node's certificates, and keeps everything else)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    PKI.mkdir(parents=True, exist_ok=True)
    os.chmod(PKI, 0o700)
    now = datetime.datetime.now(datetime.UTC)

    def key_pem(key) -> bytes:
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())

    def write(name: str, data: bytes, mode: int = 0o600) -> None:
        path = PKI / name
        path.write_bytes(data)
        os.chmod(path, mode)

    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "colors-local-ca")])
    if (PKI / "ca.crt").exists() and (PKI / "ca.key").exists():
        ca_key = serialization.load_pem_private_key((PKI / "ca.key").read_bytes(), password=None)
    else:
        log(f"generating the cluster PKI in {PKI}")
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=3650))
              .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           content_commitment=False, key_encipherment=False,
                                           data_encipherment=False, key_agreement=False,
                                           encipher_only=False, decipher_only=False), critical=True)
              .sign(ca_key, hashes.SHA256()))
        write("ca.key", key_pem(ca_key))
        write("ca.crt", ca.public_bytes(serialization.Encoding.PEM), 0o644)

    for name, cn, org, sans in _identities():
        if (PKI / f"{name}.crt").exists() and (PKI / f"{name}.key").exists():
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        builder = (x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=825)))
        if sans is not None:
            names: list[x509.GeneralName] = []
            for san in dict.fromkeys(sans):
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(san)))
                except ValueError:
                    names.append(x509.DNSName(san))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if sans is not None else ExtendedKeyUsageOID.CLIENT_AUTH
        cert = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256())
        write(f"{name}.key", key_pem(key))
        write(f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)

    if not (PKI / "sa.pub").exists():
        sa_key = ec.generate_private_key(ec.SECP256R1())
        write("sa.key", key_pem(sa_key))
        write("sa.pub", sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)
    for user in ("admin", "kube-controller-manager", "kube-scheduler", "kwok", "kubelet", "kube-proxy", "prometheus"):
        path = KUBECONFIG if user == "admin" else PKI / f"{user}.kubeconfig"
        if not path.exists():
            write_kubeconfig(path, user)


def write_kubeconfig(path: Path, user: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": CONTEXT, "preferences": {},
        "clusters": [{"name": CONTEXT, "cluster": {
            "server": f"https://127.0.0.1:{PORTS['kube_apiserver']}",
            "certificate-authority": str(PKI / "ca.crt")}}],
        "users": [{"name": user, "user": {"client-certificate": str(PKI / f"{user}.crt"),
                                          "client-key": str(PKI / f"{user}.key")}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": user}}],
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    os.chmod(path, 0o600)


# ----------------------------------------------------------------------------------------------
# Components
# ----------------------------------------------------------------------------------------------

def _https_get(url: str, client: bool) -> tuple[int, str]:
    # The controller-manager and the scheduler serve self-signed health endpoints on loopback: nothing to verify.
    ctx = (ssl.create_default_context(cafile=str(PKI / "ca.crt")) if client
           else ssl._create_unverified_context())  # noqa: S323 # nosec B323 # nosemgrep: tls-verification-disabled
    if client:
        ctx.load_cert_chain(str(PKI / "admin.crt"), str(PKI / "admin.key"))
    return _get(url, ctx)


def _unix_ping(path: str) -> int:
    """HTTP status of GET /_ping on a unix socket (the Docker engine API)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(3)
        sock.connect(path)
        sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        status_line = sock.recv(128).split(b"\r\n", 1)[0].split()
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


def _get(url: str, ctx: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3, context=ctx) as resp:  # noqa: S310 # nosec B310 - loopback URLs built here
            return resp.status, resp.read(4096).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(4096).decode(errors="replace")


@dataclass
class Component:
    name: str
    port_keys: list[str]
    command: list[str]
    health: tuple[str, str]  # (kind, url): kind is http, https-client, https-selfsigned or unix (a socket path)
    env: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0
    # A machine-wide service (the Docker engine): one already answering is used as it is, never stopped here.
    shared: bool = False
    # Steps around the process: after it is healthy (load the pause image), before it is signalled (stop the
    # node's containers while the runtime still answers) and after it stopped (undo its mounts and network state).
    after_start: Callable[[], None] | None = None
    before_stop: Callable[[], None] | None = None
    after_stop: Callable[[], None] | None = None

    @property
    def pidfile(self) -> Path:
        return STATE / "run" / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return STATE / "logs" / f"{self.name}.log"

    def healthy(self) -> bool:
        kind, url = self.health
        try:
            if kind == "http":
                status, _ = _get(url)
            elif kind == "unix":
                status = _unix_ping(url)
            elif kind == "socket":  # a gRPC endpoint (containerd): accepting connections is all we can ask
                with socket.socket(socket.AF_UNIX) as sock:
                    sock.settimeout(3)
                    sock.connect(url)
                status = 200
            else:
                status, _ = _https_get(url, client=(kind == "https-client"))
        except (OSError, ssl.SSLError):
            return False
        return status == 200

    def running_pid(self) -> int | None:
        """The pid this checkout started, if that very process is still alive."""
        try:
            pid_text, started = self.pidfile.read_text().split()
            pid = int(pid_text)
        except (OSError, ValueError):
            return None
        return pid if _start_time(pid) == started else None


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":  # a zombie has finished; it only waits to be reaped
        return None
    return fields[19]


def components(with_node: bool | None = None) -> list[Component]:
    """Every component, in start order; the worker node's last, when this host can run it (see node_blockers)."""
    if with_node is None:
        with_node = not node_blockers()
    p = PORTS
    k8s = CONFIG["kubernetes"]
    venv_bin = Path(sys.executable).parent
    common_k8s = ["--v=1"]
    return [
        Component("etcd", ["etcd_client", "etcd_peer"], [
            str(binary("etcd")), "--name=colors-local", f"--data-dir={STATE / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=colors-local=http://127.0.0.1:{p['etcd_peer']}",
            "--log-level=warn",
        ], ("http", f"http://127.0.0.1:{p['etcd_client']}/health")),
        Component("kube-apiserver", ["kube_apiserver"], [
            str(binary("kube-apiserver")), *common_k8s,
            f"--etcd-servers=http://127.0.0.1:{p['etcd_client']}",
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_apiserver']}",
            f"--advertise-address={host_ip()}",
            f"--tls-cert-file={PKI / 'apiserver.crt'}", f"--tls-private-key-file={PKI / 'apiserver.key'}",
            f"--client-ca-file={PKI / 'ca.crt'}",
            f"--service-account-key-file={PKI / 'sa.pub'}",
            f"--service-account-signing-key-file={PKI / 'sa.key'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{k8s['cluster_domain']}",
            f"--service-cluster-ip-range={k8s['service_cidr']}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--anonymous-auth=true",
            # Logs and exec of the worker node's pods: the kubelet is reached by its address, with this identity.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={PKI / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={PKI / 'apiserver-kubelet-client.key'}",
        ], ("https-client", f"https://127.0.0.1:{p['kube_apiserver']}/readyz"), start_timeout=90),
        Component("kube-controller-manager", ["kube_controller_manager"], [
            str(binary("kube-controller-manager")), *common_k8s,
            *_kubeconfig_flags("kube-controller-manager"),
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_controller_manager']}",
            f"--root-ca-file={PKI / 'ca.crt'}",
            f"--service-account-private-key-file={PKI / 'sa.key'}",
            f"--cluster-signing-cert-file={PKI / 'ca.crt'}", f"--cluster-signing-key-file={PKI / 'ca.key'}",
            f"--service-cluster-ip-range={k8s['service_cidr']}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            "--cluster-name=colors-local", "--profiling=false",
        ], ("https-selfsigned", f"https://127.0.0.1:{p['kube_controller_manager']}/healthz")),
        Component("kube-scheduler", ["kube_scheduler"], [
            str(binary("kube-scheduler")), *common_k8s,
            *_kubeconfig_flags("kube-scheduler"),
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_scheduler']}",
            "--leader-elect=false", "--profiling=false",
        ], ("https-selfsigned", f"https://127.0.0.1:{p['kube_scheduler']}/healthz")),
        Component("kwok", ["kwok"], [
            str(binary("kwok")), f"--kubeconfig={PKI / 'kwok.kubeconfig'}",
            f"--config={HERE / 'kwok-stages.yaml'}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{p['kwok']}", "--cidr=10.244.0.0/16",
        ], ("http", f"http://127.0.0.1:{p['kwok']}/healthz")),
        Component("prometheus", ["prometheus"], [
            str(binary("prometheus")), f"--config.file={PROMETHEUS_CONFIG}",
            f"--storage.tsdb.path={PROMETHEUS_DIR / 'data'}", "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}", "--web.enable-lifecycle",
        ], ("http", f"http://127.0.0.1:{p['prometheus']}/-/ready")),
        Component("alertmanager", ["alertmanager"], [
            "/usr/bin/prometheus-alertmanager", f"--config.file={ALERTMANAGER_DIR / 'alertmanager.yml'}",
            f"--storage.path={ALERTMANAGER_DIR / 'data'}", f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            "--cluster.listen-address=", "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['alertmanager']}/-/ready")),
        Component("blackbox-exporter", ["blackbox_exporter"], [
            "/usr/bin/prometheus-blackbox-exporter", f"--config.file={HERE / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{p['blackbox_exporter']}", "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['blackbox_exporter']}/-/healthy")),
        # Node metrics of this host (the worker node's): CPU, memory, file systems, as the node exporter DaemonSet of
        # kube-prometheus-stack reports them in a cluster.
        Component("node-exporter", ["node_exporter"], [
            "/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{p['node_exporter']}",
            "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['node_exporter']}/")),
        # The log store: JSON log lines arrive over syslog (TCP) and are queried with LogsQL over HTTP.
        Component("victorialogs", ["victorialogs", "victorialogs_syslog"], [
            str(binary("victoria-logs")), f"-storageDataPath={STATE / 'victorialogs'}",
            f"-httpListenAddr=127.0.0.1:{p['victorialogs']}",
            f"-syslog.listenAddr.tcp=127.0.0.1:{p['victorialogs_syslog']}",
            f"-retentionPeriod={CONFIG['logs']['retention']}", "-loggerLevel=WARN",
        ], ("http", f"http://127.0.0.1:{p['victorialogs']}/health")),
        # Release markers: the release engine pushes each recorded release here; Prometheus scrapes it.
        Component("pushgateway", ["pushgateway"], [
            "/usr/bin/prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{p['pushgateway']}",
            "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['pushgateway']}/-/ready")),
        # Where the local Alertmanager's webhook receivers deliver (as a pager or a chat would).
        Component("alert-receiver", ["alert_receiver"], [
            str(venv_bin / "python"), str(HERE / "alert_receiver.py"), "--listen",
            f"127.0.0.1:{p['alert_receiver']}", "--store", str(ALERTMANAGER_DIR / "notifications.jsonl"),
        ], ("http", f"http://127.0.0.1:{p['alert_receiver']}/healthz")),
        Component("moto", ["moto"], [
            # moto_server.py: moto's server with the gaps that made Terraform plans drift closed.
            str(venv_bin / "python"), str(HERE / "moto_server.py"), "-H", "127.0.0.1", "-p", str(p["moto"]),
        ], ("http", f"http://127.0.0.1:{p['moto']}/moto-api/"),
            # ACM certificates validate after 2 s instead of 60 (the edge module waits for validation).
            env={"MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_ACM_VALIDATION_WAIT": "2"}),
        # The Docker engine that builds the Colors image (Debian's docker.io). An engine the machine already runs
        # is used as it is.
        Component("dockerd", [], ["/usr/sbin/dockerd", f"--pidfile={STATE / 'run' / 'dockerd.engine.pid'}"],
                  ("unix", "/var/run/docker.sock"), shared=True),
        *(node_components() if with_node else []),
    ]


PROMETHEUS_DIR = STATE / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_DIR = STATE / "alertmanager"


def ensure_prometheus_config() -> None:
    """Prometheus scrapes itself, the API server, the node exporter, the targets other tools register in
    targets/*.json (file_sd) and, through the blackbox exporter, the URLs listed in probes/*.json; it evaluates
    rules/*.yml and alerts the local Alertmanager. The scrape jobs of what is deployed (`podMonitor/...`, written by
    the monitoring role from its PodMonitor) are kept as they are. The Alertmanager starts with a configuration that
    delivers nowhere until the monitoring role writes the project's (and reloads it)."""
    for folder in ("targets", "probes", "rules"):
        (PROMETHEUS_DIR / folder).mkdir(parents=True, exist_ok=True)
    interval = CONFIG["prometheus"]["scrape_interval"]
    own_tls = {"ca_file": str(PKI / "ca.crt"), "cert_file": str(PKI / "prometheus.crt"),
               "key_file": str(PKI / "prometheus.key")}
    deployed = []
    if PROMETHEUS_CONFIG.exists():
        with contextlib.suppress(yaml.YAMLError):  # an unreadable file is rewritten with the platform's jobs only
            deployed = [job for job in (yaml.safe_load(PROMETHEUS_CONFIG.read_text()) or {}).get("scrape_configs", [])
                        if str(job.get("job_name", "")).startswith("podMonitor/")]
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "external_labels": {"environment": "local"}},
        "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{PORTS['alertmanager']}"]}]}]},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{PORTS['prometheus']}"]}]},
            # The labels kube-prometheus-stack's apiserver ServiceMonitor gives the `kubernetes` Service's endpoints.
            {"job_name": "apiserver", "scheme": "https", "tls_config": own_tls,
             "static_configs": [{"targets": [f"127.0.0.1:{PORTS['kube_apiserver']}"],
                                 "labels": {"namespace": "default", "service": "kubernetes", "endpoint": "https"}}]},
            # As the chart's node exporter ServiceMonitor labels it (job node-exporter, port http-metrics).
            {"job_name": "node-exporter",
             "static_configs": [{"targets": [f"127.0.0.1:{PORTS['node_exporter']}"],
                                 "labels": {"endpoint": "http-metrics", "node": CONFIG["worker_node"]["name"]}}]},
            {"job_name": "registered", "file_sd_configs": [
                {"files": [str(PROMETHEUS_DIR / "targets" / "*.json")], "refresh_interval": "1s"}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{PORTS['pushgateway']}"]}]},
            {"job_name": "probes", "metrics_path": "/probe", "params": {"module": ["http_2xx"]},
             "file_sd_configs": [{"files": [str(PROMETHEUS_DIR / "probes" / "*.json")], "refresh_interval": "1s"}],
             "relabel_configs": [
                 {"source_labels": ["__address__"], "target_label": "__param_target"},
                 {"source_labels": ["__param_target"], "target_label": "instance"},
                 {"target_label": "__address__", "replacement": f"127.0.0.1:{PORTS['blackbox_exporter']}"}]},
            *deployed,
        ],
    }
    _write_if_changed(PROMETHEUS_CONFIG, prometheus_config_text(config))
    ALERTMANAGER_DIR.mkdir(parents=True, exist_ok=True)
    bootstrap = ALERTMANAGER_DIR / "alertmanager.yml"
    if not bootstrap.exists():
        bootstrap.write_text(yaml.safe_dump({"route": {"receiver": "nowhere"}, "receivers": [{"name": "nowhere"}]}))


def prometheus_config_text(config: dict) -> str:
    """The configuration as the monitoring role writes it too (Ansible's to_nice_json, a newline): byte for byte the
    same text whoever writes it last, so neither sees a change that is none."""
    return json.dumps(config, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _kubeconfig_flags(user: str) -> list[str]:
    path = PKI / f"{user}.kubeconfig"
    return [f"--kubeconfig={path}", f"--authentication-kubeconfig={path}", f"--authorization-kubeconfig={path}"]


def port_in_use(port: int) -> bool:
    """Whether the port is held on loopback (the kubelet's API port on the host's address is not checked here: a
    kubelet that cannot bind it exits, and `start` shows its log)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start(comp: Component) -> bool:
    """Start one component unless this checkout already runs it. Returns True when started."""
    if comp.shared and not comp.running_pid() and comp.healthy():
        return False
    if comp.running_pid():
        if comp.healthy():
            return False
        if _wait_healthy(comp, 15):
            return False
        raise PlatformError(f"{comp.name} (pid {comp.running_pid()}) is running but unhealthy; "
                            f"see {comp.logfile} or run `make down && make up`:\n{_log_tail(comp.logfile)}")
    if comp.pidfile.exists():
        log(f"{comp.name} died since it was started (pid file {comp.pidfile}); last lines of "
            f"{comp.logfile}:\n{_log_tail(comp.logfile, 8)}\n[platform] starting {comp.name} again")
        comp.pidfile.unlink()
    for key in comp.port_keys:
        if port_in_use(PORTS[key]):
            raise PlatformError(
                f"port {PORTS[key]} on 127.0.0.1, needed by {comp.name} ({key} in "
                f"localplatform/platform.yml), is in use by another process; stop that process "
                f"(`ss -ltnp 'sport = :{PORTS[key]}'` names it) or change the port in platform.yml")
    exe = Path(comp.command[0])
    if not exe.is_file():
        raise PlatformError(f"{comp.name}: binary {exe} is missing; run `make toolchain`")
    comp.pidfile.parent.mkdir(parents=True, exist_ok=True)
    comp.logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(comp.logfile, "ab") as logf:
        proc = subprocess.Popen(comp.command, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=dict(os.environ, **comp.env), start_new_session=True, cwd=STATE)
    started = _start_time(proc.pid)
    comp.pidfile.write_text(f"{proc.pid} {started}\n")
    if not _wait_healthy(comp, comp.start_timeout, proc):
        if proc.poll() is not None:
            comp.pidfile.unlink(missing_ok=True)
            raise PlatformError(f"{comp.name} exited with code {proc.returncode} while starting; "
                                f"last lines of {comp.logfile}:\n{_log_tail(comp.logfile)}")
        raise PlatformError(f"{comp.name} did not become healthy within {comp.start_timeout:.0f}s "
                            f"({comp.health[1]}); last lines of {comp.logfile}:\n{_log_tail(comp.logfile)}")
    if comp.after_start:
        comp.after_start()
    return True


def _wait_healthy(comp: Component, timeout: float, proc: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if comp.healthy():
            return True
        time.sleep(0.3)
    return False


def stop(comp: Component, timeout: float = 20) -> bool:
    pid = comp.running_pid()
    comp_was_running = pid is not None
    if pid and comp.before_stop:
        comp.before_stop()
    if pid:
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _start_time(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _start_time(pid):
            os.killpg(pid, signal.SIGKILL)
    comp.pidfile.unlink(missing_ok=True)
    if comp.after_stop and comp_was_running:
        comp.after_stop()
    return comp_was_running


# ----------------------------------------------------------------------------------------------
# The real worker node: containerd (an instance of its own) + runc, CNI bridge, kubelet, kube-proxy
# ----------------------------------------------------------------------------------------------

NODE = CONFIG["worker_node"]
NODE_DIR = STATE / "node"
NODE_RUN = Path(NODE["runtime_socket"]).parent  # runtime state must live on a tmpfs-like path, not in the checkout
NODE_SOCKET = NODE["runtime_socket"]
PAUSE_IMAGE = f"localhost/pause:{VERSIONS['pause']}"
# What the node needs from the host, and the Debian package that brings it (localplatform/apt-packages.txt).
NODE_PROGRAMS = {
    "/usr/bin/containerd": "containerd", "/usr/bin/containerd-shim-runc-v2": "containerd", "/usr/bin/ctr": "containerd",
    "/usr/sbin/runc": "runc", "/usr/sbin/nft": "nftables",
    **{f"/usr/lib/cni/{plugin}": "containernetworking-plugins" for plugin in ("bridge", "host-local", "portmap",
                                                                                 "loopback")},
}


def node_blockers() -> list[str]:
    """Why this host cannot run the real worker node (empty: it can). The platform then runs kwok-only."""
    if os.environ.get("COLORS_WORKER_NODE", "on").lower() in ("off", "0", "false", "no"):
        return ["COLORS_WORKER_NODE=off asks for the kwok-only platform"]
    reasons = []
    if os.geteuid() != 0:
        reasons.append("it needs root (kubelet and containerd manage mounts, cgroups and network namespaces)")
    missing = [f"{path} (Debian package {package})" for path, package in NODE_PROGRAMS.items()
               if not Path(path).exists()]
    if missing:
        reasons.append(f"missing: {', '.join(missing)}; `make toolchain` installs them")
    if not Path("/sys/fs/cgroup/cpu").exists() and not Path("/sys/fs/cgroup/cgroup.controllers").exists():
        reasons.append("no cgroup filesystem at /sys/fs/cgroup")
    if host_ip() == "127.0.0.1":
        reasons.append("the host has no non-loopback IPv4 address (a node's address cannot be loopback)")
    return reasons


def _ctr(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/ctr", "--address", NODE_SOCKET, "--namespace", "k8s.io", *args],
                          capture_output=True, check=False, **kwargs)


def ensure_node_config() -> None:
    """containerd's, the CNI network's, the kubelet's and kube-proxy's configuration files under .platform/node."""
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    (NODE_DIR / "cni").mkdir(exist_ok=True)
    ip = host_ip()
    containerd = f"""# Written by localplatform/platformctl.py: the worker node's own containerd (not Docker's).
version = 2
root = "{NODE_DIR / 'containerd'}"
state = "{NODE_RUN / 'containerd'}"
[grpc]
  address = "{NODE_SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # Negative OOM score adjustments (the sandbox's -998) need CAP_SYS_RESOURCE, which a root in a container may
  # lack (runc then fails with "can't get final child's PID from pipe"); clamp them to the caller's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{NODE_DIR / 'cni'}"
"""
    _write_if_changed(NODE_DIR / "containerd.toml", containerd)
    network = {"cniVersion": "0.4.0", "name": "colors-node", "plugins": [
        {"type": "bridge", "bridge": NODE["bridge"], "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": NODE["pod_cidr"]}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(NODE_DIR / "ipam")}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "loopback"}]}
    _write_if_changed(NODE_DIR / "cni" / "10-colors.conflist", json.dumps(network, indent=2) + "\n")
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": ip, "port": PORTS["kubelet"], "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": PORTS["kubelet_healthz"],
        "tlsCertFile": str(PKI / "kubelet-server.crt"), "tlsPrivateKeyFile": str(PKI / "kubelet-server.key"),
        # Only the API server (a client certificate of the cluster CA) reaches the kubelet's API; what it may do
        # there is asked of the API server (SubjectAccessReview), as on a production node.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(PKI / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        # This machine's cgroup v1 hybrid: cgroupfs driver, and v1 allowed (kubelet 1.35 refuses it by default).
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{NODE_SOCKET}",
        "clusterDomain": CONFIG["kubernetes"]["cluster_domain"], "resolvConf": "/etc/resolv.conf",
        "registerWithTaints": NODE["taints"], "maxPods": NODE["max_pods"],
        # A shared build machine: never evict for its disk or memory, never delete the locally loaded images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99, "serializeImagePulls": False,
    }
    _write_if_changed(NODE_DIR / "kubelet.yaml", yaml.safe_dump(kubelet, sort_keys=False))
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(PKI / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE["name"],
        # nftables: Services answer from the host (ClusterIP) and on its address (NodePort); iptables mode did not
        # DNAT on this machine.
        "mode": "nftables", "clusterCIDR": NODE["pod_cidr"], "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{PORTS['kube_proxy_healthz']}",
        "metricsBindAddress": f"127.0.0.1:{PORTS['kube_proxy_metrics']}",
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
    }
    _write_if_changed(NODE_DIR / "kube-proxy.yaml", yaml.safe_dump(proxy, sort_keys=False))


def _docker_archive(ref: str, files: dict[str, tuple[bytes, int]], entrypoint: list[str]) -> bytes:
    """A `docker save`-format archive of a one-layer image (what `ctr images import` reads)."""
    import hashlib
    import io
    import tarfile

    def tar(members: dict[str, tuple[bytes, int]]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name, (data, mode) in members.items():
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, 0
                archive.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    layer = tar(files)
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": entrypoint},
                         "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]}}).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_id}.json", "RepoTags": [ref],
                            "Layers": [f"{layer_id}/layer.tar"]}]).encode()
    return tar({f"{config_id}.json": (config, 0o644), f"{layer_id}/layer.tar": (layer, 0o644),
                "manifest.json": (manifest, 0o644)})


def ensure_pause_image() -> None:
    """Import the sandbox image into the node's containerd once (built from the pinned pause binary)."""
    if PAUSE_IMAGE.encode() in _ctr("images", "ls", "-q").stdout.split():
        return
    archive = _docker_archive(PAUSE_IMAGE, {"pause": (binary("pause").read_bytes(), 0o755)}, ["/pause"])
    result = _ctr("images", "import", "-", input=archive)
    if result.returncode != 0:
        raise PlatformError(f"importing {PAUSE_IMAGE} into the worker node failed: {result.stderr.decode()[-500:]}")
    log(f"{PAUSE_IMAGE} imported into the worker node's containerd")


def _stop_node_containers() -> None:
    """Kill every container of the node (they outlive kubelet and containerd otherwise) and forget them, so the
    next start begins clean; the kubelet recreates its pods."""
    tasks = _ctr("tasks", "ls", "-q").stdout.decode().split()
    for task in tasks:
        _ctr("tasks", "kill", "--signal", "SIGKILL", task)
    deadline = time.monotonic() + 10
    while tasks and time.monotonic() < deadline:
        for task in list(tasks):
            if _ctr("tasks", "delete", task).returncode == 0:
                tasks.remove(task)
        time.sleep(0.2)
    for container in _ctr("containers", "ls", "-q").stdout.decode().split():
        _ctr("containers", "delete", container)


def _clean_node_host_state() -> None:
    """Undo what the node leaves on the host: shims, mounts, kube-proxy's nftables tables, the CNI bridge."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and NODE_SOCKET.encode() in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
    def quietly(*argv: str) -> None:  # best effort: what is already gone, or a missing tool, is no error here
        with contextlib.suppress(OSError):
            subprocess.run(argv, capture_output=True, check=False)

    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith((f"{NODE_DIR}/", f"{NODE_RUN}/"))), key=len,
                        reverse=True):
        quietly("umount", "--lazy", mount)
    for family in ("ip", "ip6"):
        quietly("nft", "delete", "table", family, "kube-proxy")
    quietly("ip", "link", "delete", NODE["bridge"])
    shutil.rmtree(NODE_DIR / "ipam", ignore_errors=True)


def node_components() -> list[Component]:
    name, ip = NODE["name"], host_ip()
    labels = ",".join(f"{k}={v}" for k, v in NODE["labels"].items())
    return [
        Component("containerd-node", [], ["/usr/bin/containerd", "--config", str(NODE_DIR / "containerd.toml")],
                  ("socket", NODE_SOCKET), after_start=ensure_pause_image,
                  before_stop=_stop_node_containers, after_stop=_clean_node_host_state),
        Component("kubelet", ["kubelet", "kubelet_healthz"], [
            str(binary("kubelet")), f"--config={NODE_DIR / 'kubelet.yaml'}",
            f"--kubeconfig={PKI / 'kubelet.kubeconfig'}", f"--root-dir={NODE_DIR / 'kubelet'}",
            f"--hostname-override={name}", f"--node-ip={ip}", f"--node-labels={labels}", "--v=1",
        ], ("http", f"http://127.0.0.1:{PORTS['kubelet_healthz']}/healthz")),
        Component("kube-proxy", ["kube_proxy_healthz", "kube_proxy_metrics"], [
            str(binary("kube-proxy")), f"--config={NODE_DIR / 'kube-proxy.yaml'}", "--v=1",
        ], ("http", f"http://127.0.0.1:{PORTS['kube_proxy_healthz']}/livez")),
    ]


def node_info() -> dict:
    """What `up` and `status` report about the worker node."""
    blockers = node_blockers()
    return {"name": NODE["name"], "enabled": not blockers, "blockers": blockers, "address": host_ip(),
            "labels": NODE["labels"], "taints": NODE["taints"], "runtime_socket": NODE_SOCKET}


def load_images(refs: list[str]) -> dict:
    """Copy images from the Docker engine into the node's containerd (no registry is reachable here). An image
    whose Docker id was already loaded under that name is skipped."""
    if not node_components()[0].running_pid():
        return {"changed": False, "loaded": [], "skipped": refs,
                "reason": "the worker node is not running (`make up` starts it where the host can run it)"}
    record_path = NODE_DIR / "images.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    ids = {}
    for ref in refs:
        found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True,
                               text=True, check=False)
        if found.returncode != 0:
            raise PlatformError(f"image {ref} is not in the Docker engine (`make image` builds it)")
        ids[ref] = found.stdout.strip()
    present = set(_ctr("images", "ls", "-q").stdout.decode().split())
    todo = [ref for ref in refs if record.get(ref) != ids[ref] or ref not in present]
    if todo:
        save = subprocess.Popen(["docker", "save", *todo], stdout=subprocess.PIPE)
        assert save.stdout is not None
        with save.stdout:  # closed here too, so docker save ends (broken pipe) if the import stops early
            result = _ctr("images", "import", "-", stdin=save.stdout)
        if save.wait() != 0 or result.returncode != 0:
            raise PlatformError(f"loading {', '.join(todo)} into the worker node failed: "
                                f"{result.stderr.decode()[-500:]}")
        record.update({ref: ids[ref] for ref in todo})
        record_path.write_text(json.dumps(record, indent=2, sort_keys=True))
    return {"changed": bool(todo), "loaded": todo, "skipped": [r for r in refs if r not in todo]}


# ----------------------------------------------------------------------------------------------
# Commands
# ----------------------------------------------------------------------------------------------

def endpoints() -> dict[str, str]:
    return {
        "kubeconfig": str(KUBECONFIG),
        "context": CONTEXT,
        "kube_apiserver": f"https://127.0.0.1:{PORTS['kube_apiserver']}",
        "aws_endpoint_url": f"http://127.0.0.1:{PORTS['moto']}",
        "aws_region": CONFIG["aws"]["region"],
        "prometheus_url": f"http://127.0.0.1:{PORTS['prometheus']}",
        "prometheus_targets_dir": str(PROMETHEUS_DIR / "targets"),
        "prometheus_probes_dir": str(PROMETHEUS_DIR / "probes"),
        "prometheus_rules_dir": str(PROMETHEUS_DIR / "rules"),
        "prometheus_config": str(PROMETHEUS_CONFIG),
        "prometheus_kubeconfig": str(PKI / "prometheus.kubeconfig"),
        "alertmanager_url": f"http://127.0.0.1:{PORTS['alertmanager']}",
        "alertmanager_config": str(ALERTMANAGER_DIR / "alertmanager.yml"),
        "alert_receiver_url": f"http://127.0.0.1:{PORTS['alert_receiver']}",
        "pushgateway_url": f"http://127.0.0.1:{PORTS['pushgateway']}",
        "logs_url": f"http://127.0.0.1:{PORTS['victorialogs']}",
        "logs_syslog_address": f"tcp://127.0.0.1:{PORTS['victorialogs_syslog']}",
    }


def cmd_up(args: argparse.Namespace) -> dict:
    t0 = time.monotonic()
    built = build_all()
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_pki()
    ensure_prometheus_config()
    node = node_info()
    if node["enabled"]:
        ensure_node_config()
    else:
        log(f"the real worker node is not started: {'; '.join(node['blockers'])}. The platform runs kwok-only: "
            f"pods are scheduled on the simulated nodes and no container of them runs")
    started = []
    for comp in components(with_node=node["enabled"]):
        if start(comp):
            started.append(comp.name)
            log(f"{comp.name} started (pid {comp.running_pid()}, log {comp.logfile})")
    if not started:
        log("every component was already running and healthy; nothing to do")
    return {"changed": bool(started or built), "started": started, "built": built,
            "seconds": round(time.monotonic() - t0, 2), "worker_node": node, **endpoints()}


def cmd_down(args: argparse.Namespace) -> dict:
    # The worker node's components too, even when this host now says it cannot run them (they may still run).
    stopped = [c.name for c in reversed(components(with_node=True)) if stop(c)]
    if args.purge and STATE.exists():
        shutil.rmtree(STATE)
    log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return {"changed": bool(stopped) or args.purge, "stopped": stopped}


def cmd_status(args: argparse.Namespace) -> dict:
    report = {}
    for comp in components():
        pid = comp.running_pid()
        healthy = comp.healthy() if comp.shared else bool(pid) and comp.healthy()
        report[comp.name] = {"pid": pid, "healthy": healthy, "log": str(comp.logfile)}
    return {"changed": False, "components": report, "worker_node": node_info(),
            "healthy": all(c["healthy"] for c in report.values()), **endpoints()}


def cmd_build(args: argparse.Namespace) -> dict:
    return {"changed": build_all(force=args.force),
            "binaries": {n: str(b.bindir / n) for b in BUILDS for n in b.binaries}}


TF_MIRROR_CANDIDATES = [os.environ.get("COLORS_TF_PLUGIN_MIRROR", ""), "/opt/tf-plugins",
                        str(Path.home() / ".terraform.d" / "plugins"), "/usr/share/terraform/plugins"]
TF_AWS = "registry.terraform.io/hashicorp/aws"


def cmd_terraformrc(args: argparse.Namespace) -> dict:
    """Write a Terraform CLI configuration that installs hashicorp/aws from the machine's mirror."""
    if not shutil.which("terraform"):
        raise PlatformError("the terraform CLI is not installed (no registry here serves it); "
                            "install Terraform >= 1.11 on the PATH")
    mirror = next((Path(c) for c in TF_MIRROR_CANDIDATES if c and (Path(c) / TF_AWS).is_dir()), None)
    if mirror is None:
        raise PlatformError(f"no filesystem mirror holding {TF_AWS} was found (looked in "
                            f"{', '.join(c for c in TF_MIRROR_CANDIDATES if c)}); set COLORS_TF_PLUGIN_MIRROR")
    cache = CACHE / "terraform-plugins"
    cache.mkdir(parents=True, exist_ok=True)
    rc = STATE / "terraform.rc"
    text = (f'# Written by localplatform/platformctl.py terraformrc\n'
            f'plugin_cache_dir = "{cache}"\n'
            f'provider_installation {{\n'
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{TF_AWS}"]\n  }}\n'
            f'  direct {{\n    exclude = ["{TF_AWS}"]\n  }}\n}}\n')
    changed = not rc.exists() or rc.read_text() != text
    if changed:
        STATE.mkdir(parents=True, exist_ok=True)
        rc.write_text(text)
    versions = sorted(p.name for p in (mirror / TF_AWS).iterdir())
    return {"changed": changed, "path": str(rc), "mirror": str(mirror), "aws_provider_versions": versions}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing, then start every component (idempotent)")
    down = sub.add_parser("down", help="stop the components this checkout started")
    down.add_argument("--purge", action="store_true", help="also delete .platform/ (PKI, etcd data, logs)")
    sub.add_parser("status", help="report each component; exit 1 when any is down")
    build = sub.add_parser("build", help="build the pinned binaries into the cache")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    sub.add_parser("env", help="print shell exports for the platform's endpoints")
    sub.add_parser("terraformrc", help="write .platform/terraform.rc for the machine's provider mirror")
    images = sub.add_parser("load-images", help="copy images from the Docker engine into the worker node")
    images.add_argument("refs", nargs="+", metavar="IMAGE")
    args = parser.parse_args(argv)
    try:
        if args.command == "env":
            ep = endpoints()
            print(f"export KUBECONFIG={ep['kubeconfig']}\nexport AWS_ENDPOINT_URL={ep['aws_endpoint_url']}\n"
                  f"export AWS_DEFAULT_REGION={ep['aws_region']}")
            return 0
        result = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "build": cmd_build,
                  "terraformrc": cmd_terraformrc,
                  "load-images": lambda a: load_images(a.refs)}[args.command](args)
    except PlatformError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if args.command == "status" and not result["healthy"]:
        down = [name for name, c in result["components"].items() if not c["healthy"]]
        print(f"ERROR: not running or unhealthy: {', '.join(down)} (`make up` starts them; logs in "
              f"{STATE / 'logs'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
