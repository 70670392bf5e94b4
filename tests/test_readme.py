"""The README stays true: its commands, options, paths and space keys exist, its two commands are
the ones CI runs, and it stays short (issue 21). Fast: no Ray, no torch.

Each check is a function of the README's text returning the problems it finds, so that
`test_checks_catch_planted_mistakes` can prove, on a copy with planted mistakes, that none of them
passes whatever the text says.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from pydantic import BaseModel

from minesearch.cli import main as cli
from minesearch.config import SpaceSpec, SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
MAX_LINES = 260  # issue 21: "at most about 250 lines"

FENCE = re.compile(r"^```[\w-]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`([^`\n]+)`")
# `minesearch <command>` where a shell would run it: first on the line or after `&&`, `;`, `--`,
# `$ `, `: ` or `VAR=value` (not minesearch.run, minesearch/..., `ruff check minesearch tests`)
COMMAND = re.compile(r"(?:^|&&|;|--|\$|:|\w=\S+)\s*minesearch +([a-z][\w-]*)")
OPTION = re.compile(r"(?<![\w-])--[a-z][\w-]*")
# where a command's arguments end on a line: a shell operator, a comment, a table cell
ARGS_END = re.compile(r"&&|\|\||;|#|(?<!\\)\|")
REPO_PATH = re.compile(
    r"(?<![\w/.-])((?:search_spaces|scripts|bench|docs|tests|minesearch)/[^\s`)\]'\",:]*)"
)
LINK = re.compile(r"\]\(([^)\s]+)\)")
SHIPPED_NAME = re.compile(r"^[\w-]+\.(?:yaml|py|sh|md)$")
SPACE_KEY = re.compile(r"^((?:name|data|model|train|search|tracking|storage_path)(?:\.\w+)+)")
SECTIONS = tuple(SpaceSpec.model_fields)


def readme() -> str:
    return README.read_text(encoding="utf-8")


def fenced(text: str) -> list[str]:
    return FENCE.findall(text)


def code(text: str) -> list[str]:
    """Every fenced block's lines and every inline code span outside them."""
    lines = [line for block in fenced(text) for line in block.splitlines()]
    return lines + INLINE.findall(FENCE.sub("", text))


def section(text: str, heading: str) -> str:
    found = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert found, f"README has no section '## {heading}'"
    return found.group(1)


def command_options(name: str) -> set[str]:
    command = cli.commands[name]
    params = command.get_params(click.Context(command))
    return {opt for p in params for opt in (*p.opts, *p.secondary_opts)}


def command_problems(text: str) -> list[str]:
    """Every `minesearch X` shown is a command, and every `--option` after it is one of X's."""
    problems = []
    for snippet in code(text):
        for found in COMMAND.finditer(snippet):
            name = found.group(1)
            if name not in cli.commands:
                problems.append(f"`minesearch {name}`: no such command ({sorted(cli.commands)})")
                continue
            args = ARGS_END.split(snippet[found.end() :])[0]
            for option in OPTION.findall(args):
                if option not in command_options(name):
                    problems.append(f"`minesearch {name} {option}`: no such option")
    every = set().union(*(command_options(name) for name in cli.commands))
    for span in INLINE.findall(FENCE.sub("", text)):  # an option named on its own, as `--confirm`
        if re.fullmatch(r"--[a-z][\w-]*", span) and span not in every:
            problems.append(f"`{span}`: no command has this option")
    return problems


def path_problems(text: str) -> list[str]:
    """Every repository path the README names, and every link it makes, exists."""
    named = {p.rstrip(".") for p in REPO_PATH.findall(text)}
    named |= {link for link in LINK.findall(text) if "://" not in link and not link.startswith("#")}
    named = {p for p in named if not re.search(r"[<>*|]|\.\.\.", p)}
    problems = [
        f"{p}: no such path in the repository" for p in sorted(named) if not (ROOT / p).exists()
    ]
    shipped = {
        p.name for d in ("search_spaces", "scripts", "bench", "docs") for p in (ROOT / d).iterdir()
    }
    shipped |= {p.name for p in ROOT.iterdir()}
    for span in INLINE.findall(FENCE.sub("", text)):
        if SHIPPED_NAME.match(span) and span not in shipped:
            problems.append(f"`{span}`: no shipped file of that name")
    return problems


