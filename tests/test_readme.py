"""Every command README.md and the pages of docs/ show works as written, from a clean clone after the
set-up they name, and every link among them leads somewhere.

Each page is read alike (below, "the README" stands for any of them); commands and the paths in them
are typed from the repository's root, as the pages say.

What is read:

- Commands: the lines of the ```bash and ```sh blocks, which are typed as shown (a trailing backslash
  or a quote still open carries a command on to the next line), split into simple commands at `;`,
  `&&`, `||` and `|`, without comments and with leading `NAME=value` assignments set apart; and the
  inline `code` spans that start with `make `, `python -m ` or `.venv/bin/`. Blocks without a
  language show what a command prints, or what it runs inside, and are not read.
- Paths: the words of those commands (the value of a `NAME=value` word), and every inline span that
  is one word.

What each must be:

- `make A B VAR=value`: A and B are targets of the Makefile, and each VAR is read by the recipe of
  one of them or is a setting of the Makefile itself (`NAME ?= ...`). `[...]` marks optional parts.
- `python -m M ARGS`, wherever it stands in a command (also after `docker compose run ... aws`):
  `python -m M --help` exits 0 or prints a usage line, and a first argument that is a subcommand
  word (`dags-test`) is named in what it prints.
- `.venv/bin/X ARGS`: the README's command, with `--help` in place of whatever follows its
  subcommand words, exits 0 from the repository root, and the options it gives are in that help, so
  that nothing long starts. It runs with the PATH the README gives it: the user's, which holds the
  virtualenv only once the block puts it there (`. .venv/bin/activate`, or a PATH assignment naming
  `.venv/bin`); sourcing `.local/stack.env` sets no PATH (checked below).
- An `airflow` subcommand that starts further processes as a bare `airflow`, as `airflow standalone`
  starts its scheduler, api-server, dag-processor and triggerer, fails with `FileNotFoundError`
  unless the virtualenv is on that PATH, and `--help` cannot show it. Such a subcommand is found in
  the source of the module that Airflow's own CLI table names for it (an argument list that starts
  with the string "airflow"), which costs no start: the README must show it with the virtualenv on
  PATH.
- A command that comes from the virtualenv (`airflow`, `pytest`), typed in a block without
  `.venv/bin/`, is found only when the block has put the virtualenv on PATH.
- Paths: a word whose first segment is an entry at the top of the repository (`dags/...`,
  `include/sql/...`, `Makefile`) exists; a bare file name with a source suffix in an inline span
  (`swap_day.sql`, which the layout table names inside its folder's row) is the name of a file in
  the repository. Not paths: placeholders (`<run id>`, `YYYY-MM-DD`, `…`, a segment in capitals such
  as `DIR`), URIs (`s3://...`), globs, `$VARIABLES`, absolute paths (the machine's, not the
  repository's), and anything under `.local/`, which `make setup`, `make up` and the runs create.
- Links: a relative link's target exists, taken from the page's own folder (`../README.md` from a
  page of docs/), and its `#anchor` is the anchor of a heading of the page it names, as GitHub makes
  anchors from headings (lower case; punctuation other than `-` and `_` dropped; spaces to `-`).
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
# The pages whose commands, paths and links are checked: the README and the documentation it links to.
PAGES = (README, *sorted((ROOT / "docs").glob("*.md")))
MAKEFILE = ROOT / "Makefile"
VENV_BIN = ROOT / ".venv" / "bin"
# Created at run time by set-up, `make up` and the runs: named by the README, absent from a clone.
RUN_TIME = ".local"

FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
SHELL_LANGUAGES = {"bash", "sh", "shell"}
SEPARATORS = {";", "&&", "||", "|", "&"}
ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
SUBCOMMAND = re.compile(r"^[a-z][a-z-]*$")
PYTHON = re.compile(r"^(?:.*/)?python(?:3(?:\.\d+)?)?$")
SPAN = re.compile(r"`([^`]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")
PLACEHOLDER_SIGNS = ("<", ">", "YYYY", "…", "*", "?", "[", "]", "{", "}", "$", "://", "~")
PLACEHOLDER_SEGMENT = re.compile(r"^(?:[\w-]+=)?[A-Z][A-Z_]*$")
SOURCE_SUFFIXES = {".py", ".sql", ".sh", ".yaml", ".yml", ".toml", ".txt", ".md", ".j2", ".cfg"}
# Airflow's CLI loads its settings and providers before printing help: seconds, more on a busy machine.
HELP_TIMEOUT = 120


@dataclass(frozen=True)
class Command:
    line: int
    words: tuple[str, ...]
    assignments: tuple[str, ...] = ()
    # Whether the shell the README describes has the virtualenv's bin folder on PATH here.
    venv_on_path: bool = False
    # From a shell block, typed as shown (rather than named in the prose).
    typed: bool = True

    def __str__(self) -> str:
        return shlex.join((*self.assignments, *self.words))


@dataclass(frozen=True)
class Readme:
    commands: tuple[Command, ...]
    # (line, text): the inline spans.
    spans: tuple[tuple[int, str], ...]
    # (line, target with its #anchor, if any): every link that is not a URI, in-page anchors included.
    links: tuple[tuple[int, str], ...] = ()


def shell_words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    return list(lexer)


def names_venv(assignment: str) -> bool:
    name, _, value = assignment.partition("=")
    return name == "PATH" and ".venv/bin" in value


def block_commands(lines: list[str], first_line: int) -> Iterator[Command]:
    venv_on_path = False
    text, start = "", None
    for number, line in enumerate(lines, first_line):
        start = start or number
        text += line
        if text.endswith("\\"):
            text = text[:-1] + " "
            continue
        try:
            tokens = shell_words(text)
        except ValueError:  # a quote still open: the command goes on
            text += "\n"
            continue
        simple: list[str] = []
        for token in [*tokens, ";"]:
            if token not in SEPARATORS:
                simple.append(token)
                continue
            assignments = []
            while simple and ASSIGNMENT.match(simple[0]):
                assignments.append(simple.pop(0))
            if not simple:
                venv_on_path = venv_on_path or any(map(names_venv, assignments))
            elif simple[0] in (".", "source") and simple[1:] == [".venv/bin/activate"]:
                venv_on_path = True
            elif simple[0] == "export":
                venv_on_path = venv_on_path or any(map(names_venv, simple[1:]))
            if simple:
                on_path = venv_on_path or any(map(names_venv, assignments))
                yield Command(start, tuple(simple), tuple(assignments), on_path)
            simple = []
        text, start = "", None


def read(text: str) -> Readme:
    commands: list[Command] = []
    lines = text.splitlines()
    prose = list(lines)
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if not fence:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        if fence.group(1) in SHELL_LANGUAGES:
            commands += block_commands(lines[index + 1:end], index + 2)
        prose[index:end + 1] = [""] * (end + 1 - index)
        index = end + 1
    joined = "\n".join(prose)

    def line_of(position: int) -> int:
        return joined.count("\n", 0, position) + 1

    spans = tuple((line_of(match.start()), " ".join(match.group(1).split())) for match in SPAN.finditer(joined))
    links = tuple(
        (line_of(match.start()), match.group(1)) for match in LINK.finditer(joined) if "://" not in match.group(1)
    )
    for line, span in spans:
        if span.startswith(("make ", "python -m ", ".venv/bin/")):
            words = tuple(word.strip("[]") for word in shell_words(span))
            commands.append(Command(line, tuple(word for word in words if word), typed=False))
    return Readme(tuple(commands), spans, links)


READINGS = {page: read(page.read_text()) for page in PAGES}
THE_README = READINGS[README]
ALL_COMMANDS = tuple(command for reading in READINGS.values() for command in reading.commands)
ALL_PAGES = Readme(ALL_COMMANDS, ())


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def make_commands(readme: Readme) -> list[Command]:
    return [command for command in readme.commands if command.words[0] == "make"]


def python_modules(readme: Readme) -> list[tuple[Command, str, tuple[str, ...]]]:
    found = []
    for command in readme.commands:
        words = command.words
        for index in range(1, len(words) - 1):
            if words[index] == "-m" and PYTHON.match(words[index - 1]):
                found.append((command, words[index + 1], words[index + 2:]))
    return found


def venv_commands(readme: Readme) -> list[Command]:
    return [command for command in readme.commands if command.words[0].startswith(".venv/bin/")]


def subcommand_words(arguments: tuple[str, ...]) -> list[str]:
    words = []
    for word in arguments:
        if not SUBCOMMAND.match(word):
            break
        words.append(word)
    return words


def user_path(venv_on_path: bool) -> str:
    """The PATH of a user who has not activated the virtualenv, or has."""
    entries = [
        entry for entry in os.environ.get("PATH", "").split(os.pathsep)
        if entry and Path(entry).resolve() != VENV_BIN.resolve()
    ]
    return os.pathsep.join([str(VENV_BIN), *entries] if venv_on_path else entries)


# -- the Makefile ------------------------------------------------------------------------------


def makefile_rules() -> tuple[dict[str, str], set[str]]:
    """The Makefile's targets with their recipes, and the variables it sets itself."""
    recipes: dict[str, str] = {}
    settings: set[str] = set()
    current: list[str] = []
    for line in MAKEFILE.read_text().splitlines():
        if line.startswith("\t"):
            for target in current:
                recipes[target] += line + "\n"
            continue
        setting = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[?:+]?=", line)
        rule = re.match(r"^([^\s#:=][^:=]*?)\s*::?(?!=)", line)
        if setting:
            settings.add(setting.group(1))
            current = []
        elif rule:
            current = rule.group(1).split()
            for target in current:
                recipes.setdefault(target, "")
        elif line.strip() and not line.startswith("#"):
            current = []
    return recipes, settings


