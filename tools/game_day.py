#!/usr/bin/env python3
"""Game day: the recovery drills of decision 0003, measured on the local platform, against its objectives.

  application     a bad release restored: automatically (deploy.yml's gates, detection included) and by hand (the
                  whole rollback.yml), each until the dashboard answers with the previous version - as a user sees it
  database        a real PostgreSQL (Debian's server) with a base backup and a WAL archive: a table dropped by a bad
                  migration, restored to the moment before into a new server; RPO = the writes lost, RTO = damage to
                  the restored server answering
  infrastructure  the local environment re-created on moto from Terraform (infrastructure.yml), then destroyed
  state           the environment's Terraform state object overwritten; the previous version restored from the
                  versioned bucket until a plan of the environment is clean; RPO = state changes lost

The objectives are read from docs/decisions/0003-recovery-objectives.md: the game day fails (exit 1) when a
measurement exceeds its objective, or a drill fails. Run through `make game-day` on a running local platform.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATE = REPO / ".platform"
DECISION = REPO / "docs" / "decisions" / "0003-recovery-objectives.md"
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
           PATH=os.pathsep.join([str(STATE / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]))
# Each drill and the row of the decision's table (its "what fails" column starts so) that holds its objectives.
ROWS = {"application": "a bad release", "database": "the database's data",
        "infrastructure": "the environment's infrastructure", "state": "Terraform's state"}


@dataclass
class Measurement:
    drill: str
    what: str
    rto: float  # seconds
    rpo: float | None  # seconds of data (state: changes) lost; None: the drill's row has no data of its own


def duration(text: str) -> float | None:
    """Seconds of an objective as the decision writes it ("5 minutes", "1 hour", "none"); None when it names no
    duration of its own ("the database's (above)"); 0 for "none" and for the state's "the last change" (nothing
    after the last change is lost)."""
    text = text.strip().lower()
    if text.startswith(("none", "the last change")):
        return 0.0
    found = re.match(r"(\d+(?:\.\d+)?)\s*(second|minute|hour)s?\b", text)
    if not found:
        return None
    return float(found.group(1)) * {"second": 1, "minute": 60, "hour": 3600}[found.group(2)]


def objectives(text: str | None = None) -> dict[str, tuple[float | None, float | None]]:
    """(RPO, RTO) in seconds of each drill, from the decision's table."""
    text = DECISION.read_text() if text is None else text
    rows, inside = {}, False
    for line in text.splitlines():  # the table whose header starts "what fails" (not the measurements below it)
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.strip().startswith("|"):
            inside = False
        elif cells[0] == "what fails":
            inside = True
        elif inside and len(cells) >= 3 and not set(cells[0]) <= set("- "):
            rows[cells[0]] = (duration(cells[1]), duration(cells[2]))
    found = {}
    for drill, prefix in ROWS.items():
        matches = [v for k, v in rows.items() if k.startswith(prefix)]
        if len(matches) != 1:
            raise SystemExit(f"{DECISION.relative_to(REPO)} has no single row '{prefix}...' for the {drill} drill")
        found[drill] = matches[0]
    return found


def verdicts(measured: list[Measurement], goals: dict[str, tuple[float | None, float | None]]) -> list[tuple]:
    """(measurement, RPO objective, RTO objective, met) of each measurement: met when neither exceeds its objective."""
    out = []
    for m in measured:
        rpo_goal, rto_goal = goals[m.drill]
        met = (rto_goal is None or m.rto <= rto_goal) and (rpo_goal is None or m.rpo is None or m.rpo <= rpo_goal)
        out.append((m, rpo_goal, rto_goal, met))
    return out


