"""Unit tests of the local platform (localplatform/colors_platform, the package behind platformctl.py): process
bookkeeping, PKI, error messages. Each test gets a Config of its own, whose state folder is temporary."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import time
from types import SimpleNamespace

import pytest
import yaml
from colors_platform import cli, components, config, node, pki, supervisor
from colors_platform.errors import PlatformError
from helpers import REPO


def _config(tmp_path, **environ) -> config.Config:
    return config.Config.load(environ={**os.environ, "COLORS_PLATFORM_STATE": str(tmp_path / "state"), **environ})


@pytest.fixture
def ctl(tmp_path):
    """The platform's parts and a Config whose state folder is a temporary directory."""
    return SimpleNamespace(cfg=_config(tmp_path), cli=cli, components=components, node=node, pki=pki,
                           supervisor=supervisor)


def _component(ctl, command, port=None, health=("http", "http://127.0.0.1:9/never")):
    return supervisor.Component("probe-component", {"probe": port or _free_port()}, command, health,
                                ctl.cfg.state, ctl.cfg.pki, start_timeout=5)


def test_port_in_use_is_refused_naming_component_port_and_setting(ctl, monkeypatch):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PlatformError) as err:
            supervisor.start(_component(ctl, [sys.executable, "-c", "pass"], port))
    message = str(err.value)
    assert f"port {port}" in message and "probe-component" in message and "platform.yml" in message


def test_missing_binary_names_the_fix(ctl):
    with pytest.raises(PlatformError, match="missing; run `make toolchain`"):
        supervisor.start(_component(ctl, ["/nonexistent/kube-apiserver"]))


def test_component_that_dies_while_starting_is_reported_with_its_log(ctl):
    command = [sys.executable, "-c", "import sys; print('fatal: bad flag --foo'); sys.exit(3)"]
    with pytest.raises(PlatformError) as err:
        supervisor.start(_component(ctl, command))
    assert "exited with code 3" in str(err.value)
    assert "fatal: bad flag --foo" in str(err.value)


def test_component_is_started_health_checked_and_stopped(ctl):
    port = _free_port()
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    comp = _component(ctl, server, port, health=("http", f"http://127.0.0.1:{port}/"))
    assert supervisor.start(comp) is True
    pid = comp.running_pid()
    assert pid and comp.healthy()
    assert supervisor.start(comp) is False  # already running and healthy: nothing to do
    assert supervisor.stop(comp) is True
    assert comp.running_pid() is None and supervisor.start_time(pid) is None
    assert supervisor.stop(comp) is False


def test_a_pid_file_of_another_process_is_never_trusted(ctl):
    comp = _component(ctl, ["true"])
    comp.pidfile.parent.mkdir(parents=True)
    comp.pidfile.write_text(f"{os.getpid()} 1\n")  # our pid, but not our start time
    assert comp.running_pid() is None
    comp.pidfile.write_text(f"{os.getpid()} {supervisor.start_time(os.getpid())}\n")
    assert comp.running_pid() == os.getpid()


def test_pki_issues_the_identities_the_cluster_needs(ctl):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    pki.ensure_pki(ctl.cfg)

    def cert(name):
        return x509.load_pem_x509_certificate((ctl.cfg.pki / f"{name}.crt").read_bytes())

    admin = cert("admin")
    assert admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    sans = cert("apiserver").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert cert("kube-scheduler").subject.rfc4514_string() == "CN=system:kube-scheduler"
    assert oct(ctl.cfg.pki.joinpath("ca.key").stat().st_mode & 0o777) == "0o600"

    kubeconfig = yaml.safe_load(ctl.cfg.kubeconfig.read_text())
    assert kubeconfig["current-context"] == "colors-local"
    assert kubeconfig["clusters"][0]["cluster"]["server"].endswith(f":{ctl.cfg.ports['kube_apiserver']}")
    # The local Prometheus: its own user, in the group the API server's /metrics is open to (system:monitoring).
    assert cert("prometheus").subject.rfc4514_string() == "CN=colors-local-prometheus,O=system:monitoring"
    assert yaml.safe_load((ctl.cfg.pki / "prometheus.kubeconfig").read_text())["users"][0]["name"] == "prometheus"


