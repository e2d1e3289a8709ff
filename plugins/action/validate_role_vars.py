"""Action plugin of colors.deploy.validate_role_vars: the calling role validates its own variables (its argument
spec, plus the formats and ranges an argument spec cannot express) and fails with one line per bad value, naming the
variable, the value and what is allowed - never the whole argument spec."""

from __future__ import annotations

import json
import re
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.colors.deploy.plugins.modules.validate_role_vars import argument_spec

# Formats more than one role needs, named by a role instead of restated (a role may give its own pattern).
FORMATS = {
    "semver": {
        "pattern": r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$",
        "allowed": 'a semantic version MAJOR.MINOR.PATCH such as 1.4.2 or 1.5.0-rc.1 (no leading "v")',
    },
    "image_repository": {
        "pattern": r"^[a-z0-9]+([._-][a-z0-9]+)*(\.[a-z0-9-]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+$",
        "allowed": "an image repository with a registry host and no tag, such as "
                   "123456789012.dkr.ecr.eu-west-1.amazonaws.com/colors",
    },
    "dns_label": {
        "pattern": r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        "allowed": "a DNS-1123 label (lower-case letters, digits and '-', at most 63 characters)",
    },
}


def format_errors(values: dict[str, Any], formats: dict[str, Any], ranges: dict[str, dict]) -> list[str]:
    """The values that do not match their pattern or lie outside their range (variables not set are left alone).
    A format is a dict of pattern and allowed, or the name of one of FORMATS."""
    errors = []
    for name, rule in formats.items():
        if isinstance(rule, str):
            if rule not in FORMATS:
                raise AnsibleActionFail(f"format {rule!r} of {name} is unknown; known: {', '.join(sorted(FORMATS))}")
            rule = FORMATS[rule]
        if name in values and not (isinstance(values[name], str) and re.search(rule["pattern"], values[name])):
            errors.append(f"{name}={json.dumps(values[name])} is not valid: expected {rule['allowed']}.")
    for name, bounds in ranges.items():
        if name not in values:
            continue
        try:
            number = int(values[name])
        except (TypeError, ValueError):
            number = None
        if number is None or not bounds["min"] <= number <= bounds["max"]:
            errors.append(f"{name}={values[name]} is out of range: allowed {bounds['min']} to {bounds['max']}.")
    return errors


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _, args = self.validate_argument_spec(argument_spec=argument_spec())
        role = self._task._role
        if role is None:
            raise AnsibleActionFail("validate_role_vars validates the variables of the role that calls it: call it "
                                    "from a role's tasks")
        specs = role._get_role_argspecs()
        if args["entry_point"] not in specs:
            raise AnsibleActionFail(f"role {role.get_name()} has no entry point {args['entry_point']!r} in "
                                    f"meta/argument_specs.yml (it has: {', '.join(sorted(specs)) or 'none'})")
        options = specs[args["entry_point"]].get("options") or {}
        names = set(options) | set(args["formats"]) | set(args["ranges"])
        values = self._templar.template({n: task_vars[n] for n in names if n in task_vars})
        errors = ArgumentSpecValidator(options).validate(
            {n: v for n, v in values.items() if n in options}, validate_role_argument_spec=True).error_messages
        errors = [*errors, *format_errors(values, args["formats"], args["ranges"])]
        result.update(changed=False, validated=sorted(n for n in options if n in values))
        if errors:
            result.update(failed=True, argument_errors=errors,
                          msg=f"Role {role.get_name()}: " + " ".join(e if e.endswith(".") else e + "." for e in errors)
                          + " Nothing was changed.")
        else:
            result["msg"] = f"The variables of role {role.get_name()} are valid"
        return result
