"""Build the runner image of the local Actions engine: localplatform/runner/Dockerfile FROM the project's Debian
base (app/build_image.py builds it), with helm from the platform's build cache and the machine's terraform.

    python localplatform/runner/build_runner_image.py     # prints the image reference

The tag hashes the Dockerfile, the base, the CA certificates and the binaries, so an unchanged recipe is reused."""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO / "app"), str(REPO / "localplatform")]

from build_image import BuildError, docker_ready, ensure_base, image_exists, sh  # noqa: E402
from colors_platform.builds import binary  # noqa: E402
from colors_platform.config import Config  # noqa: E402

CA_CERTIFICATES = Path("/usr/local/share/ca-certificates")


def inputs() -> dict[str, Path]:
    terraform = shutil.which("terraform")
    if not terraform:
        raise BuildError("terraform is not on PATH (the runner image carries the machine's terraform)")
    helm = binary(Config.load(), "helm")
    if not helm.is_file():
        raise BuildError(f"{helm} is missing: `make toolchain` builds helm")
    return {"helm": helm, "terraform": Path(terraform).resolve()}


def build() -> str:
    docker_ready()
    base, _ = ensure_base()
    binaries = inputs()
    certs = sorted(CA_CERTIFICATES.glob("*.crt"))
    digest = hashlib.sha256((HERE / "Dockerfile").read_bytes() + base.encode())
    for path in [*certs, *binaries.values()]:
        digest.update(path.name.encode() + path.read_bytes())
    tag = f"colors-runner:{digest.hexdigest()[:12]}"
    if image_exists(tag):
        return tag
    print(f"[runner] building the runner image {tag}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="colors-runner-") as tmp:
        context = Path(tmp)
        shutil.copy(HERE / "Dockerfile", context / "Dockerfile")
        (context / "ca-certificates").mkdir()
        for cert in certs:
            shutil.copy(cert, context / "ca-certificates" / cert.name)
        (context / "bin").mkdir()
        for name, path in binaries.items():
            shutil.copy(path, context / "bin" / name)
        sh(["docker", "build", "--network", "host", "--build-arg", f"BASE={base}", "-t", tag, str(context)],
           timeout=900)
    return tag


if __name__ == "__main__":
    try:
        print(build())
    except BuildError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        sys.exit(2)
