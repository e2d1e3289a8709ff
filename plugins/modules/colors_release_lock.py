#!/usr/bin/python
"""Ansible module colors_release_lock: one release per environment at a time (a Lease in the cluster)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: colors_release_lock
short_description: Hold the release lock of an environment (a Kubernetes Lease that expires if its holder dies)
description:
  - Acquires, renews or releases the Lease I(namespace)/I(name). While a holder's lease has not expired,
    nobody else can acquire it, so a second deploy to the same environment is refused with a message naming
    the holder, since when, and when the lock expires.
  - A holder that died stops renewing; once I(duration) seconds have passed since its last renewal, the next
    run takes the lock over (and says so in C(previous_holder)).
  - Writes carry the Lease's resourceVersion, so two runs racing for a free or expired lock cannot both win.
  - In check mode the module reports what it would do and changes nothing.
  - Authentication options are kubernetes.core's (kubeconfig, context, host, api_key, ... and the
    K8S_AUTH_* environment variables).
options:
  namespace:
    description: Namespace of the Lease (the application namespace).
    type: str
    required: true
  name:
    description: Name of the Lease.
    type: str
    default: colors-release
  holder:
    description: Identity of this run, e.g. C(user@host/pid) or the CI job URL.
    type: str
    required: true
  state:
    description:
      - C(acquired) takes or renews the lock; C(released) gives it back.
      - A lock that another holder has now (it took over an expired lease, or pre-empted this run) is left to it
        by C(released) - there is nothing of this holder's to give back - unless I(force).
    type: str
    choices: [acquired, released]
    default: acquired
  duration:
    description:
      - Seconds the lock stays valid after each renewal; a dead holder blocks others at most this long.
      - The release engine renews it while it runs (the I(lock) option of M(colors.deploy.colors_release) and
        M(colors.deploy.colors_rollback)), so a release may last longer than this.
    type: int
    default: 60
  force:
    description: With I(state=released), release a lock held by someone else (only when that run is known dead).
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
attributes:
  check_mode:
    support: full
    details: Reports what it would do and changes nothing.
"""

EXAMPLES = r"""
- name: Take the release lock of the environment
  colors.deploy.colors_release_lock:
    namespace: colors
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ inventory_hostname }}"

- name: Give the lock back when the release is over
  colors.deploy.colors_release_lock:
    namespace: colors
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ inventory_hostname }}"
    state: released
"""

RETURN = r"""
holder:
  description: Holder of the lock after the call (null once released).
  returned: always
  type: str
previous_holder:
  description: Holder the lock was taken over from (an expired lease) or released from.
  returned: always
  type: str
renewed:
  description: Whether the call renewed a lock this holder already had.
  returned: when state=acquired
  type: bool
lease:
  description: The Lease spec written (holderIdentity, leaseDurationSeconds, acquireTime, renewTime).
  returned: when state=acquired
  type: dict
"""

from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402, F401
    AUTH_ARG_SPEC,
    OperatorError,
    run_module,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_k8s import (  # noqa: E402
    argument_spec as k8s_argument_spec,
)
from ansible_collections.colors.deploy.plugins.module_utils.colors_release_lock import (  # noqa: E402
    LeaseApi,
    ReleaseLock,
)


def argument_spec() -> dict:
    return k8s_argument_spec(
        namespace=dict(type="str", required=True),
        name=dict(type="str", default="colors-release"),
        holder=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "released"], default="acquired"),
        duration=dict(type="int", default=60),
        force=dict(type="bool", default=False),
    )


def run(module, lock) -> dict:
    params = module.params
    if params["state"] == "acquired":
        if params["duration"] < 10:
            raise OperatorError(f"duration={params['duration']} is too short: allowed 10 seconds or more")
        return lock.acquire(params["holder"], params["duration"], check_mode=module.check_mode)
    return lock.release(params["holder"], force=params["force"], check_mode=module.check_mode)


def main() -> None:
    def body(module, client):
        lock = ReleaseLock(LeaseApi(client.client.client), module.params["namespace"], module.params["name"])
        return run(module, lock)

    run_module(argument_spec(), body, "Release lock")


if __name__ == "__main__":
    main()
