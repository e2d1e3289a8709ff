"""Unit tests of the colors_release_lock module's argument spec, validation and check mode."""

from __future__ import annotations

import pytest
from helpers import load_plugin

module_file = load_plugin("plugins/modules/colors_release_lock.py")
lock_utils = load_plugin("plugins/module_utils/colors_release_lock.py")


class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode=False, **params):
        spec = module_file.argument_spec()
        self.params = {k: v.get("default") for k, v in spec.items()} | params
        self.check_mode = check_mode

    def fail_json(self, msg, **kwargs):
        raise Failed(msg)


class RecordingLock:
    def __init__(self):
        self.calls = []

    def acquire(self, holder, duration, check_mode=False):
        self.calls.append(("acquire", holder, duration, check_mode))
        return {"changed": True}

    def release(self, holder, force=False, check_mode=False):
        self.calls.append(("release", holder, force, check_mode))
        return {"changed": True}


def test_argument_spec_reuses_kubernetes_core_auth_options():
    spec = module_file.argument_spec()
    for auth in ("kubeconfig", "context", "host", "api_key", "validate_certs"):
        assert auth in spec


def test_acquire_and_release_are_passed_through_with_check_mode():
    lock = RecordingLock()
    module_file.run(FakeModule(check_mode=True, namespace="colors", holder="me"), lock)
    module_file.run(FakeModule(namespace="colors", holder="me", state="released", force=True), lock)
    assert lock.calls == [("acquire", "me", 60, True), ("release", "me", True, False)]


def test_a_too_short_duration_is_refused_naming_the_value():
    with pytest.raises(module_file.OperatorError, match="duration=5 is too short: allowed 10 seconds or more"):
        module_file.run(FakeModule(namespace="colors", holder="me", duration=5), RecordingLock())
