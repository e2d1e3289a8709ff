"""Every command of the runbook and of incident response is placed: run here, run by a named test, or not runnable
here with the reason (tests/documented_commands.py)."""

from __future__ import annotations

import ast

import pytest
from documented_commands import COMMANDS, DOCS, RUN, Exercised, NotHere, commands, documented
from helpers import REPO


def test_the_documents_have_commands_in_bash_blocks():
    for doc in DOCS:
        assert commands(doc), f"{doc} has no command in a bash block"


def test_every_documented_command_is_placed_and_the_table_keeps_none_no_document_has():
    found = documented()
    unplaced = [c for c in found if c not in COMMANDS]
    stale = [c for c in COMMANDS if c not in found]
    assert not unplaced, "commands of the documents that tests/documented_commands.py does not place:\n" + \
        "\n".join(unplaced)
    assert not stale, "commands tests/documented_commands.py places that no document has:\n" + "\n".join(stale)


def test_commands_that_cannot_run_here_say_why():
    for command, how in COMMANDS.items():
        assert how == RUN or isinstance(how, Exercised | NotHere), command
        if isinstance(how, NotHere):
            assert len(how.why) > 40, f"{command}: say why it cannot run here"


def _source_of(test: str) -> str:
    """The source of a test function, its decorators (parametrize) included."""
    path, name = test.split("::")
    tree = ast.parse((REPO / path).read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            lines = (REPO / path).read_text().splitlines()
            start = min([d.lineno for d in node.decorator_list] + [node.lineno])
            return "\n".join(lines[start - 1:node.end_lineno])
    raise AssertionError(f"{test}: no such test")


@pytest.mark.parametrize("command", [c for c, how in COMMANDS.items() if isinstance(how, Exercised)])
def test_a_command_run_by_another_test_is_run_there(command):
    how = COMMANDS[command]
    source = _source_of(how.test)
    missing = [word for word in how.words if word not in source]
    assert not missing, f"{how.test} no longer runs `{command}`: its source lacks {missing}"


def test_extraction_joins_continued_lines_and_drops_comments(tmp_path, monkeypatch):
    import documented_commands

    (tmp_path / "doc.md").write_text("text `make x`\n\n```bash\nmake a   # a comment\nmake b \\\n  B=1\n```\n"
                                     "```text\nnot a command\n```\n   ```bash\n   make c\n   ```\n")
    monkeypatch.setattr(documented_commands, "REPO", tmp_path)
    assert commands("doc.md") == ["make a", "make b B=1", "make c"]
