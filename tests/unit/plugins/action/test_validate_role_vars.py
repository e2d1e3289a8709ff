"""Unit tests of the colors.deploy.validate_role_vars action: a role validates its own variables and a bad value is
one line naming the variable, the value and what is allowed."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from ansible.errors import AnsibleActionFail
from helpers import REPO, load_plugin, tool_env

action = load_plugin("plugins/action/validate_role_vars.py")


@pytest.mark.parametrize(("values", "message"), [
    ({"v": "v1.2"}, 'v="v1.2" is not valid: expected a semantic version'),
    ({"v": 1}, "v=1 is not valid"),  # a number is not a version string
    ({"n": "Bad_NS"}, 'n="Bad_NS" is not valid: expected a DNS-1123 label'),
    ({"r": "0"}, "r=0 is out of range: allowed 1 to 50."),
    ({"r": "many"}, "r=many is out of range"),
])
def test_format_errors_name_the_variable_the_value_and_what_is_allowed(values, message):
    errors = action.format_errors(values, {"v": "semver", "n": "dns_label"}, {"r": {"min": 1, "max": 50}})
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_good_and_unset_values_pass_and_a_role_may_give_its_own_pattern():
    own = {"x": {"pattern": "^a+$", "allowed": "only a"}}
    assert action.format_errors({"v": "1.5.0-rc.1+b7", "n": "colors", "r": 50, "x": "aaa"},
                                {"v": "semver", "n": "dns_label", **own}, {"r": {"min": 1, "max": 50}}) == []
    assert action.format_errors({}, {"v": "semver"}, {"r": {"min": 1, "max": 2}}) == []
    assert action.format_errors({"x": "b"}, own, {}) == ['x="b" is not valid: expected only a.']


def test_an_unknown_format_name_is_an_error_naming_the_known_ones():
    with pytest.raises(AnsibleActionFail, match="known: dns_label, image_repository, semver"):
        action.format_errors({"v": "1"}, {"v": "semantic"}, {})


@pytest.fixture(scope="module")
def role(tmp_path_factory):
    """A role with an argument spec, a default and a validate entry point, and a playbook that runs it."""
    root = tmp_path_factory.mktemp("validate")
    base = root / "roles" / "demo"
    for folder in ("meta", "defaults", "tasks"):
        (base / folder).mkdir(parents=True)
    (base / "meta" / "argument_specs.yml").write_text(yaml.safe_dump({"argument_specs": {"main": {
        "short_description": "demo", "options": {
            "demo_strategy": {"type": "str", "choices": ["rolling", "canary"], "default": "rolling"},
            "demo_version": {"type": "str", "required": True}}}}}))
    (base / "defaults" / "main.yml").write_text("demo_strategy: rolling\n")
    (base / "tasks" / "validate.yml").write_text(yaml.safe_dump([{
        "name": "Validate", "colors.deploy.validate_role_vars": {"formats": {"demo_version": "semver"}}}]))
    (base / "tasks" / "main.yml").write_text("[]\n")
    (root / "play.yml").write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Validate the role", "ansible.builtin.include_role": {"name": "demo", "tasks_from": "validate"}}]}]))
    return root


def _play(role, *extra: str) -> subprocess.CompletedProcess:
    env = tool_env(ANSIBLE_ROLES_PATH=str(role / "roles"))
    return subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(role / "play.yml"), *extra],
                          cwd=role, env=env, capture_output=True, text=True, check=False)


def test_a_role_with_good_values_passes(role):
    result = _play(role, "-e", "demo_version=1.2.3")
    assert result.returncode == 0, result.stdout[-2000:]


@pytest.mark.parametrize(("extra", "line"), [
    (["-e", "demo_version=1.2.3", "-e", "demo_strategy=bluegreen"],
     "Role demo: value of demo_strategy must be one of: rolling, canary, got: bluegreen. Nothing was changed."),
    (["-e", "demo_version=v1"], 'Role demo: demo_version="v1" is not valid: expected a semantic version'),
    ([], "Role demo: missing required arguments: demo_version."),
])
def test_a_bad_value_is_one_line_and_the_argument_spec_is_not_printed(role, extra, line):
    result = _play(role, *extra)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert line in output, output[-2000:]
    assert "argument_spec_data" not in output and "choices:" not in output


def test_the_plugin_is_what_the_roles_of_the_project_call():
    """Every role preflight may validate has the entry point, and preflight no longer owns their formats."""
    spec = yaml.safe_load((REPO / "roles" / "preflight" / "meta" / "argument_specs.yml").read_text())
    assert "preflight_validated_roles" in spec["argument_specs"]["main"]["options"]
    for validate in REPO.glob("roles/*/tasks/validate.yml"):
        tasks = yaml.safe_load(validate.read_text())
        assert [t for t in tasks if "colors.deploy.validate_role_vars" in t], validate
    assert not (REPO / "roles" / "preflight" / "vars" / "main.yml").exists()
