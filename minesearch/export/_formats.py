"""A trained network as a file that embeds outside minesearch: TorchScript or ONNX, plus the JSON of
its preprocessing.

The network's forward takes what its preprocess makes (a tensor, or a dict of token tensors for
text); exporters want positional tensors, so text is wrapped as ``(input_ids, attention_mask)``.
A trace records one example's path, so every export is checked on other batch sizes (and sequence
lengths) before it is kept: a graph that baked in the example's shape fails the export rather than
embedding wrongly later. Exports are written to a temp directory next to the target and renamed,
so a failure leaves nothing half-written.

Finding a trial's checkpoint in MLflow is `_runs`'s.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from minesearch import __version__
from minesearch.data import ModelInput, Preprocess, RawInputs
from minesearch.data.preprocess import ImagePreprocess, TensorPreprocess, TextPreprocess
from minesearch.models import Network

__all__ = [
    "FORMATS",
    "MODEL_FILES",
    "PREPROCESS_FILE",
    "ExportError",
    "ExportFormat",
    "ExportedModel",
    "export_network",
    "load_exported",
]

ExportFormat = Literal["torchscript", "onnx"]
FORMATS: tuple[ExportFormat, ...] = ("torchscript", "onnx")
MODEL_FILES: dict[ExportFormat, str] = {"torchscript": "model.pt", "onnx": "model.onnx"}
PREPROCESS_FILE = "preprocess.json"
TOKENIZER_DIR = "tokenizer"
OUTPUT_NAME = "unit_embedding"  # "embedding" collides with a node name inside BERT's ONNX graph
TEXT_INPUTS = ("input_ids", "attention_mask")
TOLERANCE: dict[ExportFormat, float] = {"torchscript": 1e-5, "onnx": 1e-4}
EXPORT_EXTRA = "pip install 'minesearch[export]'"
_SINGLE_FILE_BYTES = 1_500_000_000  # ONNX protobufs cap at 2 GiB: larger weights go beside
Runner = Callable[[tuple[torch.Tensor, ...]], np.ndarray]  # input tensors -> [B, E]


class ExportError(ValueError):
    """An export that cannot be made or loaded; the message names what was looked for."""


def export_network(
    network: Network,
    example: ModelInput,
    fmt: ExportFormat,
    out_dir: Path,
    input_column: str | None = None,
) -> Path:
    """Write `out_dir`/model.pt or model.onnx and preprocess.json; return the model file.

    `example` is one preprocessed batch (eval mode); `input_column` is recorded as the column
    `minesearch embed` reads by default.
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model = network.model.eval()
    names, args = _positional(example)
    with _staging(out_dir) as tmp:
        module = _TextInputs(model) if names == TEXT_INPUTS else model
        _write_model(module, args, names, fmt, tmp / MODEL_FILES[fmt])
        with torch.no_grad():
            embedding_dim = int(model(example).shape[-1])
        settings = _settings(network.preprocess, tmp, args, names, fmt, embedding_dim)
        settings["input_column"] = input_column
        (tmp / PREPROCESS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return out_dir / MODEL_FILES[fmt]


class _TextInputs(nn.Module):
    """(input_ids, attention_mask) -> the dict the text trunk reads: exporters take tensors."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model({"input_ids": input_ids, "attention_mask": attention_mask})


def _positional(example: ModelInput) -> tuple[tuple[str, ...], tuple[torch.Tensor, ...]]:
    """Input names and tensors; text gets a padding column so the traced path masks (a batch
    without padding would take no other path), and at least two rows so batch stays dynamic."""
    if isinstance(example, torch.Tensor):
        x = example if len(example) > 1 else torch.cat([example, example])
        return ("input",), (x.float(),)
    if set(example) != set(TEXT_INPUTS):
        raise ExportError(f"cannot export a model taking {sorted(example)}; known: {TEXT_INPUTS}")
    ids, mask = example["input_ids"], example["attention_mask"]
    if len(ids) < 2:
        ids, mask = torch.cat([ids, ids]), torch.cat([mask, mask])
    return TEXT_INPUTS, (_pad(ids), _pad(mask))


def _pad(x: torch.Tensor) -> torch.Tensor:
    """One more column of zeros: [PAD] (id 0 in BERT vocabularies; masked anyway), mask 0."""
    return torch.cat([x, torch.zeros_like(x[:, :1])], dim=1)


def _probes(args: tuple[torch.Tensor, ...]) -> list[tuple[torch.Tensor, ...]]:
    """Shapes other than the example's: one more row (and for text one more padding column),
    and a single row (for text trimmed to its real tokens, without padding)."""
    more = tuple(torch.cat([a, a[:1]]) for a in args)
    if len(args) == 1:
        return [more, (args[0][:1],)]
    mask = args[1][:1]
    length = max(int(mask.sum()), 1)
    return [tuple(_pad(a) for a in more), tuple(a[:1, :length] for a in args)]


def _write_model(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    fmt: ExportFormat,
    path: Path,
) -> None:
    if fmt == "torchscript":
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(module, args, check_trace=False)
            traced.save(str(path))
            run = _torchscript_runner(torch.jit.load(str(path), map_location="cpu"))
    else:
        _onnx_export(module, args, names, path)
        if importlib.util.find_spec("onnxruntime") is None:
            return  # nothing to check with: loading it will ask for the extra
        run = _onnx_runner(path, names)
    for probe in _probes(args):
        with torch.no_grad():
            expected = module(*probe).numpy()
        diff = float(np.abs(run(probe) - expected).max())
        if not diff <= TOLERANCE[fmt]:
            shape = "x".join(str(n) for n in probe[0].shape)
            raise ExportError(
                f"the {fmt} export is not shape-general: on a {shape} input it differs from the "
                f"model by {diff:.2e} (tolerance {TOLERANCE[fmt]:.0e})"
            )


def _onnx_export(
    module: nn.Module, args: tuple[torch.Tensor, ...], names: tuple[str, ...], path: Path
) -> None:
    """torch.export-based exporter (dynamo=True, torch's default and maintained path; it needs
    onnxscript) with a dynamic batch axis, and a dynamic sequence axis for text."""
    missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
    if missing:
        raise ExportError(f"ONNX export needs {' and '.join(missing)}: {EXPORT_EXTRA}")
    from torch.export import Dim

    batch = Dim("batch")
    axes: dict[int, Any] = {0: batch, 1: Dim("sequence")} if names == TEXT_INPUTS else {0: batch}
    large = sum(p.numel() * p.element_size() for p in module.parameters()) > _SINGLE_FILE_BYTES
    with _quiet():
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=list(names),
            output_names=[OUTPUT_NAME],
            dynamic_shapes=tuple(axes for _ in names),
            dynamo=True,
            external_data=large,
            verbose=False,
        )


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Tracer and exporter chatter (deprecations, "torchvision is not installed") off the CLI."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _staging(out_dir: Path) -> Iterator[Path]:
    """A temp directory beside `out_dir`, renamed to it on success (replacing an earlier export)."""
    if out_dir.exists() and not _replaceable(out_dir):
        raise ExportError(f"{out_dir} exists and is not an export; give another --out")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
            out_dir.rename(old / "export")
            tmp.rename(out_dir)
            shutil.rmtree(old)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replaceable(out_dir: Path) -> bool:
    return out_dir.is_dir() and (
        (out_dir / PREPROCESS_FILE).is_file() or not any(out_dir.iterdir())
    )


def _settings(
    preprocess: Preprocess,
    out_dir: Path,
    args: tuple[torch.Tensor, ...],
    names: tuple[str, ...],
    fmt: ExportFormat,
    embedding_dim: int,
) -> dict[str, Any]:
    """describe() plus what a reader needs to call the file; text's tokenizer is copied in."""
    settings = preprocess.describe()
    if isinstance(preprocess, TextPreprocess):
        preprocess.save_tokenizer(out_dir / TOKENIZER_DIR)
        settings["tokenizer"] = TOKENIZER_DIR  # relative to this file: the export moves as one
    if settings.get("kind") == "tensor":
        settings["input_shape"] = list(args[0].shape[1:])
    return {
        **settings,
        "format": fmt,
        "inputs": list(names),
        "output": OUTPUT_NAME,
        "embedding_dim": embedding_dim,
        "minesearch_version": __version__,
    }


@dataclass(frozen=True, eq=False)
class ExportedModel:
    """An export loaded back: raw inputs of one batch -> float32 embeddings [B, E]."""

    settings: dict[str, Any]
    preprocess: Preprocess
    run: Runner

    @property
    def kind(self) -> str:
        return str(self.settings["kind"])

    @property
    def embedding_dim(self) -> int:
        return int(self.settings["embedding_dim"])

    def __call__(self, raw: RawInputs) -> np.ndarray:
        x = self.preprocess(raw, False)
        args = tuple(x[n] for n in TEXT_INPUTS) if isinstance(x, dict) else (x,)
        return np.asarray(self.run(args), dtype=np.float32)


def load_exported(model_path: Path | str) -> ExportedModel:
    """The export at `model_path` (its model file, or the directory holding it)."""
    path = _model_file(Path(model_path))
    settings_file = path.parent / PREPROCESS_FILE
    try:
        settings = json.loads(settings_file.read_text())
    except (OSError, ValueError) as err:
        raise ExportError(
            f"cannot read {settings_file} (written beside every export): {err}"
        ) from None
    names = tuple(settings.get("inputs", ()))
    preprocess = _preprocess(settings, path.parent)
    if path.suffix == ".onnx":
        if importlib.util.find_spec("onnxruntime") is None:
            raise ExportError(f"running {path} needs onnxruntime: {EXPORT_EXTRA}")
        return ExportedModel(settings, preprocess, _onnx_runner(path, names))
    try:
        with _quiet():
            module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError as err:
        raise ExportError(f"{path} is not a TorchScript file: {err}") from None
    return ExportedModel(settings, preprocess, _torchscript_runner(module))


def _model_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        found = [path / name for name in MODEL_FILES.values() if (path / name).is_file()]
        if len(found) == 1:
            return found[0]
        listed = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
        raise ExportError(
            f"{path} should hold one of {', '.join(MODEL_FILES.values())}; it holds {listed}"
        )
    raise ExportError(f"{path} does not exist (give an export's model file or directory)")


def _preprocess(settings: dict[str, Any], root: Path) -> Preprocess:
    """The eval-time preprocess that preprocess.json describes."""
    kind = settings.get("kind")
    if kind == "tensor":
        return TensorPreprocess(tuple(settings["input_shape"]))
    if kind == "image":
        mean, std = settings["mean"], settings["std"]
        return ImagePreprocess(
            size=int(settings["size"]), mean=tuple(mean), std=tuple(std), augment=False
        )
    if kind == "text":
        return TextPreprocess(str(root / settings["tokenizer"]), int(settings["max_length"]))
    raise ExportError(f"{root / PREPROCESS_FILE}: unknown input kind {kind!r}")


def _torchscript_runner(module: Any) -> Runner:
    def run(args: tuple[torch.Tensor, ...]) -> np.ndarray:
        with torch.no_grad():
            return np.asarray(module(*args).numpy())

    return run


def _onnx_runner(path: Path, names: tuple[str, ...]) -> Runner:
    import onnxruntime

    try:
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph types
        raise ExportError(f"onnxruntime cannot load {path}: {err}") from None

    def run(args: tuple[torch.Tensor, ...]) -> np.ndarray:
        feed = {n: a.numpy() for n, a in zip(names, args, strict=True)}
        return np.asarray(session.run([OUTPUT_NAME], feed)[0])

    return run
