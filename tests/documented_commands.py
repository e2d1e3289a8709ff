"""The commands the operations documents give (every line of their `bash` blocks), and how each is proven here.

Each command is either run against the local platform by tests/integration/test_documented_commands.py (RUN), run
by another test that names it (`Exercised`: the test's id and the words of the command its source must contain), or
not run by the suite (`NotHere`: why - it needs real AWS, or it is the game day). tests/unit/test_documented_commands.py
fails when a document gains a command this table does not place, when the table keeps one no document has, or when an
`Exercised` test is missing or no longer runs its command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from helpers import REPO

DOCS = ("docs/runbook.md", "docs/incident-response.md")
RUN = "run here"


@dataclass(frozen=True)
class Exercised:
    test: str  # tests/...py::test_name
    words: tuple[str, ...]  # what the test's source must contain for it to run this command


@dataclass(frozen=True)
class NotHere:
    why: str


def commands(doc: str) -> list[str]:
    """The commands of a document's `bash` blocks, in order: continuation lines joined, comments and spacing dropped."""
    found: list[str] = []
    for block in re.findall(r"^ *```bash\n(.*?)^ *```", (REPO / doc).read_text(), re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                found.append(" ".join(line.split()))
    return found


def documented() -> list[str]:
    """Every command of the documents, each once, in document order."""
    return list(dict.fromkeys(c for doc in DOCS for c in commands(doc)))


AWS_CLI = ("the AWS CLI against the environment's account: moto records the RDS instance Terraform creates but runs no "
           "database behind it, so there is no status, event or restore to read")

STATE_RESTORE = ("the AWS CLI against the environment's state bucket; `make game-day` (tools/game_day.py, the state "
                 "drill) makes the same two calls with boto3 against moto's versioned bucket and checks the plan is "
                 "clean")

COMMANDS: dict[str, str | Exercised | NotHere] = {
    # docs/runbook.md
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=1.4.2": RUN,
    "ansible-playbook rollback.yml -i inventories/<env>": RUN,
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_rollback_to_version=1.3.0": RUN,
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_rollback_to_revision=12": RUN,
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=1.4.2 "
    "-e app_release_lock_force_release=true": RUN,
    "ansible-playbook rollback.yml -i inventories/<env> -e app_release_lock_force_release=true": RUN,
    "make freeze ENV=<env> REASON='INC-42: error budget burnt, stop the line' [UNTIL=2026-12-24T00:00:00Z]": RUN,
    "make unfreeze ENV=<env>": RUN,
    "ansible-playbook release_report.yml -i inventories/<env> -e app_release_report_days=30": RUN,
    "make deploy VERSION=0.1.0-drill-crashloop": Exercised(
        "tests/integration/test_worker_node.py::test_a_failing_release_on_real_pods_is_rolled_back_and_the_dashboard_"
        "keeps_answering", ("deploy.yml", "-drill-{drill}")),
    "ansible-playbook deploy.yml -i inventories/local -e app_release_version=0.1.0-drill-never-ready "
    "-e app_release_progress_deadline_seconds=10": Exercised(
        "tests/integration/test_release.py::test_a_failing_release_is_rolled_back_automatically",
        ("drill-never-ready", "app_release_progress_deadline_seconds=10")),
    "ansible-playbook infrastructure.yml -i inventories/<env> --check": Exercised(
        "tests/integration/test_infrastructure.py::test_check_mode_prints_the_plan_and_changes_nothing",
        ('"infrastructure.yml", "-i", "inventories/local", "--check")',)),
    "ansible-playbook infrastructure.yml -i inventories/<env>": Exercised(
        "tests/integration/test_infrastructure.py::test_a_killed_apply_leaves_its_lock_which_the_runbook_releases",
        ('ansible_playbook("infrastructure.yml", "-i", "inventories/local")',)),
    "export TF_DATA_DIR=$PWD/terraform/.terraform-data/<env>": Exercised(
        "tests/integration/test_infrastructure.py::test_a_killed_apply_leaves_its_lock_which_the_runbook_releases",
        ("documented()", "export TF_DATA_DIR=", "<env>")),
    "terraform -chdir=terraform/stack force-unlock <lock ID>": Exercised(
        "tests/integration/test_infrastructure.py::test_a_killed_apply_leaves_its_lock_which_the_runbook_releases",
        ("documented()", "terraform -chdir=terraform/stack", "<lock ID>")),
    "aws s3api list-object-versions --bucket colors-<env>-terraform-state --prefix colors/<env>/terraform.tfstate":
        NotHere(STATE_RESTORE),
    "aws s3api copy-object --bucket colors-<env>-terraform-state --key colors/<env>/terraform.tfstate --copy-source "
    "'colors-<env>-terraform-state/colors/<env>/terraform.tfstate?versionId=<version id>'": NotHere(STATE_RESTORE),
    "make game-day": NotHere(
        "it is the game day itself: ten minutes of drills whose figures go into the stop's note and decision 0003; "
        "its verdict logic (objectives read from the decision, a measurement over one fails) is unit-tested in "
        "tests/unit/test_game_day.py"),
    "ansible-playbook rotate-secrets.yml -i inventories/<staging|prod>": Exercised(
        "tests/integration/test_secrets.py::test_rotation_replaces_the_keys_keeps_the_previous_version_and_rolls_"
        "the_pods", ("rotate-secrets.yml", "*SM")),
    # docs/incident-response.md
    "make freeze ENV=<env> REASON='INC-<n>: investigating, stop the line'": RUN,
    "ansible-playbook release_report.yml -i inventories/<env> -e app_release_report_days=1": RUN,
    "ansible-playbook playbooks/verify.yml -i inventories/<env>": RUN,
    "amtool silence add alertname=ColorsHighErrorRatio service=colors --comment 'INC-<n>' --duration 2h "
    "--alertmanager.url <alertmanager>": RUN,
    "amtool silence query service=colors --alertmanager.url <alertmanager>": RUN,
    "kubectl -n colors get deploy,rs,pods": RUN,
    "kubectl -n colors get events --sort-by=.lastTimestamp": RUN,
    "kubectl -n colors get lease": RUN,
    "aws rds describe-db-instances --db-instance-identifier colors-<env> --query 'DBInstances[0].DBInstanceStatus'":
        NotHere(AWS_CLI),
    "aws rds describe-events --source-type db-instance --source-identifier colors-<env> --duration 60":
        NotHere(AWS_CLI),
    "aws rds restore-db-instance-to-point-in-time --source-db-instance-identifier colors-<env> "
    "--target-db-instance-identifier colors-<env>-restored --restore-time <UTC time before the damage>":
        NotHere(AWS_CLI),
    "aws secretsmanager update-secret-version-stage --secret-id colors-<env>/app --version-stage AWSCURRENT "
    "--move-to-version-id <AWSPREVIOUS version id> --remove-from-version-id <AWSCURRENT version id>": NotHere(
        "the AWS CLI and the version ids of the environment's secret; the same stage move is what rotate-secrets.yml "
        "makes when its gates fail (tests/integration/test_secrets.py::test_a_rotation_that_fails_verification_"
        "restores_the_previous_keys)"),
    "ansible-playbook deploy.yml -i inventories/<env> -e app_release_version=<running> "
    "-e \"app_release_freeze_override='INC-<n>: restore the keys'\"": RUN,
}
