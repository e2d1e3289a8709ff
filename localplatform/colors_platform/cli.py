"""The command line of the local platform (localplatform/platformctl.py runs it).

The platform is real software on this machine, bound to loopback:

  etcd -> kube-apiserver (TLS, RBAC, admission) -> kube-controller-manager, kube-scheduler
       -> kwok (simulated kubelets; nodes are created by the local_platform role)
       -> one real worker node: containerd (its own instance) + runc, CNI bridge, kubelet, kube-proxy
          (where the host can run it: root, the Debian packages; otherwise the platform runs kwok-only)
  moto server (the AWS API that Terraform applies to)

Binaries are built from pinned Go modules (localplatform/build/*/go.mod) into a cache outside the
repository, keyed by version, and rebuilt only when missing. Runtime state (PKI, etcd data, logs,
pid files, kubeconfig) lives in the git-ignored ``.platform/`` folder of the checkout.

Commands: build, up, engine, aws, down, status, env, terraformrc, serve-cluster, load-images.  ``up`` twice is a
no-op; ``engine`` and ``aws`` start only the Docker engine or only moto (the image build and Terraform need no more,
and a cluster component someone stopped stays stopped); ``down`` stops only processes this checkout started (pid
files carry the process start time, so a reused pid is never signalled).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from .builds import build_all, builds
from .components import (
    audit_log_path,
    components,
    ensure_audit_policy,
    ensure_prometheus_config,
    ensure_registry_config,
    ensure_token_webhook,
    serve_cluster,
)
from .config import CONTEXT, Config
from .errors import PlatformError, log
from .node import ensure_node_config, load_images, node_info
from .pki import PEOPLE, ensure_pki
from .supervisor import start, stop

DESCRIPTION = "Build, start, stop and check the local platform: the project's embedded default target."


def endpoints(cfg: Config) -> dict[str, str]:
    ports, prometheus_dir = cfg.ports, cfg.prometheus_dir
    return {
        "kubeconfig": str(cfg.kubeconfig),
        "context": CONTEXT,
        # The contexts of the identities EKS maps (the deploy role's, on-call's), in the same kubeconfig.
        **{f"{who}_context": context for context, who in PEOPLE.items()},
        "kube_audit_log": str(audit_log_path(cfg)),
        "kube_apiserver": f"https://127.0.0.1:{ports['kube_apiserver']}",
        "aws_endpoint_url": f"http://127.0.0.1:{ports['moto']}",
        "aws_region": cfg.data["aws"]["region"],
        "prometheus_url": f"http://127.0.0.1:{ports['prometheus']}",
        "prometheus_targets_dir": str(prometheus_dir / "targets"),
        "prometheus_probes_dir": str(prometheus_dir / "probes"),
        "prometheus_rules_dir": str(prometheus_dir / "rules"),
        "prometheus_config": str(cfg.prometheus_config),
        "prometheus_kubeconfig": str(cfg.pki / "prometheus.kubeconfig"),
        "alertmanager_url": f"http://127.0.0.1:{ports['alertmanager']}",
        "alertmanager_config": str(cfg.alertmanager_dir / "alertmanager.yml"),
        "alert_receiver_url": f"http://127.0.0.1:{ports['alert_receiver']}",
        "pushgateway_url": f"http://127.0.0.1:{ports['pushgateway']}",
        "logs_url": f"http://127.0.0.1:{ports['victorialogs']}",
        "logs_syslog_address": f"tcp://127.0.0.1:{ports['victorialogs_syslog']}",
        # The registry standing in for ECR (REGISTRY of `make publish`; image references start with it).
        "registry": cfg.registry_host,
    }


def cmd_up(cfg: Config, args: argparse.Namespace) -> dict:
    t0 = time.monotonic()
    built = build_all(cfg)
    cfg.state.mkdir(parents=True, exist_ok=True)
    ensure_pki(cfg)
    node = node_info(cfg)
    ensure_prometheus_config(cfg, node["address"] if node["enabled"] else None)
    ensure_registry_config(cfg)
    ensure_audit_policy(cfg)
    ensure_token_webhook(cfg)
    if node["enabled"]:
        ensure_node_config(cfg)
    else:
        log(f"the real worker node is not started: {'; '.join(node['blockers'])}. The platform runs kwok-only: "
            f"pods are scheduled on the simulated nodes and no container of them runs")
    started = []
    for comp in components(cfg, with_node=node["enabled"]):
        if start(comp):
            started.append(comp.name)
            log(f"{comp.name} started (pid {comp.running_pid()}, log {comp.logfile})")
    if not started:
        log("every component was already running and healthy; nothing to do")
    return {"changed": bool(started or built), "started": started, "built": built,
            "seconds": round(time.monotonic() - t0, 2), "worker_node": node, **endpoints(cfg)}


def cmd_engine(cfg: Config, args: argparse.Namespace) -> dict:
    """Only the Docker engine (building and pushing the image needs nothing else); an engine that already answers,
    such as a GitHub runner's, is used as it is."""
    cfg.state.mkdir(parents=True, exist_ok=True)
    engine = next(c for c in components(cfg, with_node=False) if c.name == "dockerd")
    started = start(engine)
    if started:
        log(f"dockerd started (pid {engine.running_pid()}, log {engine.logfile})")
    return {"changed": started, "started": ["dockerd"] if started else []}


