#!/usr/bin/python
"""Ansible module colors_rollback: roll a Deployment back to any recorded revision and wait for health."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_rollback
short_description: Roll the Colors Deployment back to the previous or any recorded revision, and wait until healthy
description:
  - Chooses the target among the Deployment's recorded revisions (its ReplicaSets) - the previous release by
    default, or the one given by I(to_revision) or I(to_version) (the image tag) - puts its pod template back
    and waits with the release engine's health gates (rollout conditions, readiness, crash loops, image pulls).
  - Unlike kubernetes.core.k8s_rollback, it reaches any recorded revision and waits for the verdict.
  - Records the rollback in the release ledger. Fails, listing the recorded revisions, when the target is unknown.
  - In check mode it reports the target and changes nothing.
options:
  namespace:
    description: Namespace of the Deployment.
    type: str
    required: true
  name:
    description: Name of the Deployment.
    type: str
    required: true
  selector:
    description: Labels selecting the Deployment's ReplicaSets and pods.
    type: dict
    required: true
  strategy:
    description:
      - C(rolling) restores an earlier revision of the Deployment.
      - C(blue_green) switches the Service back to the other colour (instant; that colour must be running
        healthy); needs I(service). It takes no I(to_version) or I(to_revision) - given one, it fails naming it and
        changes nothing (to restore a version, release it again).
    type: str
    choices: [rolling, blue_green]
    default: rolling
  service:
    description: The rendered Service manifest (blue_green).
    type: dict
  to_revision:
    description: Revision number to restore (see C(history) in the result).
    type: int
  to_version:
    description: Version (image tag) to restore; the newest revision running it is used.
    type: str
  actor:
    description: Who rolls back (recorded in the ledger).
    type: str
    required: true
  pre_empts:
    description: Holder of the release lock this rollback broke to run - a release it pre-empts (recorded in the
      ledger as C(pre_empted)).
    type: str
  poll_interval:
    description: Seconds between two looks at the health gates.
    type: float
    default: 0.25
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
  - colors.deploy.common.lock
attributes:
  check_mode:
    support: full
    details: Reports the target revision and changes nothing.
"""

EXAMPLES = r"""
- name: Roll back to the previous release
  colors.deploy.colors_rollback:
    namespace: colors
    name: colors
    selector: {app.kubernetes.io/name: colors}
    actor: oncall@laptop

- name: Roll back to version 1.3.0
  colors.deploy.colors_rollback:
    namespace: colors
    name: colors
    selector: {app.kubernetes.io/name: colors}
    to_version: "1.3.0"
    actor: oncall@laptop
"""

RETURN = r"""
from_image:
  description: Image running before the rollback.
  returned: always
  type: str
target_image:
  description: Image restored.
  returned: when a target was found
  type: str
target_revision:
  description: Revision restored.
  returned: when a target was found
  type: int
restored:
  description: The health verdict of the restored revision - state, revision, seconds, evidence.
  returned: when rolled back
  type: dict
history:
  description: Recorded revisions, newest first - revision, image, replicaset.
  returned: always
  type: list
  elements: dict
"""

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402, F401
    AUTH_ARG_SPEC,
    OperatorError,
    run_module,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402
    argument_spec as k8s_argument_spec,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_cluster import (  # noqa: E402
    ClusterApi,
    Resilient,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_engine import (  # noqa: E402
    BlueGreenRelease,
    RollingRelease,
    manual_rollback,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_lock import (  # noqa: E402
    LOCK_ARG_SPEC,
    held_for_engine,
)


def argument_spec() -> dict:
    return k8s_argument_spec(
        namespace=dict(type="str", required=True),
        name=dict(type="str", required=True),
        selector=dict(type="dict", required=True),
        strategy=dict(type="str", choices=["rolling", "blue_green"], default="rolling"),
        service=dict(type="dict"),
        to_revision=dict(type="int"),
        to_version=dict(type="str"),
        actor=dict(type="str", required=True),
        lock=LOCK_ARG_SPEC,
        api_outage_tolerance=dict(type="float", default=60),
        pre_empts=dict(type="str"),
        poll_interval=dict(type="float", default=0.25),
    )


def engine_params(params: dict) -> dict:
    """The release engine's view of the Deployment being rolled back."""
    return {"namespace": params["namespace"], "poll_interval": params["poll_interval"], "auto_rollback": False,
            "deployment": {"metadata": {"name": params["name"]},
                           "spec": {"selector": {"matchLabels": params["selector"]}}}}


def main() -> None:
    def body(module, client):
        params = module.params
        api, sleep = held_for_engine(ClusterApi(client.client, dry_run=module.check_mode), client.client.client,
                                     params["namespace"], params.get("lock"), module.check_mode)
        api = Resilient(api, "the rollback", params["api_outage_tolerance"], sleep=sleep)
        if params["strategy"] == "blue_green":
            if params.get("to_version") or params.get("to_revision"):
                raise OperatorError(
                    "A blue_green rollback switches the Service back to the other colour; it takes no version or "
                    f"revision (given: {params.get('to_version') or params.get('to_revision')}). To restore a "
                    "version, rollback.yml -e app_release_rollback_to_version=<version> releases it again to the "
                    "idle colour. Nothing was changed.",
                    {})
            bluegreen = BlueGreenRelease(api, {**engine_params(params), "service": params["service"]}, sleep=sleep)
            return bluegreen.switch_back(params["actor"], check_mode=module.check_mode, pre_empts=params["pre_empts"])
        return manual_rollback(RollingRelease(api, engine_params(params), sleep=sleep), params["to_revision"],
                               params["to_version"], params["actor"], check_mode=module.check_mode,
                               pre_empts=params["pre_empts"])

    run_module(argument_spec(), body, "Rollback", mutually_exclusive=[("to_revision", "to_version")])


if __name__ == "__main__":
    main()
