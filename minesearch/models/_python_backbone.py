"""The user's own network as a backbone: ``model.backbone: python:<module>:<function>``, or
``python:<file.py>:<function>``.

The factory is a function of one argument, a `BackboneInputs` (what the data gives), returning
``(module, out_dim)`` or a `PythonBackbone` (the same, plus ``pretrained``). The module's forward
takes what the data's preprocessing makes: float32 ``[B, *shape]`` for tensor sources (vectors
``[B, D]``, arrays such as digits' ``[B, 1, 8, 8]``), and for images ``[B, 3, S, S]`` (decoded,
cropped and flipped in training, normalised with ImageNet's mean and std; S is
``data.image.size``). It returns ``[B, out_dim]``: minesearch adds the head and the L2
normalisation. Text is refused (`config.vocab.BACKBONE_KINDS`): tokens belong to a model's own
tokenizer, and ``hf:<dir>`` takes any Hugging Face encoder.

``train_last_blocks`` counts the module's children that hold parameters, in order (a Sequential
or ModuleList child counts as its children; parameters of the module itself are one block, first:
`stage_blocks`). The module is pretrained only when
the factory says so; a search is then judged against its output (the pretrained reference).
The factory runs in every process that builds the network (`minesearch validate` and the driver
once each, every Ray Train worker, the scoring tasks, `minesearch export`), after
``torch.manual_seed(train.seed)`` in the workers, so every worker starts from the same weights.

Where the code is found:

- a file (``.py``): loaded from its path, which loading the space made absolute against the space
  file's directory; on one machine, or a filesystem every node shares;
- a module: imported from the Python path, as an installed package is, else from the current
  directory. A local Ray (2.60) starts its workers in the directory ``ray.init`` ran in and puts
  it first on their path (tests/search/test_python_backbone_e2e.py), so a module in the directory
  `minesearch run` starts in is found by the driver and the workers alike. On a cluster,
  ``ray job submit --working-dir . -- minesearch run space.yaml`` makes the uploaded directory
  the import root of the driver and of every worker; a ``runtime_env`` with ``py_modules`` ships
  a package without it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from torch import nn

from minesearch.config.vocab import InputKind, python_target
from minesearch.models._backbone import Backbone, BackboneError, stage_blocks

__all__ = ["BackboneInputs", "PythonBackbone", "build_python_backbone"]


@dataclass(frozen=True)
class BackboneInputs:
    """What a `python:` factory is told: its one argument."""

    kind: InputKind  # "tensor" (float arrays: vectors, [C, H, W] arrays) or "image" (decoded RGB)
    shape: tuple[int, ...]  # one sample as forward receives it: (D,), (C, H, W) or (3, S, S)
    hidden_dim: int  # model.hidden_dim: a width the factory may use for its layers


class PythonBackbone(NamedTuple):
    """What a factory returns; a plain ``(module, out_dim)`` tuple means ``pretrained=False``."""

    module: nn.Module  # forward(float [B, *shape]) -> float [B, out_dim]
    out_dim: int
    pretrained: bool = False  # True: its output already is an embedding worth starting from


Factory = Callable[[BackboneInputs], Any]
_SHOWN = 12  # functions named when the factory is not found


def build_python_backbone(
    name: str, kind: InputKind, shape: tuple[int, ...] | None, hidden_dim: int
) -> Backbone:
    """Import `name`'s factory, call it once and check what it returned."""
    target = python_target(name)
    if target is None:  # build_backbone parsed it already: only a direct call gets here
        raise BackboneError(f"model.backbone {name!r} is not python:<module>:<function>")
    if shape is None:
        raise BackboneError(f"model.backbone {name!r} needs inputs of a fixed shape")
    factory = load_factory(name, *target)
    inputs = BackboneInputs(kind=kind, shape=tuple(shape), hidden_dim=hidden_dim)
    try:
        returned = factory(inputs)
    except Exception as err:  # the user's code: whatever it raises is reported, with its text
        raise BackboneError(
            f"model.backbone {name!r}: {target[1]}({inputs}) raised {type(err).__name__}: {err}"
        ) from err
    built = _checked(name, returned)
    return Backbone(
        built.module, built.out_dim, None, stage_blocks(built.module), pretrained=built.pretrained
    )