def make_findings(commands: list[Command]) -> list[str]:
    recipes, settings = makefile_rules()
    findings = []
    for command in commands:
        targets = [word for word in command.words[1:] if not ASSIGNMENT.match(word)]
        for target in targets:
            if target not in recipes or target.startswith("."):
                findings.append(f"line {command.line}: `{command}`: the Makefile has no target {target!r}")
        for word in command.words[1:]:
            variable = ASSIGNMENT.match(word)
            if not variable:
                continue
            name = variable.group(1)
            read_by = [target for target in targets if f"$({name})" in recipes.get(target, "")]
            if not read_by and name not in settings:
                findings.append(f"line {command.line}: `{command}`: no recipe of {targets} reads {name}")
    return findings


# -- Airflow subcommands that start `airflow` from PATH -------------------------------------------


def airflow_command_module(arguments: list[str]) -> str | None:
    """The module that implements `airflow ARGUMENTS`, by Airflow's own CLI table."""
    from airflow.cli.cli_config import core_commands

    choices, found = core_commands, None
    for word in arguments:
        found = next((command for command in choices if command.name == word), None)
        if found is None or not getattr(found, "subcommands", None):
            break
        choices = found.subcommands
    if found is None or not callable(getattr(found, "func", None)):
        return None
    import_path = inspect.getclosurevars(found.func).nonlocals.get("import_path", "")
    return import_path.rpartition(".")[0] or found.func.__module__


