#!/usr/bin/python
"""Documentation and argument spec of the colors.deploy.validate_role_vars action (it runs on the controller)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: validate_role_vars
short_description: Validate the variables of the calling role and name each bad value in one line
description:
  - Validates the variables of the role that calls it against that role's own C(meta/argument_specs.yml) entry point
    (types, choices, required) and against the I(formats) and I(ranges) an argument spec cannot express.
  - Sees the values the role would use - the inventory, extra vars and the role's own defaults.
  - A bad value fails the task with one line naming the variable, its value and what is allowed (unlike
    M(ansible.builtin.validate_argument_spec), whose result prints the whole argument spec).
  - Each role's C(tasks/validate.yml) calls it; preflight runs that entry point of every role a playbook uses before
    anything changes.
  - Runs on the controller (an action plugin); changes nothing.
options:
  entry_point:
    description: The entry point of C(meta/argument_specs.yml) whose options are validated.
    type: str
    default: main
  formats:
    description:
      - Variable name to a dict of C(pattern) (a regular expression the string value must match) and C(allowed)
        (what the message says is allowed), or to the name of a format every role shares - C(semver),
        C(image_repository), C(dns_label). Variables that are not set are left alone.
    type: dict
    default: {}
  ranges:
    description: Variable name to a dict of C(min) and C(max), the inclusive bounds of a whole number.
    type: dict
    default: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - colors.deploy.common
attributes:
  check_mode:
    support: full
    details: Validation only; runs the same in check mode.
"""

EXAMPLES = r"""
- name: Validate the variables of this role
  colors.deploy.validate_role_vars:
    formats:
      app_release_version: semver
      app_release_name:
        pattern: '^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$'
        allowed: a DNS-1123 label of at most 42 characters
    ranges:
      app_release_replicas: {min: 1, max: 50}
"""

RETURN = r"""
validated:
  description: The options of the entry point that had a value.
  returned: always
  type: list
  elements: str
argument_errors:
  description: One message per bad value.
  returned: failure
  type: list
  elements: str
"""


def argument_spec() -> dict:
    return {
        "entry_point": {"type": "str", "default": "main"},
        "formats": {"type": "dict", "default": {}},
        "ranges": {"type": "dict", "default": {}},
    }


def main() -> None:  # pragma: no cover - the action plugin runs instead
    from ansible.module_utils.basic import AnsibleModule

    module = AnsibleModule(argument_spec(), supports_check_mode=True)
    module.fail_json(msg="validate_role_vars runs on the controller as an action plugin")


if __name__ == "__main__":
    main()
