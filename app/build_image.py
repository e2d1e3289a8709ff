#!/usr/bin/env python3
"""Build the Colors image on the local Docker engine: `make image`.

1. The base image `colors-base:bookworm-<key>`: a minimal Debian bookworm root filesystem with Python 3.11, made
   by mmdebstrap from Debian's packages and imported into Docker (no registry is reachable here). The key hashes
   the recipe, so a changed recipe builds a new base and an unchanged one is reused. The package versions inside
   are recorded in the image label `colors.base.packages-sha256` and in .build/base-packages.txt.
2. Wheels of the app and its pinned dependencies, built on the host (same Python minor as the base).
3. `docker build` of app/Dockerfile (no network needed), tagged `<repository>:<version>` and
   `<repository>:git-<sha12>`, with the commit time as build time (the same commit gives the same labels).
4. The release drills, one layer over that image: `<version>-drill-crashloop` (a broken setting: the app exits 78
   at start), `<version>-drill-never-ready` (pointed at a database it cannot reach: alive, never ready) and
   `<version>-drill-errors` (alive and ready, but its dashboard page answers 500). One more drill,
   `-drill-pull-error`, is an image that does not exist.
5. With --load-worker-node, every tag is copied into the local platform's worker node (its own containerd).

Prints one JSON line: the tags, the image id and whether anything was built.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

APP = Path(__file__).resolve().parent
REPO = APP.parent
BUILD = APP / ".build"
SUITE = "bookworm"
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
BASE_RECIPE = f"mmdebstrap --variant=minbase --include={','.join(BASE_PACKAGES)} {SUITE} | docker import"


class BuildError(Exception):
    pass


def sh(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)
    if result.returncode != 0:
        raise BuildError(f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{result.stdout[-2000:]}"
                         f"\n{result.stderr[-3000:]}")
    return result


def docker_ready() -> None:
    if not shutil.which("docker"):
        raise BuildError("the docker CLI is missing: `make toolchain` installs docker.io")
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise BuildError("the Docker engine does not answer on /var/run/docker.sock: `make up` starts it "
                         f"({result.stderr.strip()[:300]})")


def image_exists(ref: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", ref], capture_output=True, check=False).returncode == 0


def ensure_base() -> tuple[str, bool]:
    key = hashlib.sha256(BASE_RECIPE.encode()).hexdigest()[:12]
    tag = f"colors-base:{SUITE}-{key}"
    if image_exists(tag):
        return tag, False
    if not shutil.which("mmdebstrap"):
        raise BuildError("mmdebstrap is missing: `make toolchain` installs it")
    print(f"[image] building the base image {tag} with mmdebstrap (about a minute)", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="colors-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        sh(["mmdebstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
            "--customize-hook=chroot $1 dpkg-query -W -f='${Package}=${Version}\\n' > $1/etc/colors-base-packages",
            "--customize-hook=rm -rf $1/var/cache/apt/* $1/var/lib/apt/lists/*", SUITE, str(rootfs)], timeout=900)
        listing = subprocess.run(["tar", "-xOf", str(rootfs), "./etc/colors-base-packages"], capture_output=True,
                                 text=True, check=True).stdout
        BUILD.mkdir(exist_ok=True)
        (BUILD / "base-packages.txt").write_text(listing)
        digest = hashlib.sha256(listing.encode()).hexdigest()
        sh(["docker", "import", "--change", "CMD [\"python3\"]", "--message", BASE_RECIPE,
            "--change", f"LABEL colors.base.recipe=\"{BASE_RECIPE}\" colors.base.packages-sha256={digest}",
            str(rootfs), tag], timeout=600)
    return tag, True


def build_wheels(python: str) -> None:
    wheels = BUILD / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    sh([python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheels), str(APP)], timeout=900)
    for leftover in (APP / "build", APP / "colors_app.egg-info"):  # setuptools' working folders
        shutil.rmtree(leftover, ignore_errors=True)


def written(relative: str, text: str) -> list[str]:
    """Dockerfile lines that write `text` to a file of the installed colors_app package (as root, then back)."""
    write = (f"import pathlib, colors_app; (pathlib.Path(colors_app.__file__).parent / {relative!r})"
             f".write_text({text!r})")
    return ["USER root", f"RUN python3 -c {json.dumps(write)}", "USER 10001:10001"]


# Drill images: a real failure each, as a bad release would bring it (tests/integration/test_worker_node.py,
# test_migrations.py, the staging rehearsal).
DRILLS = {
    "crashloop": ["# A release whose server has a broken setting: it names it and exits 78 at start, the pod",
                  "# crash-loops; its migrations (`colors-app migrate`, the same image) are fine, as when a release's",
                  "# schema is right and its server is not. Set by the entrypoint: the Deployment sets this variable",
                  "# too, and a pod's env would win over ENV.",
                  'ENTRYPOINT ["sh", "-c", "[ \\"$1\\" = migrate ] || export COLORS_SHUTDOWN_DELAY_SECONDS=-1; '
                  'exec colors-app \\"$@\\"", "colors-app"]'],
    "never-ready": ["# A release pointed at a database it cannot reach: /healthz answers, /readyz stays 503.",
                    'ENTRYPOINT ["env", "COLORS_STORE=postgres", '
                    '"COLORS_DATABASE_URL=postgresql://colors@127.0.0.1:9/colors", "colors-app"]'],
    "errors": ["# A release that starts, is alive and ready, and answers 500 on its dashboard page (a template that",
               "# fails to render): only what its pods serve shows it - the smoke check, the metric gates, the alerts.",
               *written("templates/dashboard.html", "{{ release.broken.page }}")],
    "contract": ["# A release whose migration is not expand-only: palettes' author becomes required, which the",
                 "# releases before it (they insert palettes without one) cannot live with.",
                 *written("migrations/0004_contract_palette_author_required.sql",
                          "-- contract: every palette names its author; releases before this one insert palettes "
                          "without one.\nUPDATE palettes SET created_by = 'unknown' WHERE created_by IS NULL;\n"
                          "ALTER TABLE palettes ALTER COLUMN created_by SET NOT NULL;\n")],
}


def build_drills(image: str) -> list[str]:
    tags = []
    for name, lines in DRILLS.items():
        tag = f"{image}-drill-{name}"
        dockerfile = "\n".join([f"FROM {image}", f'LABEL colors.drill="{name}"', *lines]) + "\n"
        sh(["docker", "build", "--quiet", "--tag", tag, "-"], input=dockerfile, timeout=300,
           env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
        tags.append(tag)
    return tags


def load_worker_node(tags: list[str]) -> dict:
    """Copy the images into the local platform's worker node (skipped, with the reason, when it does not run)."""
    result = sh([sys.executable, str(REPO / "localplatform" / "platformctl.py"), "load-images", *tags])
    return json.loads(result.stdout)