def load_factory(name: str, target: str, function: str) -> Factory:
    """The factory `function` of `target` (a ``.py`` file, else a dotted module name)."""
    module = _load_file(name, Path(target)) if target.endswith(".py") else _import(name, target)
    where = f"{target}" if target.endswith(".py") else f"module {target!r} ({module.__file__})"
    factory = getattr(module, function, None)
    if factory is None:
        found = [n for n, v in vars(module).items() if _own_function(v, module)]
        shown = ", ".join(found[:_SHOWN]) + (", ..." if len(found) > _SHOWN else "")
        raise BackboneError(
            f"model.backbone {name!r}: {where} has no function {function!r}; its functions: "
            f"{shown or 'none'}"
        )
    if not callable(factory):
        raise BackboneError(
            f"model.backbone {name!r}: {function!r} in {where} is of type "
            f"{type(factory).__name__}, not a function"
        )
    return factory


def _own_function(value: object, module: ModuleType) -> bool:
    """A public function defined in `module` itself (not one it imported): a factory candidate."""
    return (
        inspect.isfunction(value)
        and value.__module__ == module.__name__
        and not value.__name__.startswith("_")
    )


def _load_file(name: str, path: Path) -> ModuleType:
    """A file loaded under a name of its own (its stem and a hash of its path), once a process.

    Not under its stem alone: a user's ``json.py`` must not become everyone's ``json``.
    """
    path = path if path.is_absolute() else Path.cwd() / path
    if not path.is_file():
        raise BackboneError(f"model.backbone {name!r}: no such file {path}")
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    module_name = f"_minesearch_backbone_{path.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BackboneError(f"model.backbone {name!r}: {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up there
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[module_name]
        raise BackboneError(
            f"model.backbone {name!r}: importing {path} raised {type(err).__name__}: {err}"
        ) from err
    return module


def _import(name: str, target: str) -> ModuleType:
    """Import `target` from the Python path, else from the current directory.

    A local Ray's workers have the driver's directory on their path; the `minesearch` script does
    not, so it is added here, for good (the module may import more later), and last, so that a
    file there never shadows a package the driver already uses.
    """
    try:
        return _import_or_none(name, target) or _import_from_cwd(name, target)
    except BackboneError:
        raise
    except Exception as err:  # the module's own code failed while importing
        raise BackboneError(
            f"model.backbone {name!r}: importing module {target!r} raised "
            f"{type(err).__name__}: {err}"
        ) from err


def _import_or_none(name: str, target: str) -> ModuleType | None:
    """The module, or None when it (or a package above it) is not on the path."""
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        missing = err.name or ""
        if target == missing or target.startswith(missing + "."):
            return None
        raise  # the module was found, and one of its own imports is missing


def _import_from_cwd(name: str, target: str) -> ModuleType:
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
        importlib.invalidate_caches()
        if (module := _import_or_none(name, target)) is not None:
            return module
    raise BackboneError(
        f"model.backbone {name!r}: no module named {target!r} on the Python path "
        f"(sys.path: {[p for p in sys.path if p]}). A file next to the space file is "
        f"python:<file.py>:<function>; a module must be importable in every process (installed, "
        "in the directory minesearch runs in, or shipped with ray job submit --working-dir)"
    )


def _checked(name: str, returned: Any) -> PythonBackbone:
    """`returned` as a PythonBackbone, or the reason it is not one."""
    expect = "(module, out_dim) or PythonBackbone(module, out_dim, pretrained)"
    if not isinstance(returned, tuple) or len(returned) not in (2, 3):
        raise BackboneError(
            f"model.backbone {name!r}: the factory must return {expect}, not "
            f"{type(returned).__name__}"
        )
    built = PythonBackbone(*returned)
    if not isinstance(built.module, nn.Module):
        raise BackboneError(
            f"model.backbone {name!r}: the factory returned a {type(built.module).__name__} as "
            "its module; it must be a torch.nn.Module"
        )
    width = built.out_dim
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise BackboneError(
            f"model.backbone {name!r}: the factory returned out_dim {width!r}; it must be a "
            "positive int (the width of the module's output)"
        )
    if not isinstance(built.pretrained, bool):
        raise BackboneError(
            f"model.backbone {name!r}: the factory returned pretrained {built.pretrained!r}; "
            "it must be True or False"
        )
    return built
