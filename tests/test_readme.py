"""README.md stays a user's guide whose commands and links work.

Every ``kedro run`` in the README's shell code blocks names pipelines that the project registers
(``--pipeline``/``-p``, ``--pipelines``) and environments that are folders under ``conf/``
(``--env``/``-e``); every relative Markdown link points to a file of the checkout; and the README
is at most 300 lines.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
MAX_LINES = 300
#: Languages of the fenced blocks whose lines are shell commands ("" is a block without one).
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
#: Tokens that end one shell command and start the next.
SEPARATORS = {"&&", "||", ";", "|", "&"}


@dataclass(frozen=True)
class KedroRun:
    """One ``kedro run`` command: as written, and the pipelines and environments it selects."""

    command: str
    pipelines: tuple[str, ...]
    envs: tuple[str, ...]


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """``(language, body)`` of every fenced code block (```` ``` ```` or ``~~~``) in ``markdown``."""
    blocks, body, fence, language = [], None, "", ""
    for line in markdown.splitlines():
        stripped = line.strip()
        if body is None:
            opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
            if opening:
                fence, language, body = opening.group(1), opening.group(2).lower(), []
        elif stripped.startswith(fence) and not stripped.strip(fence[0]):
            blocks.append((language, "\n".join(body)))
            body = None
        else:
            body.append(line)
    return blocks


def shell_commands(block: str) -> list[list[str]]:
    """The commands of a shell block as argument lists: continuations joined, prompts and comments
    removed, ``&&``, ``;`` and pipes split into separate commands."""
    commands = []
    for line in block.replace("\\\n", " ").splitlines():
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for token in lexer:
            if token in SEPARATORS:
                commands.append(command)
                command = []
            else:
                command.append(token)
        commands.append(command)
    return [command for command in commands if command]


def _option_values(args: list[str], long: str, short: str) -> list[str]:
    """Values of ``--long=V``, ``--long V`` and ``-short V`` in ``args``."""
    values = []
    for i, arg in enumerate(args):
        if arg.startswith(f"{long}="):
            values.append(arg.split("=", 1)[1])
        elif arg in (long, short) and i + 1 < len(args):
            values.append(args[i + 1])
    return values


def kedro_runs(block: str) -> list[KedroRun]:
    """Every ``kedro run`` (also ``VAR=1 kedro run`` and ``python -m kedro run``) in a shell block."""
    runs = []
    for args in shell_commands(block):
        starts = [i for i in range(len(args) - 1) if args[i] == "kedro" and args[i + 1] == "run"]
        if not starts:
            continue
        options = args[starts[0] + 2 :]
        pipelines = _option_values(options, "--pipeline", "-p")
        for names in _option_values(options, "--pipelines", "--pipelines"):
            pipelines.extend(name.strip() for name in names.split(","))
        envs = _option_values(options, "--env", "-e")
        runs.append(KedroRun(shlex.join(args), tuple(pipelines), tuple(envs)))
    return runs


def unknown_names(runs: list[KedroRun], pipelines: set[str], envs: set[str]) -> list[str]:
    """One message per pipeline or environment of ``runs`` that is not in ``pipelines``/``envs``."""
    problems = []
    for run in runs:
        problems += [
            f"`{run.command}`: no registered pipeline {name!r} (registered: {sorted(pipelines)})"
            for name in run.pipelines
            if name not in pipelines
        ]
        problems += [
            f"`{run.command}`: no environment conf/{name}/ (there are: {sorted(envs)})"
            for name in run.envs
            if name not in envs
        ]
    return problems


def relative_links(markdown: str) -> list[str]:
    """Targets of the inline and reference-style links of ``markdown`` (outside code) that are
    paths in the checkout: no scheme, no bare ``#anchor``; the ``#anchor`` part removed."""
    prose = re.sub(r"^(`{3,}|~{3,}).*?^\1", "", markdown, flags=re.S | re.M)  # fenced blocks
    prose = re.sub(r"`[^`\n]*`", "", prose)  # inline code
    targets = re.findall(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)
    targets += re.findall(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", prose, flags=re.M)
    paths = []
    for target in targets:
        if re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http:, https:, mailto:, ... or a heading of the README itself
        paths.append(target.split("#", 1)[0])
    return paths


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def registered_pipelines() -> set[str]:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(PROJECT_ROOT)
    from mc_simclr.pipeline_registry import register_pipelines

    return set(register_pipelines())


def conf_environments() -> set[str]:
    return {path.name for path in (PROJECT_ROOT / "conf").iterdir() if path.is_dir()}


def test_readme_is_at_most_300_lines(readme):
    lines = len(readme.splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; a user's guide of at most {MAX_LINES}"


def test_readme_kedro_runs_name_registered_pipelines_and_existing_environments(readme, registered_pipelines):
    runs = [run for language, body in fenced_blocks(readme) if language in SHELL_LANGUAGES for run in kedro_runs(body)]
    assert len(runs) >= 5, "the README's shell blocks should hold its `kedro run` commands"
    assert {"seeds", "ablations", "inference"} <= {name for run in runs for name in run.pipelines}
    problems = unknown_names(runs, registered_pipelines, conf_environments())
    assert not problems, "README.md:\n" + "\n".join(problems)


def test_readme_relative_links_point_to_files(readme):
    links = relative_links(readme)
    assert links, "the README links to its docs"
    missing = [link for link in links if not (README.parent / link).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_a_made_up_pipeline_or_environment_is_reported_with_its_command():
    block = "\n".join(
        [
            "kedro run --pipeline=nope            # a comment, not an option: --env=ignored",
            "KEDRO_DISABLE_TELEMETRY=1 kedro run -p seeds --env nowhere",
            "kedro run --pipelines=data_simulation,made_up && kedro run -e paper --pipeline seeds",
            "$ python -m kedro run \\",
            "    --env=paper --pipeline=inference",
            "kedro viz run --pipeline=not_a_kedro_run",
        ]
    )
    runs = kedro_runs(block)
    assert [(run.pipelines, run.envs) for run in runs] == [
        (("nope",), ()),
        (("seeds",), ("nowhere",)),
        (("data_simulation", "made_up"), ()),
        (("seeds",), ("paper",)),
        (("inference",), ("paper",)),
    ]
    problems = unknown_names(runs, {"data_simulation", "seeds", "inference"}, {"base", "paper"})
    assert len(problems) == 3
    assert problems[0].startswith("`kedro run --pipeline=nope`: no registered pipeline 'nope'")
    assert problems[1].startswith("`KEDRO_DISABLE_TELEMETRY=1 kedro run -p seeds --env nowhere`: no environment")
    assert "'made_up'" in problems[2]
    assert "--pipelines=data_simulation,made_up" in problems[2]


def test_links_and_blocks_are_found_as_written():
    markdown = "\n".join(
        [
            "See [the docs](docs/a.md#part), [a site](https://example.org), [here](#run) and `[x](no.md)`.",
            "[ref]: benchmarks/README.md",
            "```bash",
            "kedro run --env=test   # [not](a/link.md)",
            "```",
            "```python",
            "print('kedro run --pipeline=python_is_not_shell')",
            "```",
        ]
    )
    assert relative_links(markdown) == ["docs/a.md", "benchmarks/README.md"]
    assert fenced_blocks(markdown) == [
        ("bash", "kedro run --env=test   # [not](a/link.md)"),
        ("python", "print('kedro run --pipeline=python_is_not_shell')"),
    ]


def test_the_checks_would_fail_on_a_bad_readme(tmp_path: Path):
    bad = tmp_path / "README.md"
    bad.write_text("```sh\nkedro run --pipeline=nope\n```\n[gone](docs/gone.md)\n" + "x\n" * MAX_LINES)
    text = bad.read_text()
    assert len(text.splitlines()) > MAX_LINES
    runs = [run for language, body in fenced_blocks(text) if language in SHELL_LANGUAGES for run in kedro_runs(body)]
    assert unknown_names(runs, {"seeds"}, {"base"}) == [
        "`kedro run --pipeline=nope`: no registered pipeline 'nope' (registered: ['seeds'])"
    ]
    assert [link for link in relative_links(text) if not (bad.parent / link).exists()] == ["docs/gone.md"]