def cmd_aws(cfg: Config, args: argparse.Namespace) -> dict:
    """Only the AWS API (moto): what Terraform and the AWS modules of the local environment need. The cluster's
    components are left as they are - started, stopped or being restarted by someone else - so that provisioning
    the local environment never starts an API server under a release or a drill that stopped it."""
    cfg.state.mkdir(parents=True, exist_ok=True)
    aws = next(c for c in components(cfg, with_node=False) if c.name == "moto")
    started = start(aws)
    if started:
        log(f"moto started (pid {aws.running_pid()}, log {aws.logfile})")
    return {"changed": started, "started": ["moto"] if started else [], "built": [], "worker_node": None,
            **endpoints(cfg)}


def cmd_down(cfg: Config, args: argparse.Namespace) -> dict:
    # The worker node's components too, even when this host now says it cannot run them (they may still run).
    stopped = [c.name for c in reversed(components(cfg, with_node=True)) if stop(c)]
    if args.purge and cfg.state.exists():
        shutil.rmtree(cfg.state)
    log(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    return {"changed": bool(stopped) or args.purge, "stopped": stopped}


def cmd_status(cfg: Config, args: argparse.Namespace) -> dict:
    report = {}
    for comp in components(cfg):
        pid = comp.running_pid()
        healthy = comp.healthy() if comp.shared else bool(pid) and comp.healthy()
        report[comp.name] = {"pid": pid, "healthy": healthy, "log": str(comp.logfile)}
    return {"changed": False, "components": report, "worker_node": node_info(cfg),
            "healthy": all(c["healthy"] for c in report.values()), **endpoints(cfg)}


def cmd_build(cfg: Config, args: argparse.Namespace) -> dict:
    return {"changed": build_all(cfg, force=args.force),
            "binaries": {n: str(b.bindir / n) for b in builds(cfg) for n in b.binaries}}


TF_AWS = "registry.terraform.io/hashicorp/aws"


def tf_mirror_candidates(cfg: Config) -> list[str]:
    """Where a filesystem mirror of the Terraform providers may be (COLORS_TF_PLUGIN_MIRROR first)."""
    return [cfg.environ.get("COLORS_TF_PLUGIN_MIRROR", ""), "/opt/tf-plugins",
            str(Path.home() / ".terraform.d" / "plugins"), "/usr/share/terraform/plugins"]


def cmd_terraformrc(cfg: Config, args: argparse.Namespace) -> dict:
    """Write a Terraform CLI configuration that installs hashicorp/aws from the machine's mirror."""
    if not shutil.which("terraform"):
        raise PlatformError("the terraform CLI is not installed (no registry here serves it); "
                            "install Terraform >= 1.11 on the PATH")
    candidates = tf_mirror_candidates(cfg)
    mirror = next((Path(c) for c in candidates if c and (Path(c) / TF_AWS).is_dir()), None)
    if mirror is None:
        raise PlatformError(f"no filesystem mirror holding {TF_AWS} was found (looked in "
                            f"{', '.join(c for c in candidates if c)}); set COLORS_TF_PLUGIN_MIRROR")
    cache = cfg.cache / "terraform-plugins"
    cache.mkdir(parents=True, exist_ok=True)
    rc = cfg.state / "terraform.rc"
    text = (f'# Written by localplatform/platformctl.py terraformrc\n'
            f'plugin_cache_dir = "{cache}"\n'
            f'provider_installation {{\n'
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{TF_AWS}"]\n  }}\n'
            f'  direct {{\n    exclude = ["{TF_AWS}"]\n  }}\n}}\n')
    changed = not rc.exists() or rc.read_text() != text
    if changed:
        cfg.state.mkdir(parents=True, exist_ok=True)
        rc.write_text(text)
    versions = sorted(p.name for p in (mirror / TF_AWS).iterdir())
    return {"changed": changed, "path": str(rc), "mirror": str(mirror), "aws_provider_versions": versions}


def main(argv: list[str] | None = None, cfg: Config | None = None) -> int:
    parser = argparse.ArgumentParser(prog="platformctl.py", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="build what is missing, then start every component (idempotent)")
    sub.add_parser("engine", help="start only the Docker engine, unless one answers already")
    sub.add_parser("aws", help="start only the AWS API (moto), unless it runs already; the cluster is left as it is")
    down = sub.add_parser("down", help="stop the components this checkout started")
    down.add_argument("--purge", action="store_true", help="also delete .platform/ (PKI, etcd data, logs)")
    sub.add_parser("status", help="report each component; exit 1 when any is down")
    build = sub.add_parser("build", help="build the pinned binaries into the cache")
    build.add_argument("--force", action="store_true", help="rebuild even when cached")
    sub.add_parser("env", help="print shell exports for the platform's endpoints")
    sub.add_parser("terraformrc", help="write .platform/terraform.rc for the machine's provider mirror")
    serve = sub.add_parser("serve-cluster", help="serve an EKS cluster of moto at this API server (its endpoint, "
                                                 "CA and tokens)")
    serve.add_argument("name", help="the EKS cluster's name (e.g. colors-staging)")
    serve.add_argument("--account", required=True, help="the AWS account id the cluster is in")
    serve.add_argument("--region", required=True, help="the cluster's region")
    serve.add_argument("--remove", action="store_true", help="stop serving it (moto's own endpoint again)")
    images = sub.add_parser("load-images", help="copy images from the Docker engine into the worker node")
    images.add_argument("refs", nargs="+", metavar="IMAGE")
    args = parser.parse_args(argv)
    cfg = cfg or Config.load()
    try:
        if args.command == "env":
            ep = endpoints(cfg)
            print(f"export KUBECONFIG={ep['kubeconfig']}\nexport AWS_ENDPOINT_URL={ep['aws_endpoint_url']}\n"
                  f"export AWS_DEFAULT_REGION={ep['aws_region']}\nexport REGISTRY={ep['registry']}")
            return 0
        result = {"up": cmd_up, "engine": cmd_engine, "aws": cmd_aws, "down": cmd_down, "status": cmd_status,
                  "build": cmd_build, "terraformrc": cmd_terraformrc,
                  "serve-cluster": lambda c, a: {"changed": serve_cluster(c, a.name, a.account, a.region, a.remove),
                                                 "endpoints": str(c.eks_endpoints)},
                  "load-images": lambda c, a: load_images(c, a.refs)}[args.command](cfg, args)
    except PlatformError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if args.command == "status" and not result["healthy"]:
        down = [name for name, c in result["components"].items() if not c["healthy"]]
        print(f"ERROR: not running or unhealthy: {', '.join(down)} (`make up` starts them; logs in "
              f"{cfg.state / 'logs'})", file=sys.stderr)
        return 1
    return 0