def app_version() -> str:
    """The version of the app (app/pyproject.toml): the image's version tag."""
    return tomllib.loads((APP / "pyproject.toml").read_text())["project"]["version"]


def git(*args: str) -> str:
    return sh(["git", "-C", str(REPO), *args]).stdout.strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repository", default="localhost/colors", help="image repository (no tag)")
    parser.add_argument("--version", help="build the working tree as this version (only that tag; benchmarks "
                                          "release it as a second version); default app/pyproject.toml's")
    parser.add_argument("--load-worker-node", action="store_true",
                        help="copy the images into the local platform's worker node")
    args = parser.parse_args()
    try:
        docker_ready()
        base, base_built = ensure_base()
        version = args.version or app_version()
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "app"))
        build_time = git("show", "-s", "--format=%cI", "HEAD")
        build_wheels(sys.executable)
        tags = [f"{args.repository}:{version}"]
        if not args.version:
            tags.append(f"{args.repository}:git-{sha[:12]}{'-dirty' if dirty else ''}")
        sh(["docker", "build", "--quiet", "--file", str(APP / "Dockerfile"), "--build-arg", f"BASE={base}",
            "--build-arg", f"VERSION={version}", "--build-arg", f"GIT_SHA={sha}",
            "--build-arg", f"BUILD_TIME={build_time}", *(x for t in tags for x in ("--tag", t)), str(APP)],
           timeout=900, env={"DOCKER_BUILDKIT": "0", "PATH": "/usr/local/bin:/usr/bin:/bin"})
        image_id = sh(["docker", "image", "inspect", "--format", "{{.Id}}", tags[0]]).stdout.strip()
        drills = build_drills(tags[0])
        loaded = load_worker_node(tags + drills) if args.load_worker_node else None
    except BuildError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"tags": tags, "id": image_id, "base": base, "base_built": base_built, "version": version,
                      "drills": drills, **({"worker_node": loaded} if loaded is not None else {})}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
