"""The rooms' rules (docs/architecture.md), read from the source with `ast`: imports go one way,
no module imports itself in a circle, other rooms enter through a room's public modules, and each
process imports only the libraries it needs."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "minesearch"
# Lower rooms first: a room may import the rooms before it, never one after it.
ROOMS = (
    "catalog",
    "config",
    "recipe",
    "results",
    "space",
    "data",
    "models",
    "train",
    "tracking",
    "search",
    "report",
    "export",
    "api",
    "cli",
)
# What only one room may import (and the rooms below it may not reach it through another).
OWNED = {"mlflow": "tracking", "ray.tune": "search", "optuna": ("space", "search", "report")}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = modules()


def room(module: str) -> str:
    """`minesearch.train._loop` -> train; `minesearch.cli` -> cli; the package itself -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports(path: Path, module: str) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, lazy and TYPE_CHECKING ones too."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), node.lineno


def internal_edges() -> list[tuple[str, str, int]]:
    return [
        (module, target, line)
        for module, path in MODULES.items()
        for target, line in imports(path, module)
        if target.split(".")[0] == "minesearch"
    ]


def test_every_module_is_in_a_room() -> None:
    rooms = {room(m) for m in MODULES} - {"", "__main__"}
    assert rooms == set(ROOMS), "a new room (or module at the top) needs a place in ROOMS"


def test_imports_go_against_no_room_order() -> None:
    wrong = [
        f"{module}:{line} imports {target}"
        for module, target, line in internal_edges()
        if room(target) not in ("", room(module))
        and room(module) != "__main__"
        and ROOMS.index(room(target)) > ROOMS.index(room(module))
    ]
    assert not wrong, "imports against the rooms' direction:\n" + "\n".join(wrong)


def test_other_rooms_enter_through_public_modules() -> None:
    """`minesearch.train._loop` is train's own; other rooms use `minesearch.train` (or a public
    module such as `minesearch.config.vocab`)."""
    private = [
        f"{module}:{line} imports {target}"
        for module, target, line in internal_edges()
        if room(target) != room(module) and any(p.startswith("_") for p in target.split(".")[1:])
    ]
    assert not private, "private modules used from another room:\n" + "\n".join(private)


def test_no_module_imports_its_own_package() -> None:
    """Inside a room, modules import their siblings directly: importing the room's own __init__
    (which imports them all) is how circles start."""
    own = [
        f"{module}:{line} imports {target}"
        for module, target, line in internal_edges()
        if MODULES[module].name != "__init__.py"
        and target != "minesearch"  # the package root holds only __version__
        and MODULES.get(target, Path()).name == "__init__.py"
        and module.startswith(target + ".")
    ]
    assert not own, "\n".join(own)


def test_no_import_circles() -> None:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, _ in internal_edges():
        if target in graph and target != module:
            graph[module].add(target)
    cycles = [c for c in strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import circles: {cycles}"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    found.append(component)
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


@pytest.mark.parametrize("library", sorted(OWNED))
def test_owned_libraries_are_imported_by_their_room_only(library: str) -> None:
    owners = OWNED[library]
    allowed = (owners,) if isinstance(owners, str) else owners
    found = [
        f"{module}:{line}"
        for module, path in MODULES.items()
        for target, line in imports(path, module)
        if (target == library or target.startswith(library + ".")) and room(module) not in allowed
    ]
    assert not found, f"{library} imported outside {allowed}: {found}"


def loaded_by(code: str) -> set[str]:
    """Top-level packages (and ray.tune) in sys.modules after `code` runs in a fresh process."""
    probe = (
        f"{code}\nimport sys\n"
        "print('\\n'.join(m for m in sys.modules if '.' not in m or m == 'ray.tune'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    ("command", "absent"),
    [
        (["validate", "search_spaces/quickstart.yaml"], {"ray", "mlflow", "torch", "optuna"}),
        (["catalog"], {"ray", "mlflow", "torch", "optuna"}),
    ],
    ids=["validate", "catalog"],
)
def test_light_commands_load_no_heavy_library(command: list[str], absent: set[str]) -> None:
    root = PACKAGE.parent
    code = (
        "import os, sys\n"
        f"os.chdir({str(root)!r})\n"
        "from click.testing import CliRunner\n"
        "from minesearch.cli import main\n"
        f"result = CliRunner().invoke(main, {command!r})\n"
        "assert result.exit_code == 0, result.output"
    )
    assert not loaded_by(code) & absent


def test_a_worker_loads_neither_mlflow_nor_tune() -> None:
    # what a Ray Train worker runs: the entry point, which imports the loop when called
    loaded = loaded_by("import minesearch.train._loop")
    assert "torch" in loaded  # the probe sees what it should
    assert not loaded & {"mlflow", "ray.tune", "optuna"}


def test_handing_a_trial_to_ray_train_loads_no_torch() -> None:
    """The trial process pickles the workers' entry point and never trains: the train package
    loads its modules lazily so that it pays for none of torch, PML or scipy."""
    loaded = loaded_by(
        "from minesearch.train import CHECKPOINT_RANK, train_loop_per_worker, worker_config"
    )
    assert "minesearch" in loaded  # the probe sees what it should
    assert not loaded & {"torch", "pytorch_metric_learning", "scipy"}


def test_a_tune_trial_process_loads_no_driver_library() -> None:
    """A trial process unpickles `run_trial` and hands the trial to Ray Train: it needs neither the
    driver's MLflow and Optuna nor the workers' PML (the search package loads lazily)."""
    loaded = loaded_by("import minesearch.search._trial")
    assert "ray" in loaded  # the probe sees what it should
    assert not loaded & {"mlflow", "optuna", "pytorch_metric_learning", "matplotlib", "sklearn"}


def test_a_trial_that_trains_in_its_actor_loads_no_driver_library() -> None:
    """A single-worker trial runs the worker loop in its Tune trial actor: it loads what a Ray
    Train worker loads (torch, PML) and still none of the driver's MLflow, Optuna or plots."""
    loaded = loaded_by("import minesearch.search._in_actor, minesearch.train._loop")
    assert {"torch", "pytorch_metric_learning"} <= loaded  # the probe sees what it should
    assert not loaded & {"mlflow", "optuna", "matplotlib"}