def starts_airflow_from_path(arguments: list[str]) -> bool:
    module = airflow_command_module(arguments)
    spec = importlib.util.find_spec(module) if module else None
    if spec is None or spec.origin is None:
        return False
    return re.search(r"""\[\s*["']airflow["']\s*,""", Path(spec.origin).read_text()) is not None


def path_findings(commands: list[Command]) -> list[str]:
    findings = []
    for command in commands:
        if Path(command.words[0]).name != "airflow" or command.venv_on_path:
            continue
        arguments = subcommand_words(command.words[1:])
        if starts_airflow_from_path(arguments):
            findings.append(
                f"line {command.line}: `{command}` starts its components as `airflow ...` from PATH, "
                f"and the README's PATH here does not hold .venv/bin: FileNotFoundError: 'airflow'"
            )
    return findings


def bare_venv_findings(commands: list[Command]) -> list[str]:
    provided = {path.name for path in VENV_BIN.iterdir()}
    return [
        f"line {command.line}: `{command}`: {command.words[0]} comes from the virtualenv, which is not on PATH here"
        for command in commands
        if command.typed and "/" not in command.words[0] and command.words[0] in provided and not command.venv_on_path
    ]


# -- paths -------------------------------------------------------------------------------------


def top_level_entries() -> set[str]:
    return {path.name for path in ROOT.iterdir()} - {".git", RUN_TIME}


