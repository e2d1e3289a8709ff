"""Filters of the release engine: image references, semantic versions, canary steps, durations, dashboard URL."""

from __future__ import annotations

import math
import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: image_ref
short_description: Parse and validate container image references, versions, canary steps and durations
description:
  - C(image_ref) splits an image reference into registry, repository, tag and digest (Docker's rules, the
    default registry being C(docker.io)) and fails on a malformed one.
  - C(semver) parses a semantic version (SemVer 2.0.0, no leading C(v)); C(semver_compare) returns -1, 0 or 1
    following SemVer precedence (pre-releases sort before the release, build metadata is ignored).
  - C(canary_steps) turns step percentages and a replica count into the canary and stable replica counts of
    each step (at least one canary pod, the last step always the full count).
  - C(duration_seconds) converts C(90), C(90s), C(1m30s), C(2h), C(500ms) into seconds.
  - C(dashboard_url) says where the released app answers, from its Service, its pods and the nodes (a dict with
    C(url) and C(how)); a public URL given as its argument wins.
  - Every filter raises an error that quotes the offending value.
positional: _input
options:
  _input:
    description: The value to parse (an image reference, a version, a list of percentages or a duration).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Parse the image of a release
  ansible.builtin.debug:
    msg: "{{ '123456789012.dkr.ecr.eu-west-1.amazonaws.com/colors:1.4.2' | image_ref }}"

- name: Refuse a downgrade unless asked
  ansible.builtin.assert:
    that: (app_release_version | semver_compare(current_version)) >= 0

- name: Replica counts of a 10/50/100 canary over 4 replicas
  ansible.builtin.debug:
    msg: "{{ [10, 50, 100] | canary_steps(4) }}"

- name: Seconds of a pause
  ansible.builtin.debug:
    msg: "{{ '1m30s' | duration_seconds }}"
"""

RETURN = r"""
_value:
  description: >-
    image_ref - a dict with registry, repository, tag, digest, name (registry/repository) and reference;
    semver - a dict with major, minor, patch, prerelease (list) and build;
    semver_compare - -1, 0 or 1; canary_steps - a list of dicts with percent, canary and stable;
    duration_seconds - a number of seconds.
  type: raw
