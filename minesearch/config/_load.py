"""Reading a space file: YAML safely, then every problem at once, each naming its field.

Pydantic checks shapes and types (`_schema`); `_checks` then checks what depends on the catalog.
A wrong name found after a cluster spun up costs GPU-hours, so everything is reported here,
together, before Ray starts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError

from minesearch.catalog import did_you_mean
from minesearch.config._checks import semantic_errors
from minesearch.config._params import PARAM_FORMS, ParamValue, Range, param_errors
from minesearch.config._paths import with_paths_resolved
from minesearch.config._schema import SpaceSpec


class SpecError(Exception):
    """All problems of one space file; `str()` lists them one per line."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, list[str]]]:
        return type(self), (self.source, self.problems)


class SpaceLoader(yaml.SafeLoader):
    """SafeLoader that reads `1e-3` as a number: YAML 1.1 wants `1.0e-3`, and a learning rate
    written the way everyone writes it must not become the string '1e-3'."""


SpaceLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_spec(path: str | Path) -> SpaceSpec:
    """Read and validate a space file (its relative paths are relative to it: `_paths`); raise
    SpecError with every problem found."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            source,
            [
                f"not UTF-8 text (byte {exc.start}: {exc.reason}): a space file is YAML text; "
                "save it as UTF-8"
            ],
        ) from None
    except OSError as exc:
        raise SpecError(source, [f"cannot read the space file: {exc.strerror}"]) from None
    try:
        raw = yaml.load(text, Loader=SpaceLoader)  # SpaceLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise SpecError(source, [f"not valid YAML: {exc}"]) from None
    return parse_spec(with_paths_resolved(raw, Path(path).resolve().parent), source)


def spec_from_dict(raw: Any, base: Path, source: str = "<space>") -> SpaceSpec:
    """A space given as the YAML's content (`minesearch.run(dict)`): its relative paths are
    relative to `base` (the caller's directory), as a file's are to the file."""
    return parse_spec(with_paths_resolved(raw, base), source)


def parse_spec(raw: Any, source: str = "<space>") -> SpaceSpec:
    if not isinstance(raw, dict):
        raise SpecError(source, ["the file must be a mapping with at least `name:`"])
    try:
        spec = SpaceSpec.model_validate(raw)
    except ValidationError as exc:
        problems = _describe_all(exc.errors()) + _raw_param_errors(raw)
        raise SpecError(source, problems) from None
    problems = semantic_errors(spec)
    if problems:
        raise SpecError(source, problems)
    return spec


def _raw_param_errors(raw: dict[str, Any]) -> list[str]:
    """The catalog checks of `search.params`, even when another part of the file is malformed.

    Parameters whose form is wrong are left out (already reported); if `loss` or `miner` is one of
    them, where the others apply cannot be known, so nothing more is said.
    """
    search = raw.get("search")
    params = search.get("params") if isinstance(search, dict) else None
    if not isinstance(params, dict):
        return []
    typed: dict[str, ParamValue] = {}
    for key, value in params.items():
        try:
            typed[str(key)] = _PARAM.validate_python(value)
        except ValidationError:
            if key in ("loss", "miner"):
                return []
    assert isinstance(search, dict)  # params was found inside it
    return param_errors(typed, search.get("weight_miners") is True)


_PARAM: TypeAdapter[ParamValue] = TypeAdapter(ParamValue)
_SCALAR_BRANCHES = ("float", "int", "str")


def _describe_all(errors: list[Any]) -> list[str]:
    """One message per field: a value that fits no scalar type is one problem, not three."""
    problems: dict[tuple[Any, ...], str] = {}
    for err in errors:
        loc = _user_loc(err["loc"])
        if loc in problems and _scalar_branch(err):
            continue
        problems[loc] = _describe(err, loc)
    return list(problems.values())


def _user_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """`loc` as the file spells it: without pydantic's union branch labels under search.params."""
    if loc[:2] != ("search", "params"):
        return loc
    tail = [p for p in loc[3:] if p not in PARAM_FORMS and p not in _SCALAR_BRANCHES]
    return (*loc[:3], *tail)


def _scalar_branch(err: Any) -> bool:
    """An error of one member of a parameter's number-or-name union (pydantic reports each)."""
    loc = err["loc"]
    return len(loc) > 3 and loc[:2] == ("search", "params") and loc[-1] in _SCALAR_BRANCHES


def _describe(err: Any, loc: tuple[Any, ...]) -> str:
    where = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        hint = did_you_mean(str(loc[-1]), allowed)
        return f"{where}: unknown key{hint}; allowed: {allowed}"
    if _scalar_branch(err):
        msg = "Input should be a number or a name"
    if err["type"] == "literal_error":  # a closed choice: suggest the nearest allowed value
        msg += did_you_mean(err.get("input"), re.findall(r"'([^']*)'", msg))
    given = err.get("input")
    shown = "" if isinstance(given, dict) else f" (given {given!r})"
    return f"{where}: {msg}{shown}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model class found by following `loc` from SpaceSpec (for 'allowed keys')."""
    if loc[:2] == ("search", "params"):
        return Range if len(loc) == 3 else None
    model: type[BaseModel] = SpaceSpec
    for part in loc:
        annotation = getattr(model.model_fields.get(str(part)), "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
