#!/usr/bin/python
"""Ansible module colors_release_ledger: read the release ledger back from the cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_release_ledger
short_description: Read the release ledger of a Colors release back from the cluster
description:
  - Every release attempt of the release engine (M(colors.deploy.colors_release),
    M(colors.deploy.colors_rollback)) is a ConfigMap labelled C(colors.io/release-ledger=<release>) in the
    application namespace. This module returns them, oldest first, optionally only those started since a date.
  - Read-only; check mode returns the same entries.
  - The C(colors.deploy.release_report) filter turns the entries into deploy frequency, change failure rate and
    mean time to restore.
options:
  namespace:
    description: Namespace of the release.
    type: str
    required: true
  release:
    description: Name of the release (the Deployment).
    type: str
    default: colors
  since:
    description: Only entries started at or after this UTC time (C(YYYY-MM-DDTHH:MM:SSZ)).
    type: str
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
attributes:
  check_mode:
    support: full
    details: Read-only; returns the same entries.
"""

EXAMPLES = r"""
- name: Read the ledger
  colors.deploy.colors_release_ledger:
    namespace: colors
  register: ledger

- name: Report the delivery metrics of the last 30 days
  ansible.builtin.debug:
    msg: "{{ ledger.entries | colors.deploy.release_report(days=30) }}"
"""

RETURN = r"""
entries:
  description: Ledger entries, oldest first - id, actor, version, image, strategy, started, finished, verdict,
    gate, evidence, rollback_target, previous_image, verdict_seconds.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402, F401
    AUTH_ARG_SPEC,
    run_module,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402
    argument_spec as k8s_argument_spec,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import ClusterApi  # noqa: E402


def argument_spec() -> dict:
    return k8s_argument_spec(
        namespace=dict(type="str", required=True),
        release=dict(type="str", default="colors"),
        since=dict(type="str"),
    )


def select(entries: list[dict], since: str | None) -> list[dict]:
    chosen = [e for e in entries if since is None or e.get("started", "") >= since]
    return sorted(chosen, key=lambda e: (e.get("started", ""), e.get("id", "")))


def main() -> None:
    def body(module, client):
        entries = ClusterApi(client.client).ledger(module.params["namespace"], module.params["release"])
        return {"changed": False, "entries": select(entries, module.params["since"])}

    run_module(argument_spec(), body, "Release ledger")


if __name__ == "__main__":
    main()
