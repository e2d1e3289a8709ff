"""The configuration of one local platform: localplatform/platform.yml (pinned versions, loopback ports, the
worker node) and where its state and cache live. Built once by the command line (Config.load) and passed to every
part; a test builds its own with a temporary state folder."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent.parent  # localplatform/
CONTEXT = "colors-local"


@dataclass(frozen=True)
class Config:
    here: Path  # localplatform/: platform.yml, the Go modules, kwok stages, helper programs
    state: Path  # the checkout's git-ignored .platform/ (or COLORS_PLATFORM_STATE)
    cache: Path  # heavy builds, outside the checkout (or COLORS_CACHE_DIR)
    data: Mapping[str, Any]  # platform.yml
    environ: Mapping[str, str]  # COLORS_WORKER_NODE, COLORS_TF_PLUGIN_MIRROR, PATH ...

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, here: Path = HERE) -> Config:
        environ = dict(os.environ if environ is None else environ)
        return cls(here=here,
                   state=Path(environ.get("COLORS_PLATFORM_STATE", here.parent / ".platform")),
                   cache=Path(environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy")),
                   data=yaml.safe_load((here / "platform.yml").read_text()), environ=environ)

    # --- platform.yml ---
    @property
    def ports(self) -> Mapping[str, int]:
        return self.data["ports"]

    @property
    def versions(self) -> Mapping[str, str]:
        return self.data["versions"]

    @property
    def node(self) -> Mapping[str, Any]:
        return self.data["worker_node"]

    # --- where things live ---
    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def bin_links(self) -> Path:
        return self.state / "bin"

    @property
    def prometheus_dir(self) -> Path:
        return self.state / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def alertmanager_dir(self) -> Path:
        return self.state / "alertmanager"

    @property
    def eks_endpoints(self) -> Path:
        """The EKS clusters this platform's API server serves (moto describes them with its endpoint and CA)."""
        return self.state / "eks-endpoints.json"

    @property
    def registry_dir(self) -> Path:
        return self.state / "registry"

    @property
    def registry_host(self) -> str:
        """The registry standing in for ECR, as image references name it (host:port)."""
        return f"127.0.0.1:{self.ports['registry']}"

    @property
    def node_dir(self) -> Path:
        return self.state / "node"

    @property
    def node_socket(self) -> str:
        return self.node["runtime_socket"]

    @property
    def node_run(self) -> Path:
        """The node runtime's state: on a tmpfs-like path beside its socket, never in the checkout."""
        return Path(self.node_socket).parent

    @property
    def pause_image(self) -> str:
        return f"localhost/pause:{self.versions['pause']}"


def write_if_changed(path: Path, text: str) -> None:
    """Write the file only when its text differs (its mtime tells when it last changed)."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
