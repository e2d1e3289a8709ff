"""Every component of the local platform, in start order (the worker node's last, where the host can run it), and
the local Prometheus' own configuration."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import yaml

from .builds import binary
from .config import Config, write_if_changed
from .node import node_blockers, node_components
from .pki import host_ip, kubeconfig_flags
from .supervisor import Component


def components(cfg: Config, with_node: bool | None = None) -> list[Component]:
    """Every component, in start order; the worker node's last, when this host can run it (see node_blockers)."""
    if with_node is None:
        with_node = not node_blockers(cfg)
    p = cfg.ports
    k8s = cfg.data["kubernetes"]
    pki, state, here = cfg.pki, cfg.state, cfg.here
    prometheus_dir, alertmanager_dir = cfg.prometheus_dir, cfg.alertmanager_dir
    venv_bin = Path(sys.executable).parent
    common_k8s = ["--v=1"]

    def component(name: str, port_keys: list[str], command: list[str], health: tuple[str, str], **kw) -> Component:
        return Component(name, {k: p[k] for k in port_keys}, command, health, state, pki, **kw)

    return [
        component("etcd", ["etcd_client", "etcd_peer"], [
            str(binary(cfg, "etcd")), "--name=colors-local", f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--advertise-client-urls=http://127.0.0.1:{p['etcd_client']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd_peer']}",
            f"--initial-cluster=colors-local=http://127.0.0.1:{p['etcd_peer']}",
            "--log-level=warn",
        ], ("http", f"http://127.0.0.1:{p['etcd_client']}/health")),
        component("kube-apiserver", ["kube_apiserver"], [
            str(binary(cfg, "kube-apiserver")), *common_k8s,
            f"--etcd-servers=http://127.0.0.1:{p['etcd_client']}",
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_apiserver']}",
            f"--advertise-address={host_ip()}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-account-issuer=https://kubernetes.default.svc.{k8s['cluster_domain']}",
            f"--service-cluster-ip-range={k8s['service_cidr']}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true", "--profiling=false", "--anonymous-auth=true",
            # Logs and exec of the worker node's pods: the kubelet is reached by its address, with this identity.
            "--kubelet-preferred-address-types=InternalIP",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            # What the identities EKS maps do (ensure_audit_policy): the tests derive the deployer's grants from it.
            f"--audit-policy-file={audit_policy_path(cfg)}", f"--audit-log-path={audit_log_path(cfg)}",
            # EKS tokens (`aws eks get-token`) of the clusters this API server serves, authenticated as EKS does
            # (moto: localplatform/moto_eks.py, eks_authenticator.py); client certificates keep working beside them.
            f"--authentication-token-webhook-config-file={token_webhook_path(cfg)}",
            "--authentication-token-webhook-version=v1", "--authentication-token-webhook-cache-ttl=10s",
            "--audit-log-format=json", "--audit-log-maxsize=100", "--audit-log-maxbackup=1",
        ], ("https-client", f"https://127.0.0.1:{p['kube_apiserver']}/readyz"), start_timeout=90),
        component("kube-controller-manager", ["kube_controller_manager"], [
            str(binary(cfg, "kube-controller-manager")), *common_k8s,
            *kubeconfig_flags(cfg, "kube-controller-manager"),
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_controller_manager']}",
            f"--root-ca-file={pki / 'ca.crt'}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
            f"--service-cluster-ip-range={k8s['service_cidr']}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            "--cluster-name=colors-local", "--profiling=false",
        ], ("https-selfsigned", f"https://127.0.0.1:{p['kube_controller_manager']}/healthz")),
        component("kube-scheduler", ["kube_scheduler"], [
            str(binary(cfg, "kube-scheduler")), *common_k8s,
            *kubeconfig_flags(cfg, "kube-scheduler"),
            "--bind-address=127.0.0.1", f"--secure-port={p['kube_scheduler']}",
            "--leader-elect=false", "--profiling=false",
        ], ("https-selfsigned", f"https://127.0.0.1:{p['kube_scheduler']}/healthz")),
        component("kwok", ["kwok"], [
            str(binary(cfg, "kwok")), f"--kubeconfig={pki / 'kwok.kubeconfig'}",
            f"--config={here / 'kwok-stages.yaml'}",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{p['kwok']}", f"--cidr={cfg.data['kubernetes']['simulated_pod_cidr']}",
        ], ("http", f"http://127.0.0.1:{p['kwok']}/healthz")),
        component("prometheus", ["prometheus"], [
            str(binary(cfg, "prometheus")), f"--config.file={cfg.prometheus_config}",
            f"--storage.tsdb.path={prometheus_dir / 'data'}", "--storage.tsdb.retention.time=2d",
            f"--web.listen-address=127.0.0.1:{p['prometheus']}", "--web.enable-lifecycle",
        ], ("http", f"http://127.0.0.1:{p['prometheus']}/-/ready")),
        component("alertmanager", ["alertmanager"], [
            "/usr/bin/prometheus-alertmanager", f"--config.file={alertmanager_dir / 'alertmanager.yml'}",
            f"--storage.path={alertmanager_dir / 'data'}", f"--web.listen-address=127.0.0.1:{p['alertmanager']}",
            "--cluster.listen-address=", "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['alertmanager']}/-/ready")),
        component("blackbox-exporter", ["blackbox_exporter"], [
            "/usr/bin/prometheus-blackbox-exporter", f"--config.file={here / 'blackbox.yml'}",
            f"--web.listen-address=127.0.0.1:{p['blackbox_exporter']}", "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['blackbox_exporter']}/-/healthy")),
        # Node metrics of this host (the worker node's): CPU, memory, file systems, as the node exporter DaemonSet of
        # kube-prometheus-stack reports them in a cluster.
        component("node-exporter", ["node_exporter"], [
            "/usr/bin/prometheus-node-exporter", f"--web.listen-address=127.0.0.1:{p['node_exporter']}",
            "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['node_exporter']}/")),
        # The log store: JSON log lines arrive over syslog (TCP) and are queried with LogsQL over HTTP.
        component("victorialogs", ["victorialogs", "victorialogs_syslog"], [
            str(binary(cfg, "victoria-logs")), f"-storageDataPath={state / 'victorialogs'}",
            f"-httpListenAddr=127.0.0.1:{p['victorialogs']}",
            f"-syslog.listenAddr.tcp=127.0.0.1:{p['victorialogs_syslog']}",
            f"-retentionPeriod={cfg.data['logs']['retention']}", "-loggerLevel=WARN",
        ], ("http", f"http://127.0.0.1:{p['victorialogs']}/health")),
        # Release markers: the release engine pushes each recorded release here; Prometheus scrapes it.
        component("pushgateway", ["pushgateway"], [
            "/usr/bin/prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{p['pushgateway']}",
            "--log.level=warn",
        ], ("http", f"http://127.0.0.1:{p['pushgateway']}/-/ready")),
        # The registry standing in for ECR: `make publish` pushes the release's image here and the worker node's
        # kubelet pulls it from here (ensure_registry_config).
        component("registry", ["registry"], [
            str(binary(cfg, "registry")), "serve", str(cfg.registry_dir / "config.yml"),
        ], ("http", f"http://{cfg.registry_host}/v2/")),
        # Where the local Alertmanager's webhook receivers deliver (as a pager or a chat would).
        component("alert-receiver", ["alert_receiver"], [
            str(venv_bin / "python"), str(here / "alert_receiver.py"), "--listen",
            f"127.0.0.1:{p['alert_receiver']}", "--store", str(alertmanager_dir / "notifications.jsonl"),
        ], ("http", f"http://127.0.0.1:{p['alert_receiver']}/healthz")),
        component("moto", ["moto"], [
            # moto_server.py: moto's server with the gaps that made Terraform plans drift closed.
            str(venv_bin / "python"), str(here / "moto_server.py"), "-H", "127.0.0.1", "-p", str(p["moto"]),
        ], ("http", f"http://127.0.0.1:{p['moto']}/moto-api/"),
            # ACM certificates validate after 2 s instead of 60 (the edge module waits for validation).
            # The endpoints file: which EKS clusters the local API server serves (`platformctl serve-cluster`).
            env={"MOTO_IAM_LOAD_MANAGED_POLICIES": "true", "MOTO_ACM_VALIDATION_WAIT": "2",
                 "COLORS_EKS_ENDPOINTS": str(cfg.eks_endpoints)}),
        # The Docker engine that builds the Colors image (Debian's docker.io). An engine the machine already runs
        # is used as it is.
        component("dockerd", [], ["/usr/sbin/dockerd", f"--pidfile={state / 'run' / 'dockerd.engine.pid'}"],
                  ("unix", "/var/run/docker.sock"), shared=True),
        *(node_components(cfg) if with_node else []),
    ]


