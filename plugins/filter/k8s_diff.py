"""Filters that turn kubernetes.core results into short, readable change lists."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

IGNORED_METADATA = {"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "annotations"}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(_flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: value}


def _clean(obj: dict | None) -> dict:
    if not obj:
        return {}
    obj = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in IGNORED_METADATA}
    return {**obj, "metadata": meta}


def _single_results(data: Any) -> list[dict]:
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return _single_results(data["results"])
    if isinstance(data, dict) and isinstance(data.get("result"), dict) and "results" in data["result"]:
        return _single_results(data["result"]["results"])
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return [r for item in data for r in _single_results(item)]
    raise AnsibleFilterError(
        f"k8s_changes expects kubernetes.core.k8s results, got {type(data).__name__}: {data!r:.200}")


def k8s_changes(data: Any) -> list[str]:
    lines = []
    for res in _single_results(data):
        if not res.get("changed"):
            continue
        diff = res.get("diff")
        before, after = _clean((diff or {}).get("before")), _clean((diff or {}).get("after"))
        obj = res.get("result") or after or before
        meta = obj.get("metadata") or {}
        where = f"{meta['namespace']}/" if meta.get("namespace") else ""
        name = f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}"
        if diff is None:  # the module ran without --diff: it only says that the object changed
            lines.append(f"{name}: changed")
            continue
        if not before:
            lines.append(f"{name}: created")
            continue
        old, new = _flatten(before), _flatten(after)
        for path in sorted(set(old) | set(new)):
            if old.get(path) != new.get(path):
                lines.append(f"{name} {path}: {old.get(path, '(absent)')!r} -> {new.get(path, '(absent)')!r}")
    return lines


class FilterModule:
    def filters(self):
        return {"k8s_changes": k8s_changes}