def test_terraformrc_points_at_the_provider_mirror(ctl, tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    (mirror / cli.TF_AWS / "5.100.0").mkdir(parents=True)
    monkeypatch.setattr(cli, "tf_mirror_candidates", lambda cfg: [str(mirror)])
    result = cli.cmd_terraformrc(ctl.cfg, None)
    text = (ctl.cfg.state / "terraform.rc").read_text()
    assert f'path    = "{mirror}"' in text and "direct {" in text
    assert result["aws_provider_versions"] == ["5.100.0"] and result["changed"] is True
    assert cli.cmd_terraformrc(ctl.cfg, None)["changed"] is False


def test_terraformrc_without_mirror_says_where_it_looked(ctl, tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "tf_mirror_candidates", lambda cfg: [str(tmp_path / "nowhere")])
    with pytest.raises(PlatformError, match="no filesystem mirror"):
        cli.cmd_terraformrc(ctl.cfg, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_component_that_died_is_named_and_started_again(ctl, capsys):
    port = _free_port()
    server = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    comp = _component(ctl, server, port, health=("http", f"http://127.0.0.1:{port}/"))
    assert supervisor.start(comp) is True
    os.killpg(comp.running_pid(), 9)
    deadline = time.monotonic() + 5
    while comp.running_pid() and time.monotonic() < deadline:
        time.sleep(0.05)
    capsys.readouterr()
    assert supervisor.start(comp) is True
    assert "probe-component died since it was started" in capsys.readouterr().err
    assert supervisor.stop(comp) is True


def test_platform_ports_are_outside_the_ephemeral_source_port_range():
    """A listening port inside ip_local_port_range can be taken by any outgoing connection's source port."""
    from pathlib import Path

    import yaml

    ports = yaml.safe_load((REPO / "localplatform" / "platform.yml").read_text())["ports"]
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    inside = {name: port for name, port in ports.items() if low <= port <= high}
    assert not inside, f"ports inside the ephemeral range {low}-{high}: {inside}"


def test_identities_missing_from_an_older_platform_are_issued_by_the_same_ca(ctl):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    pki.ensure_pki(ctl.cfg)
    folder = ctl.cfg.pki
    ca = (folder / "ca.crt").read_bytes()
    apiserver = (folder / "apiserver.crt").read_bytes()
    (folder / "kubelet.crt").unlink()  # as on a platform started before the worker node existed
    pki.ensure_pki(ctl.cfg)
    assert (folder / "ca.crt").read_bytes() == ca and (folder / "apiserver.crt").read_bytes() == apiserver
    kubelet = x509.load_pem_x509_certificate((folder / "kubelet.crt").read_bytes())
    name = ctl.cfg.node["name"]
    # The Node authorizer's identity of a kubelet: system:node:<name> in group system:nodes.
    assert kubelet.subject.rfc4514_string() == f"CN=system:node:{name},O=system:nodes"
    assert kubelet.issuer == x509.load_pem_x509_certificate(ca).subject
    proxy = x509.load_pem_x509_certificate((folder / "kube-proxy.crt").read_bytes())
    assert proxy.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:kube-proxy"
    assert yaml.safe_load((folder / "kubelet.kubeconfig").read_text())["users"][0]["name"] == "kubelet"


def test_a_host_that_cannot_run_the_worker_node_is_told_why(ctl, monkeypatch, tmp_path):
    monkeypatch.setattr(node.os, "geteuid", lambda: 1000)
    monkeypatch.setitem(node.NODE_PROGRAMS, "/nonexistent/containerd", "containerd")
    reasons = node.node_blockers(ctl.cfg)
    assert any("needs root" in r for r in reasons)
    assert any("/nonexistent/containerd (Debian package containerd)" in r and "make toolchain" in r for r in reasons)
    off = _config(tmp_path, COLORS_WORKER_NODE="off")
    assert node.node_blockers(off) == ["COLORS_WORKER_NODE=off asks for the kwok-only platform"]
    assert node.node_info(off)["enabled"] is False
    assert [c.name for c in components.components(off)][-1] == "dockerd"  # kwok-only: no node components
    # The policy engine where the kernel has NFQUEUE.
    engine = [] if node.policy_engine_blockers() else ["network-policy"]
    assert [c.name for c in components.components(off, with_node=True)][-3 - len(engine):] == [
        "containerd-node", "kubelet", "kube-proxy", *engine]


def test_the_worker_node_configuration_fits_this_kind_of_host(ctl):
    node.ensure_node_config(ctl.cfg)
    worker, folder = ctl.cfg.node, ctl.cfg.node_dir
    kubelet = yaml.safe_load((folder / "kubelet.yaml").read_text())
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"  # the cgroup v1 hybrid
    assert kubelet["registerWithTaints"] == worker["taints"] and kubelet["address"] == pki.host_ip()
    assert kubelet["authentication"]["anonymous"]["enabled"] is False and kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{worker['runtime_socket']}"
    containerd = (folder / "containerd.toml").read_text()
    assert "restrict_oom_score_adj = true" in containerd  # no CAP_SYS_RESOURCE for root in a container
    assert f'sandbox_image = "{ctl.cfg.pause_image}"' in containerd and "SystemdCgroup = false" in containerd
    network = json.loads((folder / "cni" / "10-colors.conflist").read_text())
    assert network["plugins"][0]["ipam"]["ranges"] == [[{"subnet": worker["pod_cidr"]}]]
    proxy = yaml.safe_load((folder / "kube-proxy.yaml").read_text())
    assert proxy["mode"] == "nftables" and proxy["clusterCIDR"] == worker["pod_cidr"]


def test_the_sandbox_image_archive_is_what_ctr_imports(ctl):
    import hashlib
    import io
    import tarfile

    archive = node._docker_archive("localhost/pause:3.10", {"pause": (b"\x7fELF...", 0o755)}, ["/pause"])
    with tarfile.open(fileobj=io.BytesIO(archive)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        [entry] = manifest
        assert entry["RepoTags"] == ["localhost/pause:3.10"]
        config = json.load(outer.extractfile(entry["Config"]))
        layer = outer.extractfile(entry["Layers"][0]).read()
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/pause"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as inner:
        member = inner.getmember("pause")
        assert member.mode == 0o755 and inner.extractfile(member).read() == b"\x7fELF..."


def test_loading_images_without_a_running_node_says_so_and_loads_nothing(ctl):
    result = node.load_images(ctl.cfg, ["localhost/colors:0.1.0"])
    assert result["changed"] is False and result["loaded"] == []
    assert "worker node is not running" in result["reason"]


def test_the_node_cleanup_runs_only_after_a_node_that_ran_and_never_needs_its_tools(ctl, monkeypatch, tmp_path):
    calls = []
    comp = _component(ctl, ["true"])
    comp.after_stop = lambda: calls.append("cleaned")
    assert supervisor.stop(comp) is False and calls == []  # never started here (a kwok-only host): nothing to undo
    # Aimed at a node of its own (never the machine's: its shims, mounts, tables and bridge are left alone).
    own = dataclasses.replace(ctl.cfg, data={**ctl.cfg.data, "worker_node": {
        **ctl.cfg.node, "runtime_socket": str(tmp_path / "run" / "node.sock"), "bridge": "colors-test0"}})
    monkeypatch.setenv("PATH", "/nonexistent")  # no nft, ip or umount
    node._clean_node_host_state(own)  # a host without the node's tools: best effort, no error


def test_the_prometheus_configuration_keeps_the_scrape_jobs_of_what_is_deployed(ctl):
    """`make up` rewrites the platform's own scrape jobs and keeps the podMonitor/ ones the monitoring role added, in
    the very text Ansible's to_nice_json writes (neither writer sees a change the other made as a change)."""
    from ansible.plugins.filter.core import to_nice_json

    components.ensure_prometheus_config(ctl.cfg)
    path = ctl.cfg.prometheus_config
    config = yaml.safe_load(path.read_text())
    assert [j["job_name"] for j in config["scrape_configs"]] == [
        "prometheus", "apiserver", "node-exporter", "registered", "pushgateway", "probes"]
    assert path.read_text() == to_nice_json(config, indent=4) + "\n"
    deployed = {"job_name": "podMonitor/monitoring/colors/0", "kubernetes_sd_configs": [{"role": "pod"}]}
    config["scrape_configs"].append(deployed)
    path.write_text(to_nice_json(config, indent=4) + "\n")
    components.ensure_prometheus_config(ctl.cfg)
    assert yaml.safe_load(path.read_text())["scrape_configs"][-1] == deployed


def test_prometheus_scrapes_the_kubelets_cadvisor_only_when_the_worker_node_runs(ctl):
    """The containers' CPU and memory come from the worker node's kubelet, labelled as kube-prometheus-stack's kubelet
    ServiceMonitor labels them; a kwok-only platform has no kubelet to scrape and no target that is always down."""
    components.ensure_prometheus_config(ctl.cfg, "192.0.2.10")
    jobs = {j["job_name"]: j for j in yaml.safe_load(ctl.cfg.prometheus_config.read_text())["scrape_configs"]}
    kubelet = jobs["kubelet"]
    assert (kubelet["scheme"], kubelet["metrics_path"], kubelet["honor_labels"]) == ("https", "/metrics/cadvisor", True)
    assert kubelet["tls_config"]["server_name"] == ctl.cfg.node["name"]  # the kubelet's serving certificate's name
    target = kubelet["static_configs"][0]
    assert target["targets"] == [f"192.0.2.10:{ctl.cfg.ports['kubelet']}"]
    assert target["labels"] == {"endpoint": "https-metrics", "metrics_path": "/metrics/cadvisor",
                                "namespace": "kube-system", "service": "kube-prometheus-stack-kubelet",
                                "node": ctl.cfg.node["name"]}
    components.ensure_prometheus_config(ctl.cfg)
    jobs = yaml.safe_load(ctl.cfg.prometheus_config.read_text())["scrape_configs"]
    assert "kubelet" not in {j["job_name"] for j in jobs}


def test_the_aws_command_starts_moto_alone_and_leaves_the_cluster_as_it_is(ctl, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(cli, "start", lambda comp: started.append(comp.name) or True)
    result = cli.cmd_aws(ctl.cfg, SimpleNamespace())
    assert started == ["moto"]
    assert result["started"] == ["moto"] and result["changed"] is True
    assert result["aws_endpoint_url"] == f"http://127.0.0.1:{ctl.cfg.ports['moto']}"