# The groups EKS maps the pipeline and on-call roles to (terraform/modules/cluster_access): whose requests the API
# server's audit log records. Nothing else is logged (the platform's own components would fill it).
AUDITED_GROUPS = ["colors:deployers", "colors:oncall"]


def audit_policy_path(cfg: Config) -> Path:
    return cfg.state / "audit-policy.yaml"


def audit_log_path(cfg: Config) -> Path:
    """The API server's audit log: one JSON event per request of an AUDITED_GROUPS identity, when it completed."""
    return cfg.state / "logs" / "kube-apiserver-audit.log"


def ensure_audit_policy(cfg: Config) -> None:
    """The audit policy: Metadata (user, groups, verb, resource, namespace, response code) of every request of the
    AUDITED_GROUPS identities, once, when the response is complete; nothing of anyone else."""
    policy = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
              "omitStages": ["RequestReceived", "ResponseStarted"],
              "rules": [{"level": "Metadata", "userGroups": AUDITED_GROUPS}, {"level": "None"}]}
    audit_log_path(cfg).parent.mkdir(parents=True, exist_ok=True)
    write_if_changed(audit_policy_path(cfg), yaml.safe_dump(policy, sort_keys=False))


def token_webhook_path(cfg: Config) -> Path:
    return cfg.state / "eks-token-webhook.kubeconfig"


