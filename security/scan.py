#!/usr/bin/env python3
"""`make scan`: one security gate over the whole project, offline.

Scanners (each RAN, or NOT RUN with the reason — a scanner that could not run or scanned nothing is never a
pass): checkov on Terraform, the Kubernetes manifests rendered from the roles, the Dockerfile, the GitHub Actions
workflows and the Ansible content; bandit and semgrep (local rules, security/semgrep.yml) on Python; hadolint on
the Dockerfile; shellcheck on shell scripts; detect-secrets against the committed .secrets.baseline; wapiti (DAST)
against the Colors container.

Reports (JSON, SARIF where the scanner writes it) and summary.md/summary.json go to reports/scan/ (or --out).
Exit 1 when a scanner finds something at or above its threshold, or when a scanner did not run and
security/scan-policy.yml does not allow it (with a reason).

`--online` (`make scan-online`) runs the scanners that need the internet instead, into reports/scan-online/:
OWASP ZAP baseline against TARGET_URL (the ZAP container image must be pullable) and Snyk (SNYK_TOKEN; Python
dependencies, the container image, Terraform). GitHub Actions runs them (security.yml). No NOT RUN is allowed
there: on this machine, which reaches no container registry and no Snyk, they are NOT RUN and the gate fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
POLICY = yaml.safe_load((REPO / "security" / "scan-policy.yml").read_text())
PYTHON_DIRS = ["app/colors_app", "localplatform", "plugins", "tools", "bench", "security"]


@dataclass
class Result:
    scanner: str
    target: str
    status: str = "RAN"  # RAN or NOT RUN
    findings: int = 0  # at or above the threshold
    scanned: str = ""  # what was looked at (proof that something was)
    reports: list[str] = field(default_factory=list)
    note: str = ""


class NotRun(Exception):
    """The scanner could not run; the message says why."""


def tool(name: str) -> str:
    # SCAN_TOOLS_PATH replaces where scanners are looked up (the tests use it to show NOT RUN).
    search = os.environ.get("SCAN_TOOLS_PATH") or os.pathsep.join([str(REPO / ".platform" / "bin"),
                                                                     os.environ.get("PATH", "")])
    path = shutil.which(name, path=search)
    if not path:
        raise NotRun(f"{name} is not installed (`make toolchain` installs it)")
    return path


def run(argv: list[str], ok: tuple[int, ...] = (0, 1), timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if result.returncode not in ok:
        raise NotRun(f"{Path(argv[0]).name} exited {result.returncode}: {(result.stderr or result.stdout)[-400:]}")
    return result


def tracked(*patterns: str) -> list[str]:
    return [f for f in run(["git", "ls-files", *patterns], ok=(0,)).stdout.splitlines() if (REPO / f).is_file()]


# --- scanners ------------------------------------------------------------------------------------------------

def checkov(out: Path, name: str, framework: str, args: list[str], min_resources: int = 1,
            sarif: bool = True) -> Result:
    result = Result(f"checkov-{name}", " ".join(args))
    folder = out / f"checkov-{name}"
    formats = ["--output", "json", *(["--output", "sarif"] if sarif else [])]
    run([tool("checkov"), *args, "--framework", framework, *formats,
         "--output-file-path", str(folder), "--quiet", "--compact", "--skip-download"], timeout=600)
    report = json.loads((folder / "results_json.json").read_text())
    reports = report if isinstance(report, list) else [report]
    summary = {k: sum(r.get("summary", {}).get(k, 0) for r in reports) for k in ("passed", "failed", "skipped",
                                                                                  "resource_count")}
    if summary["resource_count"] < min_resources or summary["passed"] + summary["failed"] == 0:
        raise NotRun(f"checkov found nothing to check in {' '.join(args)}")
    result.findings = summary["failed"]
    result.scanned = (f"{summary['resource_count']} resources, {summary['passed']} passed, "
                      f"{summary['skipped']} skipped with reasons")
    result.reports = [str(folder / "results_json.json"), *([str(folder / "results_sarif.sarif")] if sarif else [])]
    return result


def render_manifests(tmp: Path) -> Path:
    target = tmp / "manifests"
    target.mkdir()
    run([tool("ansible-playbook"), "security/render_manifests.yml", "-i", "inventories/prod",
         "-e", f"render_dir={target}", "-e", "app_release_version=1.0.0"], ok=(0,),
        env=dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg")))
    return target


def bandit(out: Path) -> Result:
    report = out / "bandit.json"
    run([tool("bandit"), "--recursive", *PYTHON_DIRS, "--format", "json", "--output", str(report), "--quiet"])
    data = json.loads(report.read_text())
    above = [r for r in data["results"] if r["issue_severity"] in POLICY["bandit"]["severities"]
             and r["issue_confidence"] in POLICY["bandit"]["confidences"]]
    lines = data["metrics"]["_totals"]["loc"]
    if not lines:
        raise NotRun("bandit read no Python code")
    return Result("bandit", " ".join(PYTHON_DIRS), findings=len(above), scanned=f"{lines} lines of Python",
                  reports=[str(report)], note="; ".join(f"{r['test_id']} {r['filename']}:{r['line_number']}"
                                                       for r in above[:5]))


def semgrep(out: Path) -> Result:
    report, sarif = out / "semgrep.json", out / "semgrep.sarif"
    run([tool("semgrep"), "scan", "--config", "security/semgrep.yml", "--metrics=off", "--disable-version-check",
         "--json-output", str(report), "--sarif-output", str(sarif), "--quiet", *PYTHON_DIRS], timeout=600)
    data = json.loads(report.read_text())
    scanned = len(data.get("paths", {}).get("scanned", []))
    if not scanned:
        raise NotRun("semgrep scanned no file")
    above = [r for r in data["results"] if r["extra"]["severity"] in POLICY["semgrep"]["severities"]]
    return Result("semgrep", "security/semgrep.yml rules", findings=len(above), scanned=f"{scanned} files",
                  reports=[str(report), str(sarif)],
                  note="; ".join(f"{r['check_id'].split('.')[-1]} {r['path']}:{r['start']['line']}" for r in above[:5]))


def hadolint(out: Path) -> Result:
    report = out / "hadolint.sarif"
    dockerfiles = tracked("*Dockerfile")
    if not dockerfiles:
        raise NotRun("no Dockerfile in the repository")
    sarif = run([tool("hadolint"), "--format", "sarif", "--no-fail", *dockerfiles]).stdout
    report.write_text(sarif)
    levels = POLICY["hadolint"]["levels"]
    findings = [r for run_ in json.loads(sarif)["runs"] for r in run_["results"] if r.get("level") in levels]
    return Result("hadolint", " ".join(dockerfiles), findings=len(findings), scanned=f"{len(dockerfiles)} Dockerfile",
                  reports=[str(report)], note="; ".join(r["ruleId"] for r in findings[:5]))


def shellcheck(out: Path) -> Result:
    scripts = [f for f in tracked() if f.endswith(".sh") or
               (REPO / f).read_bytes()[:32].startswith((b"#!/bin/bash", b"#!/usr/bin/env bash", b"#!/bin/sh"))]
    if not scripts:
        raise NotRun("no shell script in the repository")
    report = out / "shellcheck.json"
    data = json.loads(run([tool("shellcheck"), "--format", "json1", "--severity",
                           POLICY["shellcheck"]["severity"], *scripts]).stdout or '{"comments": []}')
    report.write_text(json.dumps(data, indent=1))
    return Result("shellcheck", " ".join(scripts), findings=len(data["comments"]), scanned=f"{len(scripts)} scripts",
                  reports=[str(report)], note="; ".join(f"SC{c['code']} {c['file']}:{c['line']}"
                                                       for c in data["comments"][:5]))


def detect_secrets(out: Path) -> Result:
    baseline = REPO / ".secrets.baseline"
    if not baseline.exists():
        raise NotRun(".secrets.baseline is missing")
    files = [f for f in tracked() if f != ".secrets.baseline"]  # it holds hashes of the audited false positives
    result = run([tool("detect-secrets-hook"), "--baseline", str(baseline), *files])
    (out / "detect-secrets.txt").write_text(result.stdout + result.stderr)
    new = result.stdout.count("Secret Type:")
    known = sum(len(v) for v in json.loads(baseline.read_text())["results"].values())
    return Result("detect-secrets", "every tracked file", findings=new if result.returncode else 0,
                  scanned=f"{len(files)} files; {known} audited false positives in the baseline",
                  reports=[str(out / "detect-secrets.txt")])


def wapiti(out: Path, image: str) -> Result:
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
        raise NotRun(f"image {image} is not built or the Docker engine is down (`make image`)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    name = f"colors-dast-{port}"
    run(["docker", "run", "--detach", "--name", name, "--read-only", "--publish", f"127.0.0.1:{port}:8080",
         "--env", "COLORS_STORE=memory", "--env", "COLORS_API_KEY=dast-only", image], ok=(0,))
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "readyz", timeout=2)  # noqa: S310 # nosec B310 - loopback
                break
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise NotRun(f"the container did not turn ready within 60 s ({exc})") from exc
                time.sleep(0.3)
        report = out / "wapiti.json"
        run([tool("wapiti"), "--url", url, "--scope", "folder", "--flush-session", "--max-scan-time",
             str(POLICY["wapiti"]["max_scan_seconds"]), "--module", POLICY["wapiti"]["modules"],
             "--format", "json", "--output", str(report), "--no-bugreport"], ok=(0,), timeout=900)
    finally:
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, check=False)
    data = json.loads(report.read_text())
    crawled = len(data.get("infos", {}).get("crawled_pages", []) or [])
    if not crawled and not data.get("infos", {}).get("crawled_pages_nbr"):
        raise NotRun("wapiti crawled no page")
    minimum = POLICY["wapiti"]["min_level"]
    found = [(category, v) for category, items in data["vulnerabilities"].items() for v in items
             if v.get("level", 0) >= minimum]
    pages = crawled or data["infos"].get("crawled_pages_nbr")
    return Result("wapiti", f"{image} (DAST)", findings=len(found),
                  scanned=f"{pages} pages, modules {POLICY['wapiti']['modules']}",
                  reports=[str(report)], note="; ".join(f"{c}: {v.get('path')}" for c, v in found[:5]))


# --- online scanners (security.yml in GitHub Actions) ----------------------------------------------------------

def zap_baseline(out: Path, target_url: str) -> Result:
    if not target_url:
        raise NotRun("TARGET_URL is not set: give the URL ZAP scans (security.yml passes the STAGING_URL variable)")
    if not target_url.startswith(("http://", "https://")):
        raise NotRun(f"TARGET_URL={target_url!r} is not an http(s) URL")
    image = POLICY["zap"]["image"]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
        pulled = subprocess.run(["docker", "pull", image], capture_output=True, text=True, check=False, timeout=600)
        if pulled.returncode:
            raise NotRun(f"the ZAP image {image} cannot be pulled ({pulled.stderr.strip()[-200:]}); ZAP needs a "
                         "reachable container registry (GitHub Actions has one)")
    out.chmod(0o777)  # the ZAP container writes its report as its own user  # nosec B103
    result = run(["docker", "run", "--rm", "--network", "host", "--volume", f"{out}:/zap/wrk:rw", image,
                  "zap-baseline.py", "-t", target_url, "-J", "zap.json", "-r", "zap.html", "-I"], ok=(0, 1, 2),
                 timeout=1800)
    report = out / "zap.json"
    if not report.exists():
        raise NotRun(f"ZAP wrote no report: {result.stdout[-300:]}")
    alerts = [a for site in json.loads(report.read_text()).get("site", []) for a in site.get("alerts", [])]
    found = [a for a in alerts if int(a.get("riskcode", 0)) >= POLICY["zap"]["min_risk"]]
    urls = {i.get("uri") for a in alerts for i in a.get("instances", [])}
    return Result("zap-baseline", target_url, findings=len(found),
                  scanned=f"{target_url}: {len(alerts)} alert types over {len(urls)} URLs",
                  reports=[str(report), str(out / "zap.html")], note="; ".join(a.get("name", "") for a in found[:5]))


def snyk_cli() -> str:
    version = POLICY["snyk"]["version"]
    prefix = Path(os.environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy")) / f"tool-snyk-{version}"
    cli = prefix / "node_modules" / ".bin" / "snyk"
    if not cli.exists():
        if not shutil.which("npm"):
            raise NotRun("npm is not installed: the Snyk CLI comes from npm")
        run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", f"snyk@{version}"], ok=(0,),
            timeout=600)
    started = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=False, timeout=120)
    if started.returncode or not started.stdout.strip()[:1].isdigit():
        # The npm package is a launcher that downloads the real CLI; where that fails it can still exit 0.
        output = started.stdout + started.stderr
        failed = [line.split(": ", 1)[-1] for line in output.splitlines() if "Failed to download" in line]
        raise NotRun("the Snyk CLI did not start: " + (failed[-1] if failed else output.strip()[-200:] or "no output")
                     + " (the npm package downloads the real CLI binary when first run)")
    return str(cli)


def snyk(out: Path, image: str) -> Result:
    if not os.environ.get("SNYK_TOKEN"):
        raise NotRun("SNYK_TOKEN is not set (security.yml reads it from the repository secrets)")
    cli = snyk_cli()
    threshold = POLICY["snyk"]["severity_threshold"]
    python = str(Path(sys.executable))
    checks = {
        "dependencies": ["test", "--file=requirements/dev.txt", "--package-manager=pip", f"--command={python}"],
        "container": ["container", "test", image, "--file=app/Dockerfile"],
        "iac": ["iac", "test", "terraform"],
    }
    found, scanned, reports = 0, [], []
    for name, args in checks.items():
        report = out / f"snyk-{name}.json"
        # 0: nothing found, 1: findings, 2: failure, 3: no supported project.
        run([cli, *args, f"--severity-threshold={threshold}", f"--json-file-output={report}"], ok=(0, 1),
            timeout=1200)
        data = json.loads(report.read_text())
        for part in data if isinstance(data, list) else [data]:
            issues = part.get("vulnerabilities") or (part.get("infrastructureAsCodeIssues") or [])
            found += len(issues)
        scanned.append(name)
        reports.append(str(report))
    return Result("snyk", "dependencies, image, Terraform", findings=found,
                  scanned=f"{', '.join(scanned)} at severity >= {threshold}", reports=reports)


# --- gate ----------------------------------------------------------------------------------------------------

def attempt(name: str, target: str, func, *args) -> Result:
    try:
        return func(*args)
    except NotRun as exc:
        return Result(name, target, status="NOT RUN", note=str(exc))
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError, KeyError) as exc:
        return Result(name, target, status="NOT RUN", note=f"{type(exc).__name__}: {exc}")


def main() -> int:
    parser = argparse.ArgumentParser(description="Security gate: every scanner, RAN or NOT RUN, and the verdict.")
    parser.add_argument("--out", help="report folder (default reports/scan, or reports/scan-online)")
    parser.add_argument("--online", action="store_true", help="the scanners that need the internet (ZAP, Snyk)")
    parser.add_argument("--only", help="comma-separated scanner names (default: all)")
    parser.add_argument("--python", nargs="+", help=f"Python paths for bandit and semgrep (default: {PYTHON_DIRS})")
    args = parser.parse_args()
    if args.python:
        PYTHON_DIRS[:] = args.python
    out = Path(args.out or REPO / "reports" / ("scan-online" if args.online else "scan"))
    version = tomllib.loads((REPO / "app" / "pyproject.toml").read_text())["project"]["version"]
    with tempfile.TemporaryDirectory(prefix="colors-scan-") as tmp:
        plan = [
            ("checkov-terraform", "terraform/",
             lambda: checkov(out, "terraform", "terraform", ["-d", "terraform"], 50)),
            ("checkov-kubernetes", "rendered role manifests",
             lambda: checkov(out, "kubernetes", "kubernetes", ["-d", str(render_manifests(Path(tmp)))], 10)),
            ("checkov-dockerfile", "app/Dockerfile",
             lambda: checkov(out, "dockerfile", "dockerfile", ["-f", "app/Dockerfile"])),
            ("checkov-github-actions", ".github/workflows",
             lambda: checkov(out, "github-actions", "github_actions", ["-d", ".github"], min_resources=0)),
            ("checkov-ansible", "playbooks and roles",
             # Ansible tasks are no resources to checkov (count 0). No SARIF: checkov 3.3.30's SARIF writer crashes on
             # an Ansible finding (its code block is None), which turned a finding into NOT RUN.
             lambda: checkov(out, "ansible", "ansible", ["-d", "playbooks", "-d", "roles"], min_resources=0,
                             sarif=False)),
            ("bandit", "Python", lambda: bandit(out)),
            ("semgrep", "Python", lambda: semgrep(out)),
            ("hadolint", "Dockerfile", lambda: hadolint(out)),
            ("shellcheck", "shell scripts", lambda: shellcheck(out)),
            ("detect-secrets", "tracked files", lambda: detect_secrets(out)),
            ("wapiti", "Colors container", lambda: wapiti(out, f"localhost/colors:{version}")),
        ]
        if args.online:
            plan = [
                ("zap-baseline", os.environ.get("TARGET_URL") or "TARGET_URL",
                 lambda: zap_baseline(out, os.environ.get("TARGET_URL", ""))),
                ("snyk", "dependencies, image, Terraform", lambda: snyk(out, f"localhost/colors:{version}")),
            ]
        only = set(args.only.split(",")) if args.only else None
        unknown = sorted((only or set()) - {name for name, _, _ in plan})
        if unknown:
            print(f"ERROR: unknown scanner {', '.join(unknown)}; allowed{' with --online' if args.online else ''}: "
                  f"{', '.join(name for name, _, _ in plan)}", file=sys.stderr)
            return 2
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        results = [attempt(name, target, func) for name, target, func in plan if not only or name in only]
    # Online scanners exist to run where the internet is: none of them may be NOT RUN.
    allowed = {} if args.online else POLICY.get("allowed_not_run") or {}
    failing = [r for r in results if r.findings or (r.status == "NOT RUN" and r.scanner not in allowed)]
    write_summary(out, results, failing, allowed)
    for r in results:
        verdict = "FAIL" if r in failing else ("ok" if r.status == "RAN" else "allowed")
        print(f"{r.status:<8} {r.scanner:<24} findings={r.findings:<3} {verdict:<8} {r.scanned or r.note}")
    print(f"security gate: {'FAILED' if failing else 'passed'} ({len(results)} scanners, "
          f"{sum(r.status == 'RAN' for r in results)} ran); summary {out / 'summary.md'}")
    return 1 if failing else 0


def write_summary(out: Path, results: list[Result], failing: list[Result], allowed: dict) -> None:
    (out / "summary.json").write_text(json.dumps({"passed": not failing,
                                                  "results": [asdict(r) for r in results]}, indent=1))
    rows = "\n".join(f"| {r.scanner} | {r.status} | {r.findings} | {'FAIL' if r in failing else 'ok'} | "
                     f"{r.scanned or '-'} | {(r.note or allowed.get(r.scanner, '')).replace('|', '/')} |"
                     for r in results)
    (out / "summary.md").write_text(
        "# Security scan summary\n\n"
        f"Verdict: **{'FAILED' if failing else 'passed'}**. A scanner that could not run is NOT RUN, never a pass.\n\n"
        "| scanner | status | findings at/above threshold | verdict | scanned | note |\n|---|---|---|---|---|---|\n"
        f"{rows}\n")


if __name__ == "__main__":
    sys.exit(main())
