"""The platform's binaries: pinned Go builds (localplatform/build/<name>/go.mod), cached outside the checkout under
<cache>/bin/<name>-v<version>, built only when missing, and linked into <state>/bin."""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import PlatformError, log


@dataclass(frozen=True)
class GoBuild:
    name: str  # cache key prefix and module folder under localplatform/build
    version: str
    binaries: dict[str, str]  # binary name -> Go package
    cache: Path
    ldflags: str = ""
    # Source changes to a dependency at build time (a patched copy the build's go.mod replaces it with), and their
    # mark in the cache key: for a module whose pinned release needs a change here (kube-network-policies' queue
    # verdict). Called with the go binary, the module folder and a scratch folder; returns the extra build flags.
    patch: Callable[[str, Path, Path], list[str]] | None = None
    patch_mark: str = ""

    @property
    def bindir(self) -> Path:
        return self.cache / "bin" / f"{self.name}-v{self.version}{self.patch_mark}"

    def missing(self) -> list[str]:
        return [b for b in self.binaries if not (self.bindir / b).is_file()]


def _k8s_ldflags(version: str) -> str:
    major, minor, _ = version.split(".")
    pkg = "k8s.io/component-base/version"
    return (f"-X {pkg}.gitVersion=v{version} -X {pkg}.gitMajor={major} -X {pkg}.gitMinor={minor}"
            f" -X {pkg}.gitTreeState=clean -X {pkg}.buildDate=1970-01-01T00:00:00Z")


def builds(cfg: Config) -> list[GoBuild]:
    """Every pinned build, at the versions of platform.yml."""
    v, cache = cfg.versions, cfg.cache
    return [
        GoBuild("etcd", v["etcd"], {"etcd": "go.etcd.io/etcd/server/v3"}, cache),
        GoBuild("kubernetes", v["kubernetes"], {
            "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
            "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
            # The client of the same minor as the server (the machine's kubectl may be older).
            "kubectl": "k8s.io/kubernetes/cmd/kubectl",
            # The real worker node.
            "kubelet": "k8s.io/kubernetes/cmd/kubelet",
            "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
        }, cache, _k8s_ldflags(v["kubernetes"])),
        # The sandbox process of the worker node's pods (no registry is reachable for registry.k8s.io/pause).
        GoBuild("pause", v["pause"], {"pause": "colors.local/platform/pause"}, cache),
        # The worker node's NetworkPolicy engine: the controller of sigs.k8s.io/kube-network-policies, whose own
        # command reads only a pod's in-cluster configuration (localplatform/build/kube-network-policies/main.go).
        GoBuild("kube-network-policies", v["kube-network-policies"],
                {"network-policy": "colors.local/platform/netpol"}, cache,
                patch=_xt_queue_verdict, patch_mark="+xtqueue"),
        GoBuild("kwok", v["kwok"], {
            "kwok": "sigs.k8s.io/kwok/cmd/kwok",
            # kwok's own cluster tool: the baseline of `make bench`.
            "kwokctl": "sigs.k8s.io/kwok/cmd/kwokctl",
        }, cache),
        GoBuild("actionlint", v["actionlint"], {"actionlint": "github.com/rhysd/actionlint/cmd/actionlint"}, cache),
        # VictoriaLogs (Apache-2.0): the local log store; the Colors container's Docker syslog driver ships to it.
        GoBuild("victorialogs", v["victorialogs"],
                {"victoria-logs": "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"}, cache),
        # Prometheus and promtool: Debian's build lacks Kubernetes service discovery, which finds the Colors pods
        # here as the Prometheus Operator's configuration finds them in a cluster.
        GoBuild("prometheus", v["prometheus"], {
            "prometheus": "github.com/prometheus/prometheus/cmd/prometheus",
            "promtool": "github.com/prometheus/prometheus/cmd/promtool",
        }, cache, f"-X github.com/prometheus/common/version.Version={v['prometheus']}"
                  f" -X github.com/prometheus/common/version.Branch=release"
                  f" -X github.com/prometheus/common/version.Revision=v{v['prometheus']}"),
        # An OCI registry: the local stand-in for ECR when `make publish` is tested (no registry is reachable here).
        GoBuild("registry", v["registry"], {"registry": "github.com/distribution/distribution/v3/cmd/registry"},
                cache),
        # The GitHub Actions engine that runs the workflow files here, in the runner image (tests/integration).
        GoBuild("act", v["act"], {"act": "github.com/nektos/act"}, cache),
        # kubernetes.core.helm's binary, for the runner image and the execution environment (as GitHub's runners
        # have it preinstalled, and the EE build adds it).
        GoBuild("helm", v["helm"], {"helm": "helm.sh/helm/v3/cmd/helm"}, cache,
                f"-X helm.sh/helm/v3/internal/version.version=v{v['helm']}"
                f" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"),
    ]


