#!/usr/bin/env python3
"""Publish the Colors image built by `make image` to a registry: `make publish REGISTRY=<host[:port]>`.

- The image pushed is the one `make image` tagged `localhost/colors:<version>` from a clean checkout; it is pushed
  as `<registry>/<repository>:<version>` and `<registry>/<repository>:git-<sha12>` (REPOSITORY, by default colors).
- ECR (`<account>.dkr.ecr.<region>.amazonaws.com`): logs in with a token from the ECR API (boto3, the job's AWS
  credentials, e.g. the OIDC role of release.yml). Any other registry is used as it is (the local test runs a
  CNCF Distribution registry on loopback).
- Tags are immutable (as in ECR, `image_tag_mutability = IMMUTABLE`): a version already in the registry is
  refused before anything is pushed, naming the tag; bump `app/pyproject.toml` instead.
- With RELEASE_TAG (the git tag of the release, e.g. v0.1.0) the tag must name the app's version.
- Writes a CycloneDX 1.5 SBOM of the pushed image (its Python distributions and Debian packages, read from the
  image itself) to reports/release/sbom.cdx.json.

Prints one JSON line: the references pushed, the digest and the SBOM path. Exit 2 on bad input, 1 on failure.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from build_image import REPO, BuildError, app_version, git, sh

SOURCE_REPOSITORY = "localhost/colors"
ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
REGISTRY_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$")
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])

# Read inside the image: every Python distribution and every installed Debian package.
INVENTORY_SCRIPT = r"""
import importlib.metadata as m, json
pkgs = sorted({(d.metadata["Name"], d.version) for d in m.distributions()})
debs, cur = [], {}
for line in open("/var/lib/dpkg/status", encoding="utf-8").read().splitlines() + [""]:
    if not line.strip():
        if cur.get("Status", "").endswith(" installed"):
            debs.append((cur["Package"], cur["Version"]))
        cur = {}
    elif ":" in line and not line.startswith(" "):
        k, v = line.split(":", 1); cur[k] = v.strip()
print(json.dumps({"python": pkgs, "deb": sorted(debs)}))
"""


class InputError(Exception):
    """Bad input: nothing was pushed."""


class PublishError(Exception):
    """A failure while publishing."""


def check_inputs(registry: str, release_tag: str, version: str) -> None:
    if not registry:
        raise InputError("REGISTRY is not set: give the registry host, e.g. "
                         "REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com (release.yml: vars.ECR_REGISTRY) "
                         "or REGISTRY=127.0.0.1:5000")
    if not REGISTRY_HOST.fullmatch(registry):
        raise InputError(f"REGISTRY={registry!r} is not a registry host: give host[:port] only, without scheme "
                         "or repository (e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com)")
    if release_tag and release_tag.removeprefix("v") != version:
        raise InputError(f"the release tag {release_tag!r} does not name the app's version {version} "
                         "(app/pyproject.toml): tag the commit v<version>, or bump the version first")
    if git("status", "--porcelain", "--", "app"):
        raise InputError("app/ has uncommitted changes: a published image must be built from a commit "
                         "(commit, then `make image`)")


def ecr_password(registry: str) -> str | None:
    match = ECR_HOST.fullmatch(registry)
    if not match:
        return None
    import boto3  # the project's venv has it; only needed for ECR

    client = boto3.client("ecr", region_name=match["region"],
                          endpoint_url=os.environ.get("AWS_ENDPOINT_URL_ECR") or None)
    data = client.get_authorization_token(registryIds=[match["account"]])["authorizationData"][0]
    return base64.b64decode(data["authorizationToken"]).decode().split(":", 1)[1]


def tag_exists(registry: str, repository: str, tag: str, password: str | None) -> bool:
    scheme = "http" if registry.split(":")[0] in ("127.0.0.1", "localhost") else "https"
    url = f"{scheme}://{registry}/v2/{repository}/manifests/{tag}"
    request = urllib.request.Request(url, method="HEAD", headers={"Accept": MANIFEST_TYPES})  # noqa: S310 - http(s) only
    if password:
        request.add_header("Authorization", "Basic " + base64.b64encode(f"AWS:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310 - scheme fixed above  # nosec B310
            return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise PublishError(f"the registry answered {exc.code} for {registry}/{repository}:{tag}") from exc
    except urllib.error.URLError as exc:
        raise PublishError(f"the registry {registry} cannot be reached ({exc.reason})") from exc


def sbom(image: str, reference: str, digest: str, version: str) -> dict:
    inventory = json.loads(sh(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3", image,
                               "-c", INVENTORY_SCRIPT]).stdout)
    components = [{"type": "library", "name": name, "version": ver, "purl": f"pkg:pypi/{name.lower()}@{ver}"}
                  for name, ver in inventory["python"]]
    components += [{"type": "library", "name": name, "version": ver,
                    "purl": f"pkg:deb/debian/{name}@{ver}?distro=debian-12"} for name, ver in inventory["deb"]]
    return {
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": f"urn:uuid:{uuid.uuid4()}",
        "metadata": {"component": {"type": "container", "name": reference.rsplit(":", 1)[0], "version": version,
                                   "hashes": [{"alg": "SHA-256", "content": digest.removeprefix("sha256:")}]}},
        "components": components,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=os.environ.get("REGISTRY", ""))
    parser.add_argument("--repository", default=os.environ.get("REPOSITORY", "colors"))
    parser.add_argument("--release-tag", default=os.environ.get("RELEASE_TAG", ""))
    parser.add_argument("--sbom", type=Path, default=REPO / "reports" / "release" / "sbom.cdx.json")
    args = parser.parse_args()
    version = app_version()
    try:
        check_inputs(args.registry, args.release_tag, version)
        sha = git("rev-parse", "HEAD")
        source = f"{SOURCE_REPOSITORY}:{version}"
        labels = json.loads(sh(["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", source]).stdout)
        if labels.get("org.opencontainers.image.revision") != sha:
            raise InputError(f"{source} was built from {labels.get('org.opencontainers.image.revision')}, not from "
                             f"HEAD {sha}: run `make image` first")
        password = ecr_password(args.registry)
        target = f"{args.registry}/{args.repository}"
        tags = [version, f"git-{sha[:12]}"]
        taken = [t for t in tags if tag_exists(args.registry, args.repository, t, password)]
        if taken:
            raise InputError(f"{target}:{taken[0]} is already published and tags are immutable: nothing was pushed. "
                             "Bump the version in app/pyproject.toml for a new release")
        if password:
            sh(["docker", "login", "--username", "AWS", "--password-stdin", args.registry], input=password)
        digest = ""
        for tag in tags:
            sh(["docker", "tag", source, f"{target}:{tag}"])
            out = sh(["docker", "push", f"{target}:{tag}"], timeout=900).stdout
            found = re.search(r"digest: (sha256:[0-9a-f]{64})", out)
            digest = found.group(1) if found else digest
        args.sbom.parent.mkdir(parents=True, exist_ok=True)
        args.sbom.write_text(json.dumps(sbom(source, f"{target}:{version}", digest, version), indent=1) + "\n")
    except InputError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    except (BuildError, PublishError, subprocess.TimeoutExpired) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"pushed": [f"{target}:{t}" for t in tags], "digest": digest, "sbom": str(args.sbom)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
