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
    description: C(acquired) takes or renews the lock; C(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  duration:
    description: Seconds the lock stays valid after each renewal; a dead holder blocks others at most this long.
    type: int
    default: 900
  force:
    description: With I(state=released), release a lock held by someone else (only when that run is known dead).
    type: bool
    default: false
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
author:
  - Colors platform team
"""

EXAMPLES = r"""
- name: Take the release lock of the environment
  colors_release_lock:
    namespace: colors
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}@{{ inventory_hostname }}"

- name: Give the lock back when the release is over
  colors_release_lock:
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

import traceback  # noqa: E402 - Ansible modules define their documentation first

from ansible.module_utils.basic import missing_required_lib  # noqa: E402

try:
    from ansible.module_utils.colors_release_lock import LeaseApi, LockHeld, ReleaseLock
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException

    IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by main()
    IMPORT_ERROR = traceback.format_exc()


def argument_spec() -> dict:
    spec = dict(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        name=dict(type="str", default="colors-release"),
        holder=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "released"], default="acquired"),
        duration=dict(type="int", default=900),
        force=dict(type="bool", default=False),
    )
    return spec


def run(module, lock) -> dict:
    params = module.params
    if params["state"] == "acquired":
        if params["duration"] < 10:
            module.fail_json(msg=f"duration={params['duration']} is too short: allowed 10 seconds or more")
        return lock.acquire(params["holder"], params["duration"], check_mode=module.check_mode)
    return lock.release(params["holder"], force=params["force"], check_mode=module.check_mode)


def main() -> None:
    if IMPORT_ERROR:
        from ansible.module_utils.basic import AnsibleModule

        AnsibleModule(argument_spec={}).fail_json(msg=missing_required_lib("kubernetes.core"),
                                                  exception=IMPORT_ERROR)
    module = AnsibleK8SModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        client = get_api_client(module=module)
        lock = ReleaseLock(LeaseApi(client.client.client), module.params["namespace"], module.params["name"])
        module.exit_json(**run(module, lock))
    except LockHeld as exc:
        module.fail_json(msg=str(exc))
    except CoreException as exc:
        module.fail_json(msg=f"Could not reach the Kubernetes API: {exc}")
    except Exception as exc:  # the API's own answer (403, 409, ...) is the most useful message
        reason = getattr(exc, "reason", None) or str(exc)
        body = getattr(exc, "body", "") or ""
        where = f"{module.params['namespace']}/{module.params['name']}"
        module.fail_json(msg=f"Release lock {where}: {reason} {body}".strip())


if __name__ == "__main__":
    main()
