"""docs/network-topology.md names every subnet and security group that Terraform defines."""

from __future__ import annotations

import re

import pytest
from helpers import REPO

DOC = (REPO / "docs" / "network-topology.md").read_text()
NETWORK_TYPES = ("aws_subnet", "aws_security_group", "aws_default_security_group")


def terraform_network_resources() -> list[str]:
    found = []
    for path in sorted((REPO / "terraform" / "modules").glob("*/*.tf")):
        for kind, name in re.findall(r'^resource "(\w+)" "(\w+)"', path.read_text(), flags=re.M):
            if kind in NETWORK_TYPES:
                found.append(f"module.{path.parent.name}.{kind}.{name}")
    return found


def test_terraform_defines_subnets_and_security_groups():
    kinds = {address.split(".")[2] for address in terraform_network_resources()}
    assert {"aws_subnet", "aws_security_group"} <= kinds


@pytest.mark.parametrize("address", terraform_network_resources())
def test_the_topology_document_names_each_subnet_and_security_group(address):
    assert f"`{address}`" in DOC, f"{address} is defined in Terraform but missing from docs/network-topology.md"
    assert address in DOC.split("```mermaid", 1)[1].split("```", 1)[0], f"{address} is not in the Mermaid diagram"


def test_the_document_has_a_mermaid_diagram():
    assert re.search(r"```mermaid\nflowchart", DOC)
