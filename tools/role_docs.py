"""The variable tables of the role READMEs, generated from each role's meta/argument_specs.yml (one source):

    python tools/role_docs.py           rewrite the tables (make role-docs)
    python tools/role_docs.py --check   exit 1 naming each README whose table differs (the unit tests run it)

A README's table sits between the two markers below, under its "## Variables" heading; prose around them is kept.
Every option of every entry point is listed once (the first entry point that has it gives its description), with the
entry points that take it when the role has more than one.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parent.parent / "roles"
BEGIN = "<!-- BEGIN VARIABLES: generated from meta/argument_specs.yml by `make role-docs`; do not edit -->"
END = "<!-- END VARIABLES -->"


def _markdown(text: str) -> str:
    """Ansible's doc markup as Markdown: C(x), O(x), V(x), I(x) -> `x`; line breaks and pipes made table-safe."""
    text = re.sub(r"\b[COVI]\(([^)]*)\)", r"`\1`", " ".join(str(text).split()))
    return text.replace("|", "\\|")


def _default(option: dict, name: str, defaults: dict) -> str:
    if option.get("required"):
        return "required"
    if "default" not in option:
        return "computed (see `defaults/main.yml`)" if name in defaults else "unset"
    value = option["default"]
    text = value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str) and not value:
        text = '""'
    if len(text) > 40:
        return "see `defaults/main.yml`"
    return f"`{text}`".replace("|", "\\|")


def table(specs: dict, defaults: dict) -> str:
    """The Markdown table of every option of the role's entry points (`defaults`: the role's defaults/main.yml)."""
    entries = list(specs)
    rows: dict[str, tuple[dict, list[str]]] = {}
    for entry in entries:
        for name, option in (specs[entry].get("options") or {}).items():
            rows.setdefault(name, (option, []))[1].append(entry)
    several = len(entries) > 1
    head = ["Variable", "Type", "Default", "Description"] + (["Entry points"] if several else [])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, (option, used) in rows.items():
        description = option.get("description", "")
        if isinstance(description, list):
            description = " ".join(description)
        kind = option.get("type", "str") + (f" of {option['elements']}" if option.get("elements") else "")
        if option.get("choices"):
            description = f"{description} One of: {', '.join(f'`{c}`' for c in option['choices'])}."
        cells = [f"`{name}`", kind, _default(option, name, defaults), _markdown(description)]
        if several:
            cells.append(", ".join(f"`{e}`" for e in used))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(readme: str, specs: dict, defaults: dict, role: str) -> str:
    """The README with its generated table replaced (between the markers)."""
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"roles/{role}/README.md has no generated variable table: put {BEGIN} and {END} under its "
                         "## Variables heading")
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{table(specs, defaults)}\n{END}{after}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="report drift instead of rewriting")
    args = parser.parse_args()
    drift = []
    for spec_file in sorted(ROLES.glob("*/meta/argument_specs.yml")):
        role = spec_file.parent.parent.name
        readme = spec_file.parent.parent / "README.md"
        specs = yaml.safe_load(spec_file.read_text())["argument_specs"]
        defaults_file = spec_file.parent.parent / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else None) or {}
        text = readme.read_text()
        wanted = render(text, specs, defaults, role)
        if wanted != text:
            drift.append(str(readme.relative_to(ROLES.parent)))
            if not args.check:
                readme.write_text(wanted)
    if args.check and drift:
        print(f"variable tables differ from meta/argument_specs.yml (run `make role-docs`): {', '.join(drift)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
