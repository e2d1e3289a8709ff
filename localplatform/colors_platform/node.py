"""The real worker node of the local platform: its own containerd + runc, a CNI bridge, kubelet and kube-proxy,
where the host can run them (root, the Debian packages, a non-loopback address; otherwise the platform runs
kwok-only), the sandbox image built from the pinned pause program, and the images copied into it from Docker."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

from .builds import binary
from .config import Config, write_if_changed
from .errors import PlatformError, log
from .pki import host_ip
from .supervisor import Component

# What the node needs from the host, and the Debian package that brings it (localplatform/apt-packages.txt).
NODE_PROGRAMS = {
    "/usr/bin/containerd": "containerd", "/usr/bin/containerd-shim-runc-v2": "containerd", "/usr/bin/ctr": "containerd",
    "/usr/sbin/runc": "runc", "/usr/sbin/nft": "nftables",
    **{f"/usr/lib/cni/{plugin}": "containernetworking-plugins" for plugin in ("bridge", "host-local", "portmap",
                                                                                 "loopback")},
}


# The nftables table and the NFQUEUE number of the worker node's NetworkPolicy engine.
NETWORK_POLICY_TABLE = "kube-network-policies"
NETWORK_POLICY_QUEUE = 98
# The nftables table that refuses connections to the simulated pods' addresses (_refuse_simulated_pods).
SIMULATED_PODS_TABLE = "colors-simulated-pods"


def _quietly(*argv: str) -> None:
    """A clean-up command, best effort: what is already gone, or a missing tool, is no error here."""
    with contextlib.suppress(OSError):
        subprocess.run(argv, capture_output=True, check=False)


def node_blockers(cfg: Config) -> list[str]:
    """Why this host cannot run the real worker node (empty: it can). The platform then runs kwok-only."""
    if cfg.environ.get("COLORS_WORKER_NODE", "on").lower() in ("off", "0", "false", "no"):
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


def policy_engine_blockers() -> list[str]:
    """Why this host's kernel cannot run the NetworkPolicy engine (empty: it can). The node then runs without it,
    enforcing no policy, and the traffic tests skip naming this."""
    if not Path("/proc/net/netfilter/nfnetlink_queue").exists():
        return ["the kernel has no NFQUEUE (/proc/net/netfilter/nfnetlink_queue is missing: nfnetlink_queue is not "
                "loaded or built)"]
    return []


def _ctr(cfg: Config, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/ctr", "--address", cfg.node_socket, "--namespace", "k8s.io", *args],
                          capture_output=True, check=False, **kwargs)


def ensure_node_config(cfg: Config) -> None:
    """containerd's, the CNI network's, the kubelet's and kube-proxy's configuration files under .platform/node."""
    node, node_dir, pki, ports = cfg.node, cfg.node_dir, cfg.pki, cfg.ports
    node_dir.mkdir(parents=True, exist_ok=True)
    (node_dir / "cni").mkdir(exist_ok=True)
    ip = host_ip()
    containerd = f"""# Written by localplatform/platformctl.py: the worker node's own containerd (not Docker's).
version = 2
root = "{node_dir / 'containerd'}"
state = "{cfg.node_run / 'containerd'}"
[grpc]
  address = "{cfg.node_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{cfg.pause_image}"
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
    conf_dir = "{node_dir / 'cni'}"
"""
    write_if_changed(node_dir / "containerd.toml", containerd)
    network = {"cniVersion": "0.4.0", "name": "colors-node", "plugins": [
        {"type": "bridge", "bridge": node["bridge"], "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": node["pod_cidr"]}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(node_dir / "ipam")}},
        # Forwarding between the pods: the host's FORWARD chain drops what no rule accepts (Docker sets that policy),
        # and with bridge-nf-call-iptables the pods' bridged traffic passes it. The firewall plugin accepts each
        # pod's traffic there (its CNI-FORWARD chain), as a node's CNI does; what NetworkPolicy admits is the
        # policy engine's to say.
        {"type": "firewall", "backend": "iptables"},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "loopback"}]}
    write_if_changed(node_dir / "cni" / "10-colors.conflist", json.dumps(network, indent=2) + "\n")
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "address": ip, "port": ports["kubelet"], "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1", "healthzPort": ports["kubelet_healthz"],
        "tlsCertFile": str(pki / "kubelet-server.crt"), "tlsPrivateKeyFile": str(pki / "kubelet-server.key"),
        # Only the API server (a client certificate of the cluster CA) reaches the kubelet's API; what it may do
        # there is asked of the API server (SubjectAccessReview), as on a production node.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        # This machine's cgroup v1 hybrid: cgroupfs driver, and v1 allowed (kubelet 1.35 refuses it by default).
        "cgroupDriver": "cgroupfs", "failCgroupV1": False, "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{cfg.node_socket}",
        "clusterDomain": cfg.data["kubernetes"]["cluster_domain"], "resolvConf": "/etc/resolv.conf",
        "registerWithTaints": node["taints"], "maxPods": node["max_pods"],
        # A shared build machine: never evict for its disk or memory, never delete the locally loaded images.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99, "serializeImagePulls": False,
    }
    write_if_changed(node_dir / "kubelet.yaml", yaml.safe_dump(kubelet, sort_keys=False))
    proxy = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(pki / "kube-proxy.kubeconfig")},
        "hostnameOverride": node["name"],
        # nftables: Services answer from the host (ClusterIP) and on its address (NodePort); iptables mode did not
        # DNAT on this machine.
        "mode": "nftables", "clusterCIDR": node["pod_cidr"], "bindAddress": "127.0.0.1",
        "healthzBindAddress": f"127.0.0.1:{ports['kube_proxy_healthz']}",
        "metricsBindAddress": f"127.0.0.1:{ports['kube_proxy_metrics']}",
        "conntrack": {"maxPerCore": 0},  # leave the host's conntrack table size alone
    }
    write_if_changed(node_dir / "kube-proxy.yaml", yaml.safe_dump(proxy, sort_keys=False))


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


def ensure_pause_image(cfg: Config) -> None:
    """Import the sandbox image into the node's containerd once (built from the pinned pause binary)."""
    if cfg.pause_image.encode() in _ctr(cfg, "images", "ls", "-q").stdout.split():
        return
    archive = _docker_archive(cfg.pause_image, {"pause": (binary(cfg, "pause").read_bytes(), 0o755)}, ["/pause"])
    result = _ctr(cfg, "images", "import", "-", input=archive)
    if result.returncode != 0:
        raise PlatformError(f"importing {cfg.pause_image} into the worker node failed: {result.stderr.decode()[-500:]}")
    log(f"{cfg.pause_image} imported into the worker node's containerd")


