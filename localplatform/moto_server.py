"""The moto server of the local platform, with the emulator gaps that Terraform trips over closed.

Each patch names the AWS behaviour it restores. Nothing here changes what a request does; it only makes moto
answer like AWS, so that a no-change `terraform plan` against the local platform really reports no change.
"""

from __future__ import annotations

import sys
from typing import Any

from moto.rds import models as rds_models
from moto.server import main

_update_parameters = rds_models.DBParameterGroup.update_parameters


def _update_parameters_as_user(self: Any, new_parameters: Any) -> None:
    """AWS marks parameters set through ModifyDBParameterGroup with Source=user; moto leaves Source out, so the
    AWS provider (which reads back only user parameters) saw none and planned to add them on every run."""
    new_parameters = list(new_parameters)
    _update_parameters(self, new_parameters)
    for parameter in new_parameters:
        self.parameters[parameter["ParameterName"]].setdefault("Source", "user")


rds_models.DBParameterGroup.update_parameters = _update_parameters_as_user

if __name__ == "__main__":
    sys.exit(main())