def repository_file_names() -> set[str]:
    skipped = {".git", ".venv", RUN_TIME, "__pycache__", ".pytest_cache"}
    names = set()
    for _, folders, files in os.walk(ROOT):
        folders[:] = [folder for folder in folders if folder not in skipped]
        names.update(files)
    return names


def is_placeholder(word: str) -> bool:
    return (
        any(sign in word for sign in PLACEHOLDER_SIGNS)
        or word.startswith("/")
        or any(PLACEHOLDER_SEGMENT.match(segment) for segment in word.split("/") if segment)
    )


def path_candidates(readme: Readme) -> Iterator[tuple[int, str, bool]]:
    """(line, word, whether a bare file name counts) of every word that may name a path."""
    for command in readme.commands:
        for word in command.words[1:]:
            assignment = ASSIGNMENT.match(word) or re.match(r"^(--[\w-]+)=(.*)$", word)
            yield command.line, assignment.group(2) if assignment else word, False
    for line, span in readme.spans:
        if " " not in span:
            yield line, span, True


def missing_paths(readme: Readme) -> list[str]:
    entries, names = top_level_entries(), repository_file_names()
    missing = []
    for line, word, bare_counts in path_candidates(readme):
        if not word or is_placeholder(word):
            continue
        first = word.split("/")[0]
        if first == RUN_TIME:
            continue
        if first in entries:
            if not (ROOT / word).exists():
                missing.append(f"line {line}: {word}")
        elif bare_counts and "/" not in word and Path(word).suffix in SOURCE_SUFFIXES and word not in names:
            missing.append(f"line {line}: {word} (no file of that name)")
    return missing


# -- links -------------------------------------------------------------------------------------


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown page (code blocks hold no headings)."""
    found: set[str] = set()
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if in_code or not heading:
            continue
        anchor = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        suffix, number = anchor, 0
        while suffix in found:
            number += 1
            suffix = f"{anchor}-{number}"
        found.add(suffix)
    return found


def link_findings(readme: Readme, page: Path) -> list[str]:
    findings = []
    for line, target in readme.links:
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            findings.append(f"line {line}: {target}: no {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text()):
            findings.append(f"line {line}: {target}: {page_id(linked) if linked.is_relative_to(ROOT) else linked} "
                            f"has no heading #{anchor}")
    return findings


# -- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_make_commands_name_targets_and_the_variables_they_read(page):
    assert make_commands(THE_README), "the README shows no make command"
    findings = make_findings(make_commands(READINGS[page]))
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize(
    "module, arguments",
    [
        pytest.param(module, arguments, id=" ".join((module, *arguments)))
        for module, arguments in sorted(
            {(module, tuple(subcommand_words(arguments[:1]))) for _, module, arguments in python_modules(ALL_PAGES)}
        )
    ],
)
def test_python_modules_print_their_help_or_usage(module, arguments):
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=HELP_TIMEOUT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 or "usage" in output.lower(), output
    assert "Traceback" not in output, output
    for word in arguments:
        assert word in output, f"python -m {module} does not know {word}:\n{output}"


@pytest.mark.parametrize(
    "page, command",
    [(page, command) for page, reading in READINGS.items() for command in venv_commands(reading)],
    ids=lambda value: page_id(value) if isinstance(value, Path) else f"line {value.line}",
)
def test_venv_commands_run_as_shown(page, command, tmp_path):
    executable = ROOT / command.words[0]
    assert executable.exists(), f"{command.words[0]} is not in the virtualenv"
    shown = [command.words[0], *subcommand_words(command.words[1:]), "--help"]
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    # The settings of .local/stack.env are left out: help reads none of them.
    env.update(PATH=user_path(command.venv_on_path), AIRFLOW_HOME=str(tmp_path))
    result = subprocess.run(
        [str(ROOT / shown[0]), *shown[1:]], cwd=ROOT, env=env, capture_output=True, text=True, timeout=HELP_TIMEOUT
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{page_id(page)}, line {command.line}: `{command}` as `{shlex.join(shown)}`:\n{output}"
    options = [word.split("=")[0] for word in command.words[1:] if word.startswith("--")]
    assert [option for option in options if option not in output] == [], output


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_airflow_subcommands_that_start_airflow_find_it_on_path(page):
    findings = path_findings(list(READINGS[page].commands))
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_commands_of_the_virtualenv_are_typed_with_its_path(page):
    findings = bare_venv_findings(list(READINGS[page].commands))
    assert not findings, "\n".join(findings)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_named_paths_exist(page):
    missing = missing_paths(READINGS[page])
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_links_lead_to_a_file_and_a_heading(page):
    findings = link_findings(READINGS[page], page)
    assert not findings, "\n".join(findings)


def test_the_documentation_pages_are_read():
    assert {page_id(page) for page in PAGES} >= {"README.md", "docs/contract.md"}


def test_the_stack_env_file_sets_no_path():
    """What `make up` writes to .local/stack.env: sourcing it leaves the user's PATH as it was."""
    from dev.local_aws import stack

    cluster = SimpleNamespace(dsn=lambda database: f"postgresql://user@127.0.0.1:5432/{database}")
    assert "PATH" not in stack.build_env("http://127.0.0.1:1", cluster, "postgresql://user@127.0.0.1:5432/w")