def _stop_node_containers(cfg: Config) -> None:
    """Kill every container of the node (they outlive kubelet and containerd otherwise) and forget them, so the
    next start begins clean; the kubelet recreates its pods."""
    tasks = _ctr(cfg, "tasks", "ls", "-q").stdout.decode().split()
    for task in tasks:
        _ctr(cfg, "tasks", "kill", "--signal", "SIGKILL", task)
    deadline = time.monotonic() + 10
    while tasks and time.monotonic() < deadline:
        for task in list(tasks):
            if _ctr(cfg, "tasks", "delete", task).returncode == 0:
                tasks.remove(task)
        time.sleep(0.2)
    for container in _ctr(cfg, "containers", "ls", "-q").stdout.decode().split():
        _ctr(cfg, "containers", "delete", container)


def _clean_node_host_state(cfg: Config) -> None:
    """Undo what the node leaves on the host: shims, mounts, the nftables tables of kube-proxy, the policy engine and
    the simulated pods' refusal, the firewall plugin's chains, the CNI bridge."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and cfg.node_socket.encode() in cmdline:
                with contextlib.suppress(OSError):
                    os.kill(int(proc.name), signal.SIGKILL)
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith((f"{cfg.node_dir}/", f"{cfg.node_run}/"))), key=len,
                        reverse=True):
        _quietly("umount", "--lazy", mount)
    for family in ("ip", "ip6"):
        _quietly("nft", "delete", "table", family, "kube-proxy")
    # The policy engine removes its table when it stops; killed, it leaves it, and its queue rule would then drop
    # the first packet of every connection of a guarded pod (nothing reads the queue).
    _quietly("nft", "delete", "table", "inet", NETWORK_POLICY_TABLE)
    _quietly("nft", "delete", "table", "ip", SIMULATED_PODS_TABLE)
    # The firewall plugin's chains: the pods they accepted are gone (their rules would only accumulate).
    _quietly("iptables", "-D", "FORWARD", "-m", "comment", "--comment", "CNI firewall plugin rules", "-j",
             "CNI-FORWARD")
    for chain in ("CNI-FORWARD", "CNI-ADMIN"):
        _quietly("iptables", "-F", chain)
        _quietly("iptables", "-X", chain)
    _quietly("ip", "link", "delete", cfg.node["bridge"])
    shutil.rmtree(cfg.node_dir / "ipam", ignore_errors=True)


def _refuse_simulated_pods(cfg: Config) -> None:
    """Refuse every connection from the host or its pods to kwok's pod addresses at once (ICMP host unreachable):
    kube-proxy applies a Service's endpoints a second after they change, and a connection it still sends to a
    simulated pod that left must fail, so the caller asks again - out the default route, this machine's network
    answers it with HTTP 404. After kube-proxy's DNAT (a filter chain of priority 0), not by a route: an unreachable
    route drops a DNATed packet silently, and its connection hangs until its timeout."""
    cidr = cfg.data["kubernetes"]["simulated_pod_cidr"]
    chains = "".join(f"  chain {hook} {{ type filter hook {hook} priority 0; policy accept; "
                     f"ip daddr {cidr} reject with icmp type host-unreachable; }}\n" for hook in ("output", "forward"))
    _quietly("nft", "delete", "table", "ip", SIMULATED_PODS_TABLE)
    subprocess.run(["nft", "-f", "-"], input=f"table ip {SIMULATED_PODS_TABLE} {{\n{chains}}}\n".encode(),
                   capture_output=True, check=True)


def node_components(cfg: Config) -> list[Component]:
    node, node_dir, pki, ports = cfg.node, cfg.node_dir, cfg.pki, cfg.ports
    name, ip = node["name"], host_ip()
    labels = ",".join(f"{k}={v}" for k, v in node["labels"].items())
    engine = [] if policy_engine_blockers() else [
        # NetworkPolicy enforcement, as the VPC CNI's network policy agent does on EKS nodes: the first packet of
        # every connection to or from a pod of this node that a policy selects goes to the engine's queue, which
        # accepts or drops it by the policies (docs/local-platform.md: the choice and its limits). Healthy when it
        # serves; ready (/readyz, which the local_platform role waits on) once its informers hold the cluster's
        # policies, namespaces and pods.
        Component("network-policy", {"network_policy_metrics": ports["network_policy_metrics"]}, [
            str(binary(cfg, "network-policy")), f"--kubeconfig={pki / 'network-policy.kubeconfig'}",
            f"--hostname-override={name}", f"--metrics-bind-address=127.0.0.1:{ports['network_policy_metrics']}",
            f"--nfqueue-id={NETWORK_POLICY_QUEUE}", "--v=1",
        ], ("http", f"http://127.0.0.1:{ports['network_policy_metrics']}/healthz"), cfg.state),
    ]
    return [
        Component("containerd-node", {}, ["/usr/bin/containerd", "--config", str(node_dir / "containerd.toml")],
                  ("socket", cfg.node_socket), cfg.state, after_start=lambda: ensure_pause_image(cfg),
                  before_stop=lambda: _stop_node_containers(cfg), after_stop=lambda: _clean_node_host_state(cfg)),
        Component("kubelet", {k: ports[k] for k in ("kubelet", "kubelet_healthz")}, [
            str(binary(cfg, "kubelet")), f"--config={node_dir / 'kubelet.yaml'}",
            f"--kubeconfig={pki / 'kubelet.kubeconfig'}", f"--root-dir={node_dir / 'kubelet'}",
            f"--hostname-override={name}", f"--node-ip={ip}", f"--node-labels={labels}", "--v=1",
            # cAdvisor's own flag (deprecated, no configuration field): the node's containerd is not at the default
            # socket, and without it the containers' series (/metrics/cadvisor) carry no container label.
            f"--containerd={cfg.node_socket}",
        ], ("http", f"http://127.0.0.1:{ports['kubelet_healthz']}/healthz"), cfg.state),
        Component("kube-proxy", {k: ports[k] for k in ("kube_proxy_healthz", "kube_proxy_metrics")}, [
            str(binary(cfg, "kube-proxy")), f"--config={node_dir / 'kube-proxy.yaml'}", "--v=1",
        ], ("http", f"http://127.0.0.1:{ports['kube_proxy_healthz']}/livez"), cfg.state,
            after_start=lambda: _refuse_simulated_pods(cfg)),
        *engine,
    ]


def node_info(cfg: Config) -> dict:
    """What `up` and `status` report about the worker node."""
    blockers = node_blockers(cfg)
    node = cfg.node
    engine = policy_engine_blockers()
    return {"name": node["name"], "enabled": not blockers, "blockers": blockers, "address": host_ip(),
            "labels": node["labels"], "taints": node["taints"], "runtime_socket": cfg.node_socket,
            "network_policy": {"enabled": not blockers and not engine, "blockers": engine}}


def load_images(cfg: Config, refs: list[str]) -> dict:
    """Copy images from the Docker engine into the node's containerd (no registry is reachable here). An image
    whose Docker id was already loaded under that name is skipped."""
    if not node_components(cfg)[0].running_pid():
        return {"changed": False, "loaded": [], "skipped": refs,
                "reason": "the worker node is not running (`make up` starts it where the host can run it)"}
    record_path = cfg.node_dir / "images.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    ids = {}
    for ref in refs:
        found = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref], capture_output=True,
                               text=True, check=False)
        if found.returncode != 0:
            raise PlatformError(f"image {ref} is not in the Docker engine (`make image` builds it)")
        ids[ref] = found.stdout.strip()
    present = set(_ctr(cfg, "images", "ls", "-q").stdout.decode().split())
    todo = [ref for ref in refs if record.get(ref) != ids[ref] or ref not in present]
    if todo:
        save = subprocess.Popen(["docker", "save", *todo], stdout=subprocess.PIPE)
        assert save.stdout is not None
        with save.stdout:  # closed here too, so docker save ends (broken pipe) if the import stops early
            result = _ctr(cfg, "images", "import", "-", stdin=save.stdout)
        if save.wait() != 0 or result.returncode != 0:
            raise PlatformError(f"loading {', '.join(todo)} into the worker node failed: "
                                f"{result.stderr.decode()[-500:]}")
        record.update({ref: ids[ref] for ref in todo})
        record_path.write_text(json.dumps(record, indent=2, sort_keys=True))
    return {"changed": bool(todo), "loaded": todo, "skipped": [r for r in refs if r not in todo]}