def ensure_token_webhook(cfg: Config) -> None:
    """The API server's webhook token authenticator: EKS's, served by the local platform's moto (plain HTTP on
    loopback; the TokenReview carries the token, which proves itself through STS)."""
    url = f"http://127.0.0.1:{cfg.ports['moto']}/moto-api/eks/authenticate"
    config = {"apiVersion": "v1", "kind": "Config",
              "clusters": [{"name": "eks-authenticator", "cluster": {"server": url}}],
              "users": [{"name": "kube-apiserver", "user": {}}],
              "contexts": [{"name": "webhook", "context": {"cluster": "eks-authenticator", "user": "kube-apiserver"}}],
              "current-context": "webhook"}
    write_if_changed(token_webhook_path(cfg), yaml.safe_dump(config, sort_keys=False))


def serve_cluster(cfg: Config, name: str, account: str, region: str, remove: bool = False) -> bool:
    """Name an EKS cluster as served by this platform's API server: moto describes it with the API server's
    endpoint and CA, and authenticates its tokens. Returns True when the file changed."""
    import base64

    served = json.loads(cfg.eks_endpoints.read_text()) if cfg.eks_endpoints.exists() else {}
    before = dict(served)
    if remove:
        served.pop(name, None)
    else:
        served[name] = {"endpoint": f"https://127.0.0.1:{cfg.ports['kube_apiserver']}", "account": account,
                        "region": region,
                        "certificateAuthority": base64.b64encode((cfg.pki / "ca.crt").read_bytes()).decode()}
    if served == before:
        return False
    cfg.state.mkdir(parents=True, exist_ok=True)
    cfg.eks_endpoints.write_text(json.dumps(served, indent=2, sort_keys=True))
    return True


def ensure_registry_config(cfg: Config) -> None:
    """The registry's configuration: its images under <state>/registry/data, kept across `make down` and `make up`
    (as ECR keeps them); anonymous, plain HTTP, on loopback only; its access log (each pull) in the log of its
    component."""
    cfg.registry_dir.mkdir(parents=True, exist_ok=True)
    config = {"version": 0.1, "log": {"level": "warn"},
              "storage": {"filesystem": {"rootdirectory": str(cfg.registry_dir / "data")},
                          "delete": {"enabled": False}},
              "http": {"addr": cfg.registry_host}}
    write_if_changed(cfg.registry_dir / "config.yml", yaml.safe_dump(config, sort_keys=False))


