"""`python:` backbones: the user's factory, found as a file or a module, called, checked, frozen;
and the sample-batch check `minesearch validate` runs on it (`network_errors`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from minesearch.config import SpaceSpec, parse_spec
from minesearch.data import open_source
from minesearch.models import (
    Backbone,
    BackboneError,
    BackboneInputs,
    build_backbone,
    build_network,
    freeze,
    is_pretrained,
    network_errors,
    reference_network,
)

FACTORIES = """
import torch
from torch import nn

from minesearch.models import PythonBackbone

SEEN = []


class Net(nn.Module):
    def __init__(self, in_dim, width):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.first = nn.Linear(in_dim, width)
        self.rest = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.Linear(width, width))

    def forward(self, x):
        return self.rest(self.first(x.flatten(1) * self.scale))


def build(inputs):
    SEEN.append(inputs)
    size = 1
    for d in inputs.shape:
        size *= d
    return Net(size, inputs.hidden_dim), inputs.hidden_dim


def pretrained(inputs):
    return PythonBackbone(nn.Flatten(), out_dim=64, pretrained=True)


def wider(inputs):
    return nn.Flatten(), 7


def breaks(inputs):
    raise RuntimeError("weights not found")


def gives_ints(inputs):
    class Ints(nn.Module):
        def forward(self, x):
            return x.flatten(1).long()

    return Ints(), 64


def not_a_tuple(inputs):
    return nn.Flatten()


def four(inputs):
    return nn.Flatten(), 64, False, None


def not_a_module(inputs):
    return "resnet", 64


def zero_width(inputs):
    return nn.Flatten(), 0


def bool_width(inputs):
    return nn.Flatten(), True


def float_width(inputs):
    return nn.Flatten(), 64.0


def pretrained_maybe(inputs):
    return nn.Flatten(), 64, "yes"


CONSTANT = 3
"""


@pytest.fixture
def factories(tmp_path: Path) -> Path:
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return path


def _build(name: str, kind: Any = "tensor", shape: Any = (1, 8, 8), **kw: Any) -> Backbone:
    return build_backbone(name, kind=kind, input_shape=shape, hidden_dim=16, **kw)


def _module(path: Path) -> Any:
    return next(m for m in sys.modules.values() if getattr(m, "__file__", None) == str(path))


def spec_of(backbone: str, **model: Any) -> SpaceSpec:
    return parse_spec(
        {
            "name": "t",
            "data": {"source": "digits"},
            "model": {"backbone": backbone, **model},
            "search": {"params": {"loss": "TripletMarginLoss"}},
        }
    )


# --- the factory's contract ----------------------------------------------------------------------


def test_a_file_factory_gets_the_inputs_and_gives_the_trunk(factories: Path) -> None:
    backbone = _build(f"python:{factories}:build")
    seen = _module(factories).SEEN
    assert seen == [BackboneInputs(kind="tensor", shape=(1, 8, 8), hidden_dim=16)]
    assert backbone.out_dim == 16 and not backbone.pretrained and backbone.preprocess is None
    assert backbone.trunk(torch.zeros(3, 1, 8, 8)).shape == (3, 16)


def test_blocks_are_the_modules_children_for_train_last_blocks(factories: Path) -> None:
    backbone = _build(f"python:{factories}:build")
    # own parameters first, then the children with parameters (a Sequential split once)
    assert [type(b).__name__ for b in backbone.blocks] == [
        "ParameterList",
        "Linear",
        "Linear",
        "Linear",
    ]
    blocks = {id(p) for b in backbone.blocks for p in b.parameters()}
    assert blocks == {id(p) for p in backbone.trunk.parameters()}
    freeze(backbone, 2)
    trained = [all(p.requires_grad for p in b.parameters()) for b in backbone.blocks]
    assert trained == [False, False, True, True]


def test_images_give_the_factory_the_preprocessed_shape(factories: Path) -> None:
    _build(f"python:{factories}:build", kind="image", shape=None, image_size=24)
    assert _module(factories).SEEN[-1].shape == (3, 24, 24)


def test_a_file_is_loaded_once_per_process_under_a_name_of_its_own(tmp_path: Path) -> None:
    """A user's json.py is not everyone's json, and a second build reuses the loaded file."""
    path = tmp_path / "json.py"
    path.write_text("from torch import nn\nCALLS = []\ndef build(i):\n    CALLS.append(1)\n"
                    "    return nn.Flatten(), 64\n")  # fmt: skip
    _build(f"python:{path}:build")
    _build(f"python:{path}:build")
    assert _module(path).CALLS == [1, 1]
    import json

    assert json.__file__ != str(path) and hasattr(json, "dumps")


def test_a_pretrained_factory_is_judged_against_its_output(factories: Path) -> None:
    spec = spec_of(f"python:{factories}:pretrained")
    source = open_source(spec)
    assert is_pretrained(spec, source)
    assert not is_pretrained(spec_of(f"python:{factories}:build"), source)
    reference = reference_network(spec, source)
    x = torch.randn(4, 1, 8, 8)
    assert reference.head == "none"
    expected = torch.nn.functional.normalize(x.flatten(1), dim=1)
    assert torch.allclose(reference.model(x), expected, atol=1e-6)
    # the default head (linear, at the backbone's width) starts as the identity: epoch 0 = it
    trial = build_network(spec, source)
    assert torch.allclose(trial.model(x), expected, atol=1e-6)


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("breaks", r"breaks\(BackboneInputs\(kind='tensor'.*raised RuntimeError: weights not"),
        ("not_a_tuple", r"must return \(module, out_dim\) or PythonBackbone.*not Flatten"),
        ("four", r"must return \(module, out_dim\).*not tuple"),
        ("not_a_module", "returned a str as its module; it must be a torch.nn.Module"),
        ("zero_width", "out_dim 0; it must be a positive int"),
        ("bool_width", "out_dim True; it must be a positive int"),
        ("float_width", "out_dim 64.0; it must be a positive int"),
        ("pretrained_maybe", "pretrained 'yes'; it must be True or False"),
        ("missing", "has no function 'missing'; its functions: build, pretrained, wider, breaks"),
        ("CONSTANT", "'CONSTANT' in .* is of type int, not a function"),
    ],
)
def test_a_bad_factory_is_named_with_what_is_wrong(
    factories: Path, function: str, message: str
) -> None:
    name = f"python:{factories}:{function}"
    with pytest.raises(BackboneError, match=message) as err:
        _build(name)
    assert err.value.field == "model.backbone"
    assert str(err.value).startswith(f"model.backbone {name!r}: ")


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match=f"no such file {tmp_path / 'nope.py'}"):
        _build(f"python:{tmp_path / 'nope.py'}:build")
    broken = tmp_path / "broken.py"
    broken.write_text("def build(inputs):\n    return (\n")
    with pytest.raises(BackboneError, match=r"importing .*broken\.py raised SyntaxError"):
        _build(f"python:{broken}:build")
    assert not any(getattr(m, "__file__", None) == str(broken) for m in sys.modules.values())


def test_text_is_refused_for_want_of_a_tokenizer(factories: Path) -> None:
    with pytest.raises(BackboneError, match=r"takes 'tensor' or 'image' inputs, but .* 'text'"):
        _build(f"python:{factories}:build", kind="text", shape=None)


# --- where a module is found ---------------------------------------------------------------------


def _write_module(folder: Path, name: str, body: str = "") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(
        f"from torch import nn\n{body}\ndef build(inputs):\n    return nn.Flatten(), 64\n"
    )


@pytest.fixture
def clean_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """sys.path and sys.modules restored after the test (it imports modules it writes)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "modules", dict(sys.modules))