def _human(seconds: float | None, unit: str = "s") -> str:
    if seconds is None:
        return "-"
    if unit != "s":
        return f"{seconds:g} {unit}"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(rows: list[tuple]) -> str:
    lines = ["| drill | what was measured | RTO | objective | RPO | objective | |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for m, rpo_goal, rto_goal, met in rows:
        unit = "changes" if m.drill == "state" else "s"
        lines.append(f"| {m.drill} | {m.what} | {_human(m.rto)} | {_human(rto_goal)} | {_human(m.rpo, unit)} | "
                     f"{_human(rpo_goal, unit)} | {'met' if met else 'EXCEEDED'} |")
    return "\n".join(lines)


# --- drills ---------------------------------------------------------------------------------------------------


def sh(argv: list[str], ok: bool = True, **extra) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=REPO, env=dict(ENV, **extra), capture_output=True, text=True, check=False)
    if ok and result.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv)}` failed:\n{result.stdout[-2500:]}\n{result.stderr[-1500:]}")
    return result


def playbook(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return sh([str(Path(sys.executable).parent / "ansible-playbook"), *args], ok=ok)


def _dashboard() -> str:
    """The dashboard's URL as a user reaches it: the worker node's address and the Service's NodePort."""
    from kubernetes import client, config

    status = json.loads(sh([sys.executable, "localplatform/platformctl.py", "status"]).stdout)
    if not status["worker_node"]["enabled"]:
        raise RuntimeError(f"the worker node cannot run here ({status['worker_node']['blockers']}): no user to measure")
    core = client.CoreV1Api(config.new_client_from_config(str(STATE / "kubeconfig")))
    port = core.read_namespaced_service("colors", "colors").spec.ports[0].node_port
    return f"http://{status['worker_node']['address']}:{port}"


def _serves(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=2) as response:  # noqa: S310 # nosec B310 - loopback
            return json.loads(response.read())["version"]
    except (OSError, ValueError, KeyError):
        return None


def _until_serving(url: str, version: str, timeout: float = 600) -> float:
    """Seconds until every answer in a row of five is the version (the dashboard reached through the Service)."""
    start, streak = time.monotonic(), 0
    while time.monotonic() - start < timeout:
        streak = streak + 1 if _serves(url) == version else 0
        if streak == 5:
            return time.monotonic() - start
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not serve {version} within {timeout:.0f} s")


def application() -> list[Measurement]:
    local = ("-i", "inventories/local")
    version = re.search(r'^version = "([^"]+)"', (REPO / "app" / "pyproject.toml").read_text(), re.M).group(1)
    playbook("deploy.yml", *local)  # the good release, on the worker node (make deploy)
    url = _dashboard()
    _until_serving(url, version)
    bad = f"{version}-drill-crashloop"
    # Automatic: the release of a bad version, its gates and the engine's restore, until users get the previous one.
    start = time.monotonic()
    failed = playbook("deploy.yml", *local, "-e", f"app_release_version={bad}", "-e",
                      "app_release_progress_deadline_seconds=60", ok=False)
    if failed.returncode == 0 or "Restored" not in failed.stdout:
        raise RuntimeError(f"the bad release {bad} was not restored:\n{failed.stdout[-2500:]}")
    automatic = time.monotonic() - start + _until_serving(url, version)
    # By hand: the bad release left in place (auto rollback off), then the whole rollback.yml.
    playbook("deploy.yml", *local, "-e", f"app_release_version={bad}", "-e", "app_release_auto_rollback=false",
             "-e", "app_release_progress_deadline_seconds=60", ok=False)
    start = time.monotonic()
    playbook("rollback.yml", *local)
    manual = time.monotonic() - start + _until_serving(url, version)
    # No RPO measured: the pods hold no data (the decision's "none").
    return [Measurement("application", f"automatic rollback of {bad} (release start to users on {version})",
                        automatic, None),
            Measurement("application", f"rollback.yml after {bad} was left in place", manual, None)]


def database(archive_timeout: int, writes_for: float) -> list[Measurement]:
    import psycopg

    bindir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])
    work = Path(tempfile.mkdtemp(prefix="colors-gameday-pg-"))
    shutil.chown(work, "postgres", "postgres")
    archive, primary, restored = work / "archive", work / "primary", work / "restored"

    def pg(*argv: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, check=False,
                              timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]}: {done.stdout[-1500:]} {done.stderr[-1500:]}")

    def start(data: Path, port: int) -> None:
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "600", "-l", str(data) + ".log",
           "-o", f"-p {port} -k {work} -c listen_addresses=127.0.0.1", "start")

    ports = (_free_port(), _free_port())
    try:
        pg("mkdir", "-p", str(archive))
        pg(str(bindir / "initdb"), "-D", str(primary), "-U", "colors", "--auth=trust", "-E", "UTF8")
        with (primary / "postgresql.conf").open("a") as conf:  # written as root, read by postgres: world-readable
            conf.write(f"wal_level = replica\narchive_mode = on\narchive_command = 'cp %p {archive}/%f'\n"
                       f"archive_timeout = {archive_timeout}\n")
        start(primary, ports[0])
        url = f"postgresql://colors@127.0.0.1:{ports[0]}/postgres"
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE TABLE palettes (id serial PRIMARY KEY, "
                       "at timestamptz NOT NULL DEFAULT clock_timestamp())")
        pg(str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(ports[0]), "-U", "colors", "-D",
           str(work / "base"), "-X", "none", "--checkpoint=fast")
        # The app writes, one row every 0.1 s; then a bad migration drops the table.
        with psycopg.connect(url, autocommit=True) as db:
            end = time.monotonic() + writes_for
            while time.monotonic() < end:
                db.execute("INSERT INTO palettes DEFAULT VALUES")
                time.sleep(0.1)
            last_write = db.execute("SELECT max(at) FROM palettes").fetchone()[0]
            written = db.execute("SELECT count(*) FROM palettes").fetchone()[0]
            before_damage = db.execute("SELECT clock_timestamp()").fetchone()[0]
            db.execute("DROP TABLE palettes")
            damaged = time.monotonic()
            # The restore can use what the archive holds (RDS: the logs it uploaded): wait until it covers the damage.
            while (db.execute("SELECT last_archived_time FROM pg_stat_archiver").fetchone()[0] or before_damage) \
                    <= before_damage:
                time.sleep(0.5)
        restored_last, count = _restore(pg, start, work, "restored", ports[1], archive, before_damage)
        rto = time.monotonic() - damaged
        measured = [Measurement("database", f"point-in-time restore after a dropped table ({count} of {written} "
                                            f"rows back)", rto, (last_write - restored_last).total_seconds())]
        # The primary lost with its disk (its zone's standby too): only the archive is left, whose newest
        # archive_timeout of writes is what is lost (RDS: its 5-minute log uploads).
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("CREATE TABLE palettes (id serial PRIMARY KEY, "
                       "at timestamptz NOT NULL DEFAULT clock_timestamp())")
            end = time.monotonic() + archive_timeout * 1.5
            while time.monotonic() < end:
                db.execute("INSERT INTO palettes DEFAULT VALUES")
                time.sleep(0.1)
            last_write, written = db.execute("SELECT max(at), count(*) FROM palettes").fetchone()
        pg(str(bindir / "pg_ctl"), "-D", str(primary), "-m", "immediate", "stop")
        pg("rm", "-rf", str(primary))
        lost = time.monotonic()
        pg(str(bindir / "pg_ctl"), "-D", str(restored), "-m", "fast", "stop")  # its port is the next restore's
        restored_last, count = _restore(pg, start, work, "restored-latest", ports[1], archive, None)
        measured.append(Measurement(
            "database", f"the primary lost with its disk, restored from the archive alone ({count} of {written} rows "
                        f"back; archive_timeout {archive_timeout} s)", time.monotonic() - lost,
            (last_write - restored_last).total_seconds() if restored_last else float("inf")))
        return measured
    finally:
        for data in (work / "restored-latest", restored, primary):
            subprocess.run(["runuser", "-u", "postgres", "--", str(bindir / "pg_ctl"), "-D", str(data), "-m",
                            "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(work, ignore_errors=True)


def _restore(pg, start, work: Path, name: str, port: int, archive: Path, target):
    """A new server from the base backup and the archive, recovered to target (a time; None: all the archive holds)
    and promoted; (the newest row's time, the row count) once it answers as a primary."""
    import psycopg

    data = work / name
    pg("cp", "-a", str(work / "base"), str(data))
    with (data / "postgresql.auto.conf").open("a") as conf:
        conf.write(f"restore_command = 'cp {archive}/%f %p'\narchive_mode = off\n")
        if target is not None:
            conf.write(f"recovery_target_time = '{target.isoformat()}'\nrecovery_target_action = 'promote'\n")
    pg("touch", str(data / "recovery.signal"))
    start(data, port)
    while True:
        with psycopg.connect(f"postgresql://colors@127.0.0.1:{port}/postgres", autocommit=True) as db:
            if not db.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                return db.execute("SELECT max(at), count(*) FROM palettes").fetchone()
        time.sleep(0.2)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _s3():
    import boto3
    import yaml

    platform = yaml.safe_load((REPO / "localplatform" / "platform.yml").read_text())
    bucket = platform["aws"]["state_bucket"]
    key = re.search(r'key\s*=\s*"([^"]+)"', (REPO / "terraform/environments/local/backend.hcl").read_text()).group(1)
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{platform['ports']['moto']}",
                        region_name=platform["aws"]["region"], aws_access_key_id="testing",
                        aws_secret_access_key="testing"), bucket, key  # noqa: S106 - moto's dummy pair  # pragma: allowlist secret


def infrastructure_and_state() -> list[Measurement]:
    local = ("-i", "inventories/local")
    s3, bucket, key = _s3()
    start = time.monotonic()
    playbook("infrastructure.yml", *local)
    recreated = time.monotonic() - start
    try:
        serial = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["serial"]
        s3.put_object(Bucket=bucket, Key=key, Body=b"{ not a state")  # the state object overwritten
        lost = time.monotonic()
        broken = playbook("infrastructure.yml", *local, "--check", ok=False)
        if broken.returncode == 0:
            raise RuntimeError("a plan on an overwritten state succeeded: the drill damaged nothing")
        # S3 lists a key's versions newest first: the newest is the damage, the one after it the last good state.
        versions = [v for v in s3.list_object_versions(Bucket=bucket, Prefix=key)["Versions"] if v["Key"] == key]
        if not versions[0]["IsLatest"] or len(versions) < 2:
            raise RuntimeError(f"the state bucket kept no earlier version of {key}: {versions}")
        previous = versions[1]["VersionId"]
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key, "VersionId": previous})
        plan = playbook("infrastructure.yml", *local, "--check")
        if "No changes" not in plan.stdout:
            raise RuntimeError(f"the plan after the state's restore is not clean:\n{plan.stdout[-2500:]}")
        restored = time.monotonic() - lost
        back = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["serial"]
    finally:
        playbook("infrastructure.yml", *local, "-e", "infrastructure_state=absent",
                 "-e", "infrastructure_destroy_confirmation=local")
    return [Measurement("infrastructure", "infrastructure.yml: the local environment created on moto", recreated,
                        None),
            Measurement("state", f"state object overwritten, previous version restored, plan clean (serial {back} "
                                 f"of {serial})", restored, float(serial - back))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--drills", default=",".join(ROWS), help=f"comma-separated, of: {', '.join(ROWS)}")
    parser.add_argument("--archive-timeout", type=int, default=30,
                        help="the drill database's archive_timeout, s (RDS uploads its logs every 5 min)")
    parser.add_argument("--writes-for", type=float, default=10, help="seconds the app writes before the damage")
    args = parser.parse_args()
    chosen = [d for d in args.drills.split(",") if d]
    unknown = sorted(set(chosen) - set(ROWS))
    if unknown:
        parser.error(f"unknown drill(s) {', '.join(unknown)}; allowed: {', '.join(ROWS)}")
    goals = objectives()
    measured: list[Measurement] = []
    failures = []
    steps = {"application": application, "database": lambda: database(args.archive_timeout, args.writes_for),
             "infrastructure": infrastructure_and_state}
    if "state" in chosen and "infrastructure" not in chosen:
        chosen.append("infrastructure")  # the state drill damages the state of the environment that drill creates
    for drill in [d for d in ROWS if d in chosen and d in steps]:
        print(f"[game-day] {drill} ...", flush=True)
        try:
            measured += steps[drill]()
        except (RuntimeError, OSError) as exc:
            failures.append(f"{drill}: {exc}")
            print(f"[game-day] {drill} FAILED: {exc}", flush=True)
    rows = verdicts([m for m in measured if m.drill in chosen], goals)
    print(f"\nGame day {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, objectives from "
          f"{DECISION.relative_to(REPO)}:\n")
    print(table(rows))
    exceeded = [m.what for m, _, _, met in rows if not met]
    for line in failures:
        print(f"\nFAILED {line}")
    return 1 if exceeded or failures or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