# The two places kube-network-policies 0.8.0 builds its queue verdict (controller.go), and what replaces them: the
# function localplatform/build/kube-network-policies/patch/xtqueue.go adds to the package.
_NATIVE_QUEUE = """\tqueue := &expr.Queue{Num: uint16(c.config.QueueID)}
\tif c.config.FailOpen {
\t\tqueue.Flag = expr.QueueFlagBypass
\t}
"""
_XT_QUEUE = "\tqueue := queueVerdict(c.config.QueueID, c.config.FailOpen)\n"


def _xt_queue_verdict(go: str, moddir: Path, out: Path) -> list[str]:
    """Build kube-network-policies queueing packets with the xt NFQUEUE target (patch/xtqueue.go says why): a copy
    of the pinned module with both verdicts of its controller.go replaced and xtqueue.go added, which a go.mod beside
    the copy replaces the module with (files of the module cache itself cannot be overlaid)."""
    module = "sigs.k8s.io/kube-network-policies"
    # `go mod download`, not `go list -m`: on a fresh machine the module is not in the cache yet, and `go list -m`
    # then names no folder.
    found = json.loads(subprocess.run([go, "mod", "download", "-json", module], cwd=moddir, check=True,
                                      capture_output=True, text=True).stdout).get("Dir", "")
    if not found:
        raise PlatformError(f"`go mod download {module}` in {moddir} named no folder for the pinned module")
    copy = out / "kube-network-policies"
    shutil.copytree(found, copy, dirs_exist_ok=True)
    # The module cache is read-only: the copy's folders must be writable to patch it and to remove it afterwards.
    for folder in (copy, *(d for d in copy.rglob("*") if d.is_dir())):
        os.chmod(folder, 0o700)
    package = copy / "pkg" / "networkpolicy"
    controller = package / "controller.go"
    source = controller.read_text()
    if source.count(_NATIVE_QUEUE) != 2:
        raise PlatformError(f"{found}/pkg/networkpolicy/controller.go no longer builds its queue verdict as the "
                            f"patch expects (twice: {_NATIVE_QUEUE.strip()!r}); update {__file__}")
    os.chmod(controller, 0o600)
    controller.write_text(source.replace(_NATIVE_QUEUE, _XT_QUEUE))
    shutil.copy(moddir / "patch" / "xtqueue.go", package / "xtqueue.go")
    (out / "go.mod").write_text((moddir / "go.mod").read_text() + f"\nreplace {module} => {copy}\n")
    shutil.copy(moddir / "go.sum", out / "go.sum")
    return [f"-modfile={out / 'go.mod'}"]


def binary(cfg: Config, name: str) -> Path:
    for build in builds(cfg):
        if name in build.binaries:
            return build.bindir / name
    raise KeyError(name)


def _go() -> str:
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if not go:
        raise PlatformError("the Go toolchain is not installed (needed once to build etcd, Kubernetes "
                            "and kwok from pinned modules); install Go >= 1.24 and run `make toolchain`")
    return go


def build_all(cfg: Config, force: bool = False) -> bool:
    """Build every missing binary and link them into <state>/bin. Returns True when something was built."""
    built = False
    for build in builds(cfg):
        todo = list(build.binaries) if force else build.missing()
        if todo:
            built = True
            _build(cfg, build, todo)
    cfg.bin_links.mkdir(parents=True, exist_ok=True)
    for build in builds(cfg):
        for name in build.binaries:
            link = cfg.bin_links / name
            if not link.is_symlink() or os.readlink(link) != str(build.bindir / name):
                link.unlink(missing_ok=True)
                link.symlink_to(build.bindir / name)
    return built


def _build(cfg: Config, build: GoBuild, todo: list[str]) -> None:
    go = _go()
    moddir = cfg.here / "build" / build.name
    tmp = build.bindir.with_name(build.bindir.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    # CGO off: static binaries (the pause binary runs alone in an image FROM scratch).
    env = dict(os.environ, GOFLAGS=f"{os.environ.get('GOFLAGS', '')} -mod=readonly -trimpath".strip(),
               CGO_ENABLED="0")
    pkgs = [build.binaries[b] for b in todo]
    patched: list[str] = []
    if build.patch:
        # Beside the partial build, outside the checkout (removed with it).
        (tmp / "patched").mkdir(exist_ok=True)
        patched = build.patch(go, moddir, tmp / "patched")
    log(f"resolving the pinned modules of {build.name} v{build.version} (downloads them on a fresh machine)")
    total = len(subprocess.run([go, "list", "-deps", *pkgs], cwd=moddir, env=env, check=True,
                               capture_output=True, text=True).stdout.split())
    log(f"building {', '.join(todo)} v{build.version} ({total} packages; a first build takes "
        f"minutes on 2 cores, later ones come from {build.bindir})")
    start = time.monotonic()
    for name in todo:
        cmd = [go, "build", "-v", *patched, "-ldflags", f"-s -w {build.ldflags}".strip(), "-o", str(tmp / name),
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