def reference_block(text: str) -> str:
    blocks = re.findall(r"^```yaml\n(.*?)^```", section(text, "The space file"), re.S | re.M)
    assert blocks, "the space file section shows no ```yaml block"
    return str(blocks[0])


def model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (directly, or as `Model | None`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return next(filter(None, map(model_of, typing.get_args(annotation))), None)
    return None


def missing_keys(model: type[BaseModel], raw: dict[str, Any], prefix: str = "") -> list[str]:
    """Fields of `model` (recursively) that the reference block does not show."""
    missing = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        if name not in raw:
            missing.append(key)
            continue
        inner = model_of(field.annotation)
        if inner is not None:
            value = raw[name]
            if not isinstance(value, dict):
                missing.append(f"{key}.* (given {value!r}: show its fields)")
                continue
            missing += missing_keys(inner, value, f"{key}.")
    return missing


def reference_problems(text: str) -> list[str]:
    """The space file reference is a valid space file that shows every key of the schema."""
    raw = yaml.safe_load(reference_block(text))
    try:
        parse_spec(raw, "README's space file reference")
    except SpecError as exc:
        return [str(exc)]
    return [
        f"{key}: in the schema, not in the README's reference"
        for key in missing_keys(SpaceSpec, raw)
    ]


def resolves(dotted: str) -> bool:
    model: type[BaseModel] | None = SpaceSpec
    for part in dotted.split("."):
        if model is None or part not in model.model_fields:
            return False
        model = model_of(model.model_fields[part].annotation)
    return True


def key_problems(text: str) -> list[str]:
    """Every dotted space key named in the prose (`train.precision`, `search.rerun: ...`) exists."""
    keys = {
        m.group(1) for span in INLINE.findall(FENCE.sub("", text)) if (m := SPACE_KEY.match(span))
    }
    return [
        f"`{key}`: no such key in the space file's schema"
        for key in sorted(keys)
        if not resolves(key)
    ]


def steps(command: str) -> list[str]:
    return [" ".join(step.split()) for step in command.split("&&")]


def ci_steps() -> list[str]:
    """.ci/run's installs (as a user types them) and its test command."""
    found = []
    for line in CI.read_text().splitlines():
        line = " ".join(line.split())
        if line.startswith("python -m pip install") and "--upgrade pip" not in line:
            found.append(line.removeprefix("python -m ").replace(" --quiet", ""))
        elif line.startswith("python -m pytest"):
            found.append(line)
    return found


def two_commands(text: str) -> list[str]:
    blocks = re.findall(
        r"^```bash\n(.*?)^```", section(text, "Two commands on a fresh machine"), re.S | re.M
    )
    return [b.strip() for b in blocks]


def two_command_problems(text: str) -> list[str]:
    """The first command installs and runs a shipped space; the second is what CI runs."""
    commands = two_commands(text)
    if len(commands) != 2:
        return [
            f"section 'Two commands on a fresh machine' shows {len(commands)} bash blocks, not 2"
        ]
    problems = []
    quickstart, tests = map(steps, commands)
    if tests != ci_steps():
        problems.append(f"the test command {tests} is not what .ci/run runs: {ci_steps()}")
    if quickstart[0] != ci_steps()[0]:
        problems.append(
            f"the quickstart's first install {quickstart[0]!r} is not CI's {ci_steps()[0]!r}"
        )
    run = re.fullmatch(r"minesearch run (search_spaces/[\w-]+\.yaml)", quickstart[-1])
    if run is None or not (ROOT / run.group(1)).is_file():
        problems.append(f"the quickstart command {quickstart[-1]!r} does not run a shipped space")
    return problems


CHECKS = {
    "commands": command_problems,
    "paths": path_problems,
    "reference": reference_problems,
    "keys": key_problems,
    "two commands": two_command_problems,
}


@pytest.mark.parametrize("check", CHECKS, ids=list(CHECKS))
def test_readme_is_true(check: str) -> None:
    assert CHECKS[check](readme()) == []


def test_readme_is_short() -> None:
    lines = len(readme().splitlines())
    assert lines <= MAX_LINES, f"README.md has {lines} lines; the limit is {MAX_LINES}"


def test_ci_runs_the_test_command() -> None:
    assert ci_steps()[-1] == "python -m pytest", ".ci/run must end in the README's test command"
    assert "pip install torch==" in ci_steps()[0]


def test_readme_says_which_spaces_train_data_parallel() -> None:
    """Issue 20: the README says which shipped spaces run multi-worker trials; it must be right."""
    text = readme()
    for path in sorted((ROOT / "search_spaces").glob("*.yaml")):
        workers = load_spec(path).train.workers
        if workers > 1:
            assert path.name in text, (
                f"{path.name} trains with {workers} workers; the README does not say"
            )


# Each planted mistake, and the check that must report it.
PLANTED = [
    ("minesearch ui", "minesearch uii", "commands"),
    ("[--storage-path PATH]", "[--storage-paht PATH]", "commands"),
    ("`--confirm`", "`--confirmm`", "commands"),
    ("search_spaces/vectors.yaml", "search_spaces/vector.yaml", "paths"),
    ("(docs/mlflow.md)", "(docs/mlfow.md)", "paths"),
    ("  precision: auto ", "  precison: auto ", "reference"),
    ("  cache_dir: null", "  cash_dir: null", "reference"),
    ("  test_seeds: null", "  # test_seeds: null", "reference"),
    ("    miner: [none,", "    miner: [nope,", "reference"),
    ("`train.gpus_per_worker", "`train.gpus_per_workers", "keys"),
    (
        'pip install -e ".[test,text,export]" && python -m pytest',
        'pip install -e ".[test]" && python -m pytest',
        "two commands",
    ),
    (
        "minesearch run search_spaces/vectors.yaml\n```",
        "minesearch run search_spaces/vector.yaml\n```",
        "two commands",
    ),
]


@pytest.mark.parametrize(("right", "wrong", "check"), PLANTED, ids=[w for _, w, _ in PLANTED])
def test_checks_catch_planted_mistakes(right: str, wrong: str, check: str) -> None:
    text = readme()
    assert right in text, f"the README no longer contains {right!r}: update PLANTED"
    assert CHECKS[check](text.replace(right, wrong, 1)), f"{check} did not notice {wrong!r}"


def test_the_python_api_section_names_real_options_and_attributes() -> None:
    """`minesearch.run(...)`'s keywords and the outcome's attributes the README shows exist."""
    import inspect

    import minesearch
    from minesearch.api import SearchOutcome

    text = readme()
    section = text[text.index("## From Python") :]
    section = section[: section.index("\n## ", 3)]
    options = set(inspect.signature(minesearch.run).parameters)
    in_parentheses = " ".join(re.findall(r"\(([^()]*)\)", section))
    shown = set(re.findall(r"(\w+)=", section)) | set(re.findall(r"`(\w+)`", in_parentheses))
    keywords = {w for w in shown if w.islower()}
    outcome = set(re.findall(r"outcome\.(\w+)", section))
    assert outcome and outcome <= set(dir(SearchOutcome)), outcome - set(dir(SearchOutcome))
    missing = keywords - options - {"plain", "live"}  # the view's values
    assert not missing, f"README's From Python names options minesearch.run lacks: {missing}"
    assert hasattr(minesearch, "InputError")