"""

# Docker's reference grammar (distribution/reference), without the optional scheme-less corner cases.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*))"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}))?$"
)
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def image_ref(value: Any) -> dict[str, str | None]:
    if not isinstance(value, str) or not value:
        raise AnsibleFilterError(f"image_ref: {value!r} is not an image reference (a non-empty string)")
    m = _REFERENCE.match(value)
    if not m or len(m.group("name")) > 255:
        raise AnsibleFilterError(
            f"image_ref: {value!r} is not a valid image reference; expected [registry/]repository[:tag][@digest] "
            "with a lower-case repository, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/colors:1.4.2")
    domain, path = m.group("domain"), m.group("path")
    # A first component is a registry only when it looks like a host (Docker's rule).
    if domain and not ("." in domain or ":" in domain or domain == "localhost"):
        domain, path = None, f"{domain}/{path}"
    registry = domain or "docker.io"
    if registry == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return {
        "registry": registry,
        "repository": path,
        "tag": m.group("tag") or (None if m.group("digest") else "latest"),
        "digest": m.group("digest"),
        "name": f"{registry}/{path}",
        "reference": value,
    }


def semver(value: Any) -> dict[str, Any]:
    m = _SEMVER.match(str(value)) if isinstance(value, str) else None
    if not m:
        raise AnsibleFilterError(
            f"semver: {value!r} is not a semantic version; expected MAJOR.MINOR.PATCH[-prerelease][+build] "
            "such as 1.4.2 or 1.5.0-rc.1 (no leading 'v')")
    return {
        "major": int(m.group(1)), "minor": int(m.group(2)), "patch": int(m.group(3)),
        "prerelease": m.group(4).split(".") if m.group(4) else [],
        "build": m.group(5),
    }


def _prerelease_key(parts: list[str]) -> tuple:
    # A release sorts after all of its pre-releases; numeric identifiers sort before alphanumeric ones.
    if not parts:
        return (1,)
    return (0, *[(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])


def semver_compare(left: Any, right: Any) -> int:
    a, b = semver(left), semver(right)
    key_a = (a["major"], a["minor"], a["patch"], _prerelease_key(a["prerelease"]))
    key_b = (b["major"], b["minor"], b["patch"], _prerelease_key(b["prerelease"]))
    return (key_a > key_b) - (key_a < key_b)


def canary_steps(percents: Any, replicas: Any) -> list[dict[str, int]]:
    try:
        total = int(replicas)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"canary_steps: replicas {replicas!r} is not a whole number") from None
    if total < 1:
        raise AnsibleFilterError(f"canary_steps: replicas {replicas!r} must be at least 1")
    if not isinstance(percents, list) or not percents:
        raise AnsibleFilterError(f"canary_steps: {percents!r} is not a non-empty list of percentages")
    steps, previous = [], 0
    for raw in percents:
        try:
            percent = float(raw)
        except (TypeError, ValueError):
            raise AnsibleFilterError(f"canary_steps: step {raw!r} is not a number (percent of replicas)") from None
        if not 0 < percent <= 100 or percent <= previous:
            raise AnsibleFilterError(
                f"canary_steps: step {raw!r} of {percents!r} must be above the previous step and at most 100")
        previous = percent
        canary = total if percent == 100 else min(total, max(1, math.ceil(total * percent / 100)))
        steps.append({"percent": int(percent) if percent.is_integer() else percent,
                      "canary": canary, "stable": total - canary})
    if previous != 100:
        steps.append({"percent": 100, "canary": total, "stable": 0})
    return steps


def duration_seconds(value: Any) -> float | int:
    if isinstance(value, bool):
        raise AnsibleFilterError(f"duration_seconds: {value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise AnsibleFilterError(f"duration_seconds: {value!r} is negative")
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise AnsibleFilterError(
            f"duration_seconds: {value!r} is not a duration; expected seconds or a combination such as "
            "90s, 1m30s, 2h, 500ms")
    total = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    return int(total) if float(total).is_integer() else total


def _ready(pod: dict) -> bool:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def dashboard_url(service: Any, pods: Any = (), nodes: Any = (), public_url: Any = "") -> dict[str, str]:
    """Where the app answers: the public URL when one is configured, else a NodePort on the address of a node that
    runs a ready pod, else only the in-cluster name (with the reason no URL reaches it from outside)."""
    if not isinstance(service, dict) or not service.get("metadata"):
        raise AnsibleFilterError(f"dashboard_url: expected a Service object, got {str(service)[:80]!r}")
    meta, spec = service["metadata"], service.get("spec") or {}
    port = next(iter(spec.get("ports") or []), {})
    in_cluster = f"http://{meta['name']}.{meta.get('namespace', 'default')}.svc:{port.get('port', 80)}/"
    if public_url:
        return {"url": str(public_url), "how": "public URL of the environment"}
    if spec.get("type") == "NodePort" and port.get("nodePort"):
        addresses = {}
        for node in nodes or ():
            internal = [a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"]
            if internal:
                addresses[node["metadata"]["name"]] = internal[0]
        for pod in pods or ():
            node = (pod.get("spec") or {}).get("nodeName")
            if _ready(pod) and node in addresses:
                return {"url": f"http://{addresses[node]}:{port['nodePort']}/",
                        "how": f"NodePort {port['nodePort']} of node {node}, which runs a ready pod"}
        return {"url": "", "how": f"no ready pod runs on a node with an address (simulated nodes only?); "
                                  f"inside the cluster: {in_cluster}"}
    return {"url": "", "how": f"a {spec.get('type', 'ClusterIP')} Service, reached inside the cluster at {in_cluster}"}


class FilterModule:
    def filters(self):
        return {
            "image_ref": image_ref,
            "semver": semver,
            "semver_compare": semver_compare,
            "canary_steps": canary_steps,
            "duration_seconds": duration_seconds,
            "dashboard_url": dashboard_url,
        }
