"""The GitHub Actions workflows run by act (a pinned Go build) in the runner image of localplatform/runner/, on a copy
of the working tree, with the local stand-ins of .github/stand-ins for the actions act cannot fetch. Used by the
tests (tests/integration/test_runners.py) and the pipeline benchmark (bench/pipeline_bench.py)."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path

import yaml

from .config import Config

REPO = Path(__file__).resolve().parents[2]
STAND_INS = REPO / ".github" / "stand-ins"
RUNNER_UID = 1001


def working_tree_tar(dest: Path, uid: int = RUNNER_UID) -> Path:
    """The working tree (tracked and new files, not the ignored ones) as a tar owned by uid."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    with tarfile.open(dest, "w") as tar:
        for name in filter(None, files):
            path = REPO / name
            if not path.exists():  # deleted but not yet staged
                continue
            info = tar.gettarinfo(path, arcname=name)
            info.uid = info.gid = uid
            info.uname = info.gname = "runner"
            if info.isfile():
                with path.open("rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info)
    return dest


def action_pins(workflow: str, job: str) -> dict[str, str]:
    """The actions the job's steps use, each with the commit SHA it is pinned to."""
    steps = yaml.safe_load((REPO / ".github" / "workflows" / workflow).read_text())["jobs"][job]["steps"]
    return dict(step["uses"].split("@") for step in steps if "uses" in step)


def fake_oidc_token(repository: str, environment: str) -> str:
    """A token with the claims GitHub's OIDC provider gives a job of the environment (unsigned: moto does not check
    signatures; the configure-aws-credentials stand-in reads it from COLORS_STAND_IN_OIDC_TOKEN)."""
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    claims = {"iss": "https://token.actions.githubusercontent.com", "aud": "sts.amazonaws.com",
              "sub": f"repo:{repository}:environment:{environment}", "environment": environment,
              "repository": repository}
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.{part({'stand-in': True})}"


# The runner labels the workflows ask for, all run here by the runner image (uid 1001, no root): GitHub's hosted
# runner, and the self-hosted deploy runners inside each environment's VPC (terraform/modules/deploy_runners).
RUNNER_LABELS = ("ubuntu-24.04", "colors-deploy-staging", "colors-deploy-prod")


def run_job(workflow: str, job: str, image: str, workdir: Path, *, event: str = "workflow_dispatch",
            inputs: dict[str, str] | None = None, variables: dict[str, str] | None = None,
            env: dict[str, str] | None = None, timeout: float = 1500) -> subprocess.CompletedProcess:
    """act runs one job of the workflow on a git copy of the working tree in workdir/tree."""
    cfg = Config.load()
    tree = workdir / "tree"
    tree.mkdir(parents=True)
    with tarfile.open(working_tree_tar(workdir / "tree.tar")) as tar:
        tar.extractall(tree, filter="data")
    git = ["git", "-c", "user.email=ci@colors.local", "-c", "user.name=ci"]
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the working tree"]):
        subprocess.run([*git, *argv], cwd=tree, check=True, capture_output=True)
    argv = [str(cfg.bin_links / "act"), event, "-W", f".github/workflows/{workflow}", "-j", job,
            *[arg for label in RUNNER_LABELS for arg in ("-P", f"{label}={image}")],
            "--pull=false", "--action-offline-mode"]
    for action, sha in action_pins(workflow, job).items():
        if action == "actions/checkout":  # act copies the tree itself
            continue
        if not (STAND_INS / action / "action.yml").is_file():
            raise FileNotFoundError(f"{workflow} job {job} uses {action}, which has no stand-in in {STAND_INS}")
        argv += ["--local-repository", f"{action}@{sha}={STAND_INS / action}"]
    for flag, values in (("--input", inputs), ("--var", variables), ("--env", env)):
        for key, value in (values or {}).items():
            argv += [flag, f"{key}={value}"]
    return subprocess.run(argv, cwd=tree, env=dict(os.environ), capture_output=True, text=True, timeout=timeout,
                          check=False)


def job_steps(output: str) -> dict[str, str]:
    """Each main step of a job act ran, and how it ended (Success or Failure)."""
    return {name.strip(): outcome for outcome, name in re.findall(r"(Success|Failure) - Main (.+?)(?: \[|$)",
                                                                   output, flags=re.M)}


def said(output: str) -> str:
    """What the job's steps printed, without act's line prefixes, on one line (Ansible folds long messages)."""
    return " ".join(" ".join(re.sub(r"^\[[^]]+\]\s*\|?", "", line) for line in output.splitlines()).split())