def ensure_prometheus_config(cfg: Config, node_address: str | None = None) -> None:
    """Prometheus scrapes itself, the API server, the node exporter, the worker node's kubelet (its cAdvisor
    endpoint, when the node runs at node_address), the targets other tools register in
    targets/*.json (file_sd) and, through the blackbox exporter, the URLs listed in probes/*.json; it evaluates
    rules/*.yml and alerts the local Alertmanager. The scrape jobs of what is deployed (`podMonitor/...`, written by
    the monitoring role from its PodMonitor) are kept as they are. The Alertmanager starts with a configuration that
    delivers nowhere until the monitoring role writes the project's (and reloads it)."""
    prometheus_dir, pki, ports = cfg.prometheus_dir, cfg.pki, cfg.ports
    for folder in ("targets", "probes", "rules"):
        (prometheus_dir / folder).mkdir(parents=True, exist_ok=True)
    interval = cfg.data["prometheus"]["scrape_interval"]
    own_tls = {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "prometheus.crt"),
               "key_file": str(pki / "prometheus.key")}
    deployed = []
    if cfg.prometheus_config.exists():
        with contextlib.suppress(yaml.YAMLError):  # an unreadable file is rewritten with the platform's jobs only
            jobs = (yaml.safe_load(cfg.prometheus_config.read_text()) or {}).get("scrape_configs", [])
            deployed = [job for job in jobs if str(job.get("job_name", "")).startswith("podMonitor/")]
    # The containers' CPU and memory, as the chart's kubelet ServiceMonitor scrapes them (job kubelet, the kubelet's
    # Service in kube-system, honor_labels: the series carry their pod's namespace). The kubelet asks the API server
    # whether this identity may get nodes/metrics (the monitoring role grants it, as the chart grants its Prometheus).
    kubelet = [] if node_address is None else [
        {"job_name": "kubelet", "scheme": "https", "metrics_path": "/metrics/cadvisor", "honor_labels": True,
         "tls_config": {**own_tls, "server_name": cfg.node["name"]},
         "static_configs": [{"targets": [f"{node_address}:{ports['kubelet']}"],
                             "labels": {"endpoint": "https-metrics", "metrics_path": "/metrics/cadvisor",
                                        "namespace": "kube-system", "service": "kube-prometheus-stack-kubelet",
                                        "node": cfg.node["name"]}}]}]
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval,
                   "external_labels": {"environment": "local"}},
        "rule_files": [str(prometheus_dir / "rules" / "*.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}]},
        "scrape_configs": [
            {"job_name": "prometheus", "static_configs": [{"targets": [f"127.0.0.1:{ports['prometheus']}"]}]},
            # The labels kube-prometheus-stack's apiserver ServiceMonitor gives the `kubernetes` Service's endpoints.
            {"job_name": "apiserver", "scheme": "https", "tls_config": own_tls,
             "static_configs": [{"targets": [f"127.0.0.1:{ports['kube_apiserver']}"],
                                 "labels": {"namespace": "default", "service": "kubernetes", "endpoint": "https"}}]},
            # As the chart's node exporter ServiceMonitor labels it (job node-exporter, port http-metrics).
            {"job_name": "node-exporter",
             "static_configs": [{"targets": [f"127.0.0.1:{ports['node_exporter']}"],
                                 "labels": {"endpoint": "http-metrics", "node": cfg.node["name"]}}]},
            *kubelet,
            {"job_name": "registered", "file_sd_configs": [
                {"files": [str(prometheus_dir / "targets" / "*.json")], "refresh_interval": "1s"}]},
            {"job_name": "pushgateway", "honor_labels": True,
             "static_configs": [{"targets": [f"127.0.0.1:{ports['pushgateway']}"]}]},
            {"job_name": "probes", "metrics_path": "/probe", "params": {"module": ["http_2xx"]},
             "file_sd_configs": [{"files": [str(prometheus_dir / "probes" / "*.json")], "refresh_interval": "1s"}],
             "relabel_configs": [
                 {"source_labels": ["__address__"], "target_label": "__param_target"},
                 {"source_labels": ["__param_target"], "target_label": "instance"},
                 {"target_label": "__address__", "replacement": f"127.0.0.1:{ports['blackbox_exporter']}"}]},
            *deployed,
        ],
    }
    write_if_changed(cfg.prometheus_config, prometheus_config_text(config))
    cfg.alertmanager_dir.mkdir(parents=True, exist_ok=True)
    bootstrap = cfg.alertmanager_dir / "alertmanager.yml"
    if not bootstrap.exists():
        bootstrap.write_text(yaml.safe_dump({"route": {"receiver": "nowhere"}, "receivers": [{"name": "nowhere"}]}))


def prometheus_config_text(config: dict) -> str:
    """The configuration as the monitoring role writes it too (Ansible's to_nice_json, a newline): byte for byte the
    same text whoever writes it last, so neither sees a change that is none."""
    return json.dumps(config, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