# -- the reading itself, on examples -------------------------------------------------------------


def example(block: str, prose: str = "") -> Readme:
    return read(f"{prose}\n\n```bash\n{block}\n```\n")


def test_the_reading_sees_standalone_without_the_virtualenv_on_path():
    shown = example("set -a; . .local/stack.env; set +a\n.venv/bin/airflow standalone   # the UI")
    assert [str(command) for command in shown.commands] == [
        "set -a", ". .local/stack.env", "set +a", ".venv/bin/airflow standalone"
    ]
    assert len(path_findings(list(shown.commands))) == 1
    for fixed in (
        'PATH="$PWD/.venv/bin:$PATH" .venv/bin/airflow standalone',
        ". .venv/bin/activate\nairflow standalone",
        'export PATH="$PWD/.venv/bin:$PATH"\n.venv/bin/airflow standalone',
    ):
        assert path_findings(list(example(fixed).commands)) == [], fixed
    assert path_findings(list(example(".venv/bin/airflow dags test hardware_correlation 2025-10-02").commands)) == []


def test_the_reading_joins_continued_lines_and_open_quotes():
    shown = example("aws iam attach-role-policy --role-name r \\\n  --policy-arn x\ncurl -d '{\"a\":\n  1}' http://h")
    assert [command.words[-1] for command in shown.commands] == ["x", "http://h"]
    assert [command.line for command in shown.commands] == [4, 6]


def test_the_reading_sees_a_bare_virtualenv_command_and_a_make_target_that_is_not_one():
    shown = example("airflow backfill create --dag-id d", prose="`make run D` then `make run DATE=D`")
    assert len(bare_venv_findings(list(shown.commands))) == 1
    assert make_findings(make_commands(shown)) == ["line 1: `make run D`: the Makefile has no target 'D'"]


def test_placeholders_run_time_files_and_uris_are_not_paths():
    shown = read(
        "`dags/hardware_correlation.py` `include/sql/` `dev/missing.py` `s3://PROCESSED/reports/<run id>/` "
        "`.local/logs/demo.log` `hardware_logs/dt=D/*.csv` `/usr/lib/postgresql/15/bin` `$AIRFLOW_HOME/logs` "
        "`dev/DIR` `swap_day.sql` `nowhere.sql` `audit.json`"
    )
    assert missing_paths(shown) == ["line 1: dev/missing.py", "line 1: nowhere.sql (no file of that name)"]


def test_anchors_are_made_as_github_makes_them():
    text = "# A\n## What `make demo` prints\n```bash\n# a comment\n```\n## Airflow's local services\n## A\n"
    assert anchors(text) == {"a", "what-make-demo-prints", "airflows-local-services", "a-1"}


def test_a_link_to_a_missing_file_or_heading_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Page\n")
    (tmp_path / "README.md").write_text("# Read me\n## Quick start\n")
    shown = read("[a](../README.md#quick-start) [b](../README.md#slow-start) [c](other.md) [d](#page) [e](#none)")
    assert [finding.split(":")[1].strip() for finding in link_findings(shown, page)] == [
        "../README.md#slow-start", "other.md", "#none"
    ]
