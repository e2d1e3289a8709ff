"""colors_eks_kubeconfig: the merge keeps every other entry and is stable, so a re-run reports no change."""

from __future__ import annotations

import pytest
from helpers import load_plugin

module = load_plugin("plugins/modules/colors_eks_kubeconfig.py")
ARGS = {"context": "colors-prod", "cluster_name": "colors-prod", "region": "eu-west-1",
        "endpoint": "https://abc.gr7.eu-west-1.eks.amazonaws.com", "ca_data": "Q0E="}


def test_an_empty_file_gets_one_complete_entry_and_the_current_context():
    config = module.merge_kubeconfig(None, **ARGS)
    assert config["current-context"] == "colors-prod"
    assert config["clusters"] == [{"name": "colors-prod", "cluster": {"server": ARGS["endpoint"],
                                                                      "certificate-authority-data": "Q0E="}}]
    assert config["contexts"] == [{"name": "colors-prod", "context": {"cluster": "colors-prod", "user": "colors-prod"}}]
    user = config["users"][0]["user"]["exec"]
    assert user["command"] == "aws" and "--role-arn" not in user["args"]


def test_other_entries_and_the_current_context_are_kept_and_the_same_name_is_replaced():
    existing = {"apiVersion": "v1", "kind": "Config", "current-context": "mine",
                "clusters": [{"name": "mine", "cluster": {"server": "https://10.0.0.1"}},
                             {"name": "colors-prod", "cluster": {"server": "https://old"}}],
                "users": [{"name": "mine", "user": {"token": "t"}}],
                "contexts": [{"name": "mine", "context": {"cluster": "mine", "user": "mine"}}]}
    config = module.merge_kubeconfig(existing, **ARGS, role_arn="arn:aws:iam::222222222222:role/deploy")
    assert config["current-context"] == "mine"
    assert [c["name"] for c in config["clusters"]] == ["mine", "colors-prod"]
    assert config["clusters"][1]["cluster"]["server"] == ARGS["endpoint"]
    assert config["users"][0] == existing["users"][0]
    assert config["users"][1]["user"]["exec"]["args"][-2:] == ["--role-arn", "arn:aws:iam::222222222222:role/deploy"]
    assert existing["clusters"][1]["cluster"]["server"] == "https://old"  # the input is not modified


def test_merging_twice_gives_the_same_file():
    once = module.merge_kubeconfig(None, **ARGS)
    assert module.merge_kubeconfig(once, **ARGS) == once


@pytest.mark.parametrize("option", ["cluster_name", "path", "context"])
def test_required_options(option):
    assert module.argument_spec()[option]["required"] is True