@pytest.mark.usefixtures("clean_path")
def test_a_module_on_the_python_path(tmp_path: Path) -> None:
    _write_module(tmp_path / "lib" / "pkg_nets", "convs")
    (tmp_path / "lib" / "pkg_nets" / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path / "lib"))
    assert _build("python:pkg_nets.convs:build").out_dim == 64


@pytest.mark.usefixtures("clean_path")
def test_a_module_in_the_current_directory_as_rays_workers_see_it(tmp_path: Path) -> None:
    """`minesearch` (a console script) has no cwd on its path; Ray's workers have the driver's
    directory at the end of theirs: the driver looks there too, last."""
    _write_module(tmp_path, "here_net")  # tmp_path is the test's cwd (conftest)
    assert str(tmp_path) not in sys.path
    assert _build("python:here_net:build").out_dim == 64
    assert sys.path[-1] == str(tmp_path)


@pytest.mark.usefixtures("clean_path")
def test_a_missing_module_names_the_path_it_tried(tmp_path: Path) -> None:
    with pytest.raises(BackboneError) as err:
        _build("python:no_such_nets.convs:build")
    message = str(err.value)
    assert "no module named 'no_such_nets.convs' on the Python path (sys.path: [" in message
    assert str(tmp_path) in message  # the current directory was tried too
    assert "python:<file.py>:<function>" in message and "--working-dir" in message


@pytest.mark.usefixtures("clean_path")
def test_a_module_whose_own_import_fails_says_so(tmp_path: Path) -> None:
    _write_module(tmp_path, "needs_dep", "import not_installed_dependency")
    with pytest.raises(BackboneError, match="importing module 'needs_dep' raised ModuleNotFound"):
        _build("python:needs_dep:build")


# --- what validate checks on a sample batch ------------------------------------------------------


def test_the_sample_batch_passes_a_good_factory(factories: Path) -> None:
    assert network_errors(spec_of(f"python:{factories}:build", embedding_dim=8)) == []


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("wider", r"forward on a sample batch \[2, 1, 8, 8\] returned \[2, 64\], but the factory "
                  r"said out_dim 7: expected \[2, 7\]"),
        ("gives_ints", r"forward returned a torch.int64 tensor; it must return a float tensor"),
        ("breaks", "raised RuntimeError: weights not found"),
    ],
)  # fmt: skip
def test_the_sample_batch_catches_a_wrong_output(
    factories: Path, function: str, message: str
) -> None:
    name = f"python:{factories}:{function}"
    problems = network_errors(spec_of(name))
    assert len(problems) == 1
    assert problems[0].startswith(f"model.backbone {name!r}: ")
    assert re.search(message, problems[0]), problems


def test_a_forward_that_fails_on_the_sample_batch(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.py"
    path.write_text("from torch import nn\ndef build(i):\n    return nn.Linear(5, 4), 4\n")
    (problem,) = network_errors(spec_of(f"python:{path}:build"))
    assert "its forward on a sample batch [2, 1, 8, 8] raised RuntimeError: mat1" in problem


def test_the_network_embeds_with_a_python_backbone(factories: Path) -> None:
    spec = spec_of(f"python:{factories}:build", embedding_dim=8)
    network = build_network(spec, open_source(spec))
    out = network.model(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 8)
    assert torch.allclose(out.norm(dim=1), torch.ones(5), atol=1e-5)
    assert isinstance(network.backbone.trunk, nn.Module) and network.embedding_dim == 8
