"""Every ``garden`` command's ``--help`` shows an example, and that example parses."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.unit


def _commands() -> Iterator[tuple[list[str], click.Command]]:
    import cluster.cli._main as cli_main

    cli_main.register_commands()

    root = cli_main.cli
    ctx = click.Context(root)

    def walk(cmd: click.Command, path: list[str]) -> Iterator[tuple[list[str], click.Command]]:
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk(sub, [*path, name])
        else:
            yield path, cmd

    yield from walk(root, [])


COMMANDS = list(_commands())


def test_every_command_is_covered() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"up", "down", "status", "k8s render", "models build", "bench overhead"} <= names


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_has_an_example_that_parses(
    path: list[str], cmd: click.Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cluster.cli._main as cli_main

    shown = CliRunner().invoke(cli_main.cli, [*path, "--help"], prog_name="garden")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert "Example:" in [line.strip() for line in lines], shown.output
    example = lines[[line.strip() for line in lines].index("Example:") + 1].strip()
    words = shlex.split(example.partition(" > ")[0])  # a shell redirection is not an argument
    assert words[: 1 + len(path)] == ["garden", *path], example
    # The files an example names exist where it runs (a user's own files).
    monkeypatch.chdir(tmp_path)
    for word in words:
        if word.endswith((".yaml", ".jsonl", ".csv", ".json")):
            (tmp_path / word).write_text("")
    # Parsing only (make_context runs no command): the options and arguments exist.
    cmd.make_context(" ".join(words[:-1]), words[1 + len(path) :])
