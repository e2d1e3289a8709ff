#!/usr/bin/env python3
"""Install the scanners, each in its own virtual environment (their pins conflict with each other and with the
project's), and link their commands into .platform/bin (on PATH in every Make target).

tools/<name>.txt is the full pinned set of one environment; the environment lives in
~/.cache/colors-deploy/tool-<name>-<hash of the file>, so it is rebuilt exactly when its pins change.
Run by `make toolchain`; a second run only checks the links.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
REPO = TOOLS.parent
CACHE = Path(os.environ.get("COLORS_CACHE_DIR", Path.home() / ".cache" / "colors-deploy"))
LINKS = Path(os.environ.get("COLORS_PLATFORM_STATE", REPO / ".platform")) / "bin"
COMMANDS = {
    "checkov": ["checkov"],
    "scan": ["bandit", "hadolint", "shellcheck", "detect-secrets", "detect-secrets-hook", "check-jsonschema"],
    "semgrep": ["semgrep"],
    "wapiti": ["wapiti"],
    "builder": ["ansible-builder"],
}


def environment(name: str) -> Path:
    key = hashlib.sha256((TOOLS / f"{name}.txt").read_bytes()).hexdigest()[:12]
    return CACHE / f"tool-{name}-{key}"


def install(name: str) -> bool:
    target = environment(name)
    if (target / ".installed").exists():
        return False
    print(f"[toolchain] creating the {name} environment {target}", flush=True)
    shutil.rmtree(target, ignore_errors=True)
    venv.create(target, with_pip=True)
    subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", "-r", str(TOOLS / f"{name}.txt")], check=True)
    (target / ".installed").touch()
    return True


def main() -> int:
    LINKS.mkdir(parents=True, exist_ok=True)
    for name, commands in COMMANDS.items():
        install(name)
        for command in commands:
            source, link = environment(name) / "bin" / command, LINKS / command
            if not source.exists():
                sys.exit(f"ERROR: {source} is missing after installing tools/{name}.txt")
            if not link.is_symlink() or os.readlink(link) != str(source):
                link.unlink(missing_ok=True)
                link.symlink_to(source)
    return 0


if __name__ == "__main__":
    sys.exit(main())
