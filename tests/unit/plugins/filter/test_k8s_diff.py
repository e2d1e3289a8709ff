"""Unit tests of the k8s_changes filter (plugins/filter/k8s_diff.py)."""

from __future__ import annotations

import importlib.util

import pytest
from ansible.errors import AnsibleFilterError
from helpers import REPO

spec = importlib.util.spec_from_file_location("k8s_diff", REPO / "plugins" / "filter" / "k8s_diff.py")
k8s_diff = importlib.util.module_from_spec(spec)
spec.loader.exec_module(k8s_diff)
k8s_changes = k8s_diff.FilterModule().filters()["k8s_changes"]

QUOTA = {"kind": "ResourceQuota", "metadata": {"name": "colors", "namespace": "colors"}}


def _result(changed, before=None, after=None, diff=True):
    res = {"changed": changed, "result": QUOTA}
    if diff:
        res["diff"] = {"before": before, "after": after}
    return res


def test_a_changed_field_is_listed_with_before_and_after():
    before = {"spec": {"hard": {"pods": "40", "services": "10"}}, "metadata": {"resourceVersion": "1"}}
    after = {"spec": {"hard": {"pods": "41", "services": "10"}}, "metadata": {"resourceVersion": "2"}}
    assert k8s_changes([_result(True, before, after)]) == [
        "ResourceQuota colors/colors spec.hard.pods: '40' -> '41'"]


def test_unchanged_objects_and_server_managed_fields_are_ignored():
    before = {"spec": {"x": 1}, "metadata": {"managedFields": [1], "generation": 1}, "status": {"a": 1}}
    after = {"spec": {"x": 1}, "metadata": {"managedFields": [2], "generation": 2}, "status": {"a": 2}}
    assert k8s_changes([_result(True, before, after), _result(False, before, {"spec": {"x": 2}})]) == []


def test_a_new_object_is_reported_created_and_a_change_without_diff_mode_is_reported_changed():
    assert k8s_changes([_result(True, None, {"spec": {}})]) == ["ResourceQuota colors/colors: created"]
    assert k8s_changes([_result(True, diff=False)]) == ["ResourceQuota colors/colors: changed"]


def test_added_and_removed_fields_say_absent():
    before = {"spec": {"hard": {"pods": "40"}}}
    after = {"spec": {"hard": {"services": "10"}}}
    assert k8s_changes({"results": [_result(True, before, after)]}) == [
        "ResourceQuota colors/colors spec.hard.pods: '40' -> '(absent)'",
        "ResourceQuota colors/colors spec.hard.services: '(absent)' -> '10'",
    ]


def test_a_loop_result_of_multi_document_calls_is_unwrapped():
    before = {"spec": {"replicas": 2}}
    after = {"spec": {"replicas": 3}}
    loop = [{"result": {"results": [_result(True, before, after)]}}]
    assert k8s_changes(loop) == ["ResourceQuota colors/colors spec.replicas: 2 -> 3"]


def test_input_that_is_not_a_k8s_result_names_the_value():
    with pytest.raises(AnsibleFilterError, match="got str: 'nonsense'"):
        k8s_changes("nonsense")
