"""The Terraform CLI configuration installs hashicorp/aws from the machine's mirror (no registry here); a key that
encrypts what outlives the stack stops a destroy."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from helpers import PLATFORM, REPO, STATE, moto_client, run


def test_terraform_init_installs_the_aws_provider_from_the_mirror(tmp_path):
    rc = STATE / "terraform.rc"
    assert rc.exists(), "run `make toolchain` to write .platform/terraform.rc"
    (tmp_path / "main.tf").write_text(
        'terraform {\n  required_providers {\n    aws = {\n      source  = "hashicorp/aws"\n'
        '      version = "~> 5.100"\n    }\n  }\n}\n')
    result = run(["terraform", f"-chdir={tmp_path}", "init", "-input=false", "-no-color"],
                 TF_CLI_CONFIG_FILE=str(rc))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Installed hashicorp/aws v5\.\d+\.\d+|Using hashicorp/aws v5\.\d+\.\d+", result.stdout)
    lock = (tmp_path / ".terraform.lock.hcl").read_text()
    assert 'provider "registry.terraform.io/hashicorp/aws"' in lock


@pytest.mark.platform
def test_terraform_destroy_stops_at_a_retained_key_and_destroys_an_ordinary_one(tmp_path):
    """The data key of staging and prod encrypts the database's final snapshot: applied to the local AWS API, a
    destroy of a retained key is refused naming it (nothing is deleted), while the same module without `retain` is
    destroyed as before (the local environment's)."""
    module = REPO / "terraform" / "modules" / "kms_key"
    endpoint = f"http://127.0.0.1:{PLATFORM['ports']['moto']}"
    suffix = uuid.uuid4().hex[:8]  # moto outlives the test: each run's aliases are its own
    (tmp_path / "main.tf").write_text(f"""
provider "aws" {{
  region                      = "{PLATFORM['aws']['region']}"
  skip_credentials_validation = true
  endpoints {{
    iam = "{endpoint}"
    kms = "{endpoint}"
    sts = "{endpoint}"
  }}
}}
module "retained" {{
  source      = "{module}"
  alias       = "colors-test-retained-{suffix}"
  description = "test: retained"
  retain      = true
}}
module "ordinary" {{
  source      = "{module}"
  alias       = "colors-test-ordinary-{suffix}"
  description = "test: ordinary"
}}
output "retained" {{
  value = module.retained.key_id
}}
output "ordinary" {{
  value = module.ordinary.key_id
}}
""")
    env = dict(TF_CLI_CONFIG_FILE=str(STATE / "terraform.rc"), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing")  # noqa: S106 - moto's dummy pair  # pragma: allowlist secret

    def terraform(*args: str):
        return run(["terraform", f"-chdir={tmp_path}", *args, "-no-color"], **env)

    assert terraform("init", "-input=false").returncode == 0
    applied = terraform("apply", "-auto-approve", "-input=false")
    assert applied.returncode == 0, applied.stdout[-2000:] + applied.stderr[-2000:]
    keys = {name: output["value"] for name, output in json.loads(terraform("output", "-json").stdout).items()}
    kms = moto_client("kms")
    try:
        # A destroy is refused at its plan, before anything is deleted (the state was refreshed by the apply).
        destroyed = terraform("plan", "-destroy", "-refresh=false", "-input=false")
        assert destroyed.returncode != 0
        assert "Instance cannot be destroyed" in destroyed.stderr, destroyed.stderr[-2000:]
        assert "module.retained.aws_kms_key.retained[0]" in destroyed.stderr
        assert kms.describe_key(KeyId=keys["retained"])["KeyMetadata"]["KeyState"] == "Enabled"
        # Without `retain`, the module's key may be destroyed as before.
        ordinary = terraform("plan", "-destroy", "-refresh=false", "-input=false", "-target=module.ordinary")
        assert ordinary.returncode == 0, ordinary.stderr[-2000:]
        assert "module.ordinary.aws_kms_key.this[0] will be destroyed" in ordinary.stdout
    finally:
        for name, key_id in keys.items():
            kms.delete_alias(AliasName=f"alias/colors-test-{name}-{suffix}")
            kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
