"""Image decoding and transforms, checked against hand-computed values and Pillow's own resize."""

from __future__ import annotations

import json
from io import BytesIO

import numpy as np
import pytest
import torch
from PIL import Image

from minesearch.data.preprocess import (
    ImagePreprocess,
    center_crop,
    decode_image,
    hflip,
    random_resized_crop_box,
    resize,
    resize_shorter_side,
)


def _png(img: Image.Image) -> bytes:
    buf = BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _random_rgb(h: int, w: int, seed: int) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    return Image.fromarray(pixels, "RGB")


def _pil_resize(channel: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pillow's bilinear resize of one float channel: an independent reference implementation."""
    img = Image.fromarray(channel.astype(np.float32), mode="F")
    return np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))


# --- helpers ----------------------------------------------------------------------------------


def test_resize_ramp_matches_hand_computed_triangle_filter() -> None:
    # Halving with antialias is a triangle filter of radius 2 input pixels: output 0 sits at
    # input 0.5 and weighs inputs 0, 1, 2 by .75, .75, .25 (normalised), so a 0..3 ramp gives
    # 5/7 and, by symmetry, 3 - 5/7 = 16/7. The 2-D ramp 4r + c is separable.
    ramp = torch.arange(16, dtype=torch.float32).view(1, 4, 4)
    a = torch.tensor([5 / 7, 16 / 7])
    expected = 4 * a.view(2, 1) + a.view(1, 2)
    torch.testing.assert_close(resize(ramp, (2, 2))[0], expected)


@pytest.mark.parametrize(
    ("h", "w", "out_h", "out_w"), [(12, 10, 5, 7), (9, 13, 20, 6), (8, 8, 3, 3)]
)
def test_resize_matches_pillow_bilinear(h: int, w: int, out_h: int, out_w: int) -> None:
    img = torch.from_numpy(np.asarray(_random_rgb(h, w, seed=h * w), dtype=np.float32))
    img = img.permute(2, 0, 1)  # [3, h, w]
    ours = resize(img, (out_h, out_w))
    assert ours.shape == (3, out_h, out_w)
    for c in range(3):
        ref = _pil_resize(img[c].numpy(), out_h, out_w)
        np.testing.assert_allclose(ours[c].numpy(), ref, atol=1e-3)


def test_resize_batched_equals_per_image() -> None:
    batch = torch.rand(3, 3, 11, 7, generator=torch.Generator().manual_seed(0))
    together = resize(batch, (5, 4))
    for i in range(3):
        torch.testing.assert_close(together[i], resize(batch[i], (5, 4)))


def test_resize_to_same_size_is_identity() -> None:
    img = torch.rand(3, 6, 5)
    assert torch.equal(resize(img, (6, 5)), img)


def test_resize_shorter_side_keeps_aspect_truncating_the_longer_side() -> None:
    assert resize_shorter_side(torch.rand(3, 10, 20), 5).shape == (3, 5, 10)
    assert resize_shorter_side(torch.rand(3, 7, 3), 2).shape == (3, 4, 2)  # int(2 * 7 / 3) = 4
    assert resize_shorter_side(torch.rand(2, 3, 96, 96), 73).shape == (2, 3, 73, 73)


def test_center_crop_takes_the_middle_rounding_like_torchvision() -> None:
    grid = torch.arange(20).view(1, 5, 4)
    assert center_crop(grid[:, :4], 2).tolist() == [[[5, 6], [9, 10]]]
    # (5 - 2) / 2 = 1.5 rounds (half to even) to 2, as torchvision's int(round(...)) does
    assert center_crop(grid, (2, 2)).tolist() == [[[9, 10], [13, 14]]]
    assert center_crop(grid, (5, 1)).tolist() == [[[2], [6], [10], [14], [18]]]
    with pytest.raises(ValueError, match="cannot center-crop 6x2 from a 5x4 image"):
        center_crop(grid, (6, 2))


def test_hflip_mirrors_columns_exactly() -> None:
    img = torch.arange(24).view(2, 3, 4)
    assert torch.equal(hflip(img), img[:, :, [3, 2, 1, 0]])
    assert torch.equal(hflip(hflip(img)), img)


# --- random resized crop ----------------------------------------------------------------------


def _box_fits_bounds(
    box: tuple[int, int, int, int],
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> bool:
    """Some real (w', h') within 0.5 of the rounded box has area and aspect inside the bounds."""
    _, _, bh, bw = box
    area = h * w
    return (
        (bw + 0.5) * (bh + 0.5) >= scale[0] * area
        and (bw - 0.5) * (bh - 0.5) <= scale[1] * area
        and (bw + 0.5) / (bh - 0.5) >= ratio[0]
        and (bw - 0.5) / (bh + 0.5) <= ratio[1]
    )


def _fallback_box(h: int, w: int, ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """torchvision's fallback written out independently: the centre, clamped to the ratio range."""
    if w / h < ratio[0]:
        bh, bw = round(w / ratio[0]), w
    elif w / h > ratio[1]:
        bh, bw = h, round(h * ratio[1])
    else:
        bh, bw = h, w
    return (h - bh) // 2, (w - bw) // 2, bh, bw


@pytest.mark.parametrize(("h", "w"), [(96, 96), (12, 10), (40, 90), (7, 3), (300, 200)])
@pytest.mark.parametrize(
    ("scale", "ratio"), [((0.35, 1.0), (3 / 4, 4 / 3)), ((0.08, 1.0), (0.5, 2))]
)
def test_crop_box_is_inside_the_image_and_within_bounds(
    h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float]
) -> None:
    gen = torch.Generator().manual_seed(h * 1000 + w)
    fractions = []
    for _ in range(500):
        box = random_resized_crop_box(h, w, scale, ratio, gen)
        top, left, bh, bw = box
        assert 0 <= top <= top + bh <= h and 0 <= left <= left + bw <= w
        assert bh > 0 and bw > 0
        assert _box_fits_bounds(box, h, w, scale, ratio) or box == _fallback_box(h, w, ratio)
        fractions.append(bh * bw / (h * w))
    if h * w >= 96 * 96:  # big enough for rounding not to blur the spread
        assert min(fractions) < scale[0] + 0.1 and max(fractions) > 0.85


def test_crop_box_falls_back_to_a_centred_box_when_nothing_fits() -> None:
    # A 1x100 strip: any box with area >= 35 px and ratio <= 4/3 is taller than 1 px.
    gen = torch.Generator().manual_seed(0)
    assert random_resized_crop_box(1, 100, (0.35, 1.0), (3 / 4, 4 / 3), gen) == (0, 49, 1, 1)
    assert random_resized_crop_box(100, 2, (0.35, 1.0), (3 / 4, 4 / 3), gen) == (48, 0, 3, 2)


def test_crop_box_is_reproducible_from_the_seed() -> None:
    def draws(seed: int) -> list[tuple[int, int, int, int]]:
        gen = torch.Generator().manual_seed(seed)
        return [random_resized_crop_box(50, 70, (0.35, 1.0), (0.75, 4 / 3), gen) for _ in range(20)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


# --- ImagePreprocess --------------------------------------------------------------------------


@pytest.fixture
def batch() -> list[bytes]:
    return [_png(_random_rgb(96, 96, seed=i)) for i in range(6)]


def test_output_shape_and_dtype(batch: list[bytes]) -> None:
    pre = ImagePreprocess(size=32)
    for train in (True, False):
        out = pre(batch, train=train, generator=torch.Generator().manual_seed(0))
        assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32


def test_same_seed_same_train_batch_different_seed_different(batch: list[bytes]) -> None:
    pre = ImagePreprocess(size=32)
    a = pre(batch, train=True, generator=torch.Generator().manual_seed(7))
    b = pre(batch, train=True, generator=torch.Generator().manual_seed(7))
    c = pre(batch, train=True, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_eval_is_deterministic_and_ignores_the_generator(batch: list[bytes]) -> None:
    pre = ImagePreprocess(size=32)
    gen = torch.Generator().manual_seed(5)
    state = gen.get_state()
    a = pre(batch, train=False, generator=gen)
    assert torch.equal(gen.get_state(), state)  # eval consumes no randomness
    assert torch.equal(a, pre(batch, train=False, generator=torch.Generator().manual_seed(6)))
    assert torch.equal(a, pre(batch, train=False))
    # augment=False makes the train path the eval path
    no_aug = ImagePreprocess(size=32, augment=False)
    assert torch.equal(a, no_aug(batch, train=True, generator=torch.Generator().manual_seed(9)))


def test_eval_matches_pillow_resize_and_crop() -> None:
    # 96x80 -> shorter side 73 (round(64 / 0.875)), longer int(73 * 96 / 80) = 87 -> crop 64
    img = _random_rgb(96, 80, seed=1)
    pre = ImagePreprocess(size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    out = pre([_png(img)], train=False)[0]
    pixels = np.asarray(img, dtype=np.float32) / 255.0
    top, left = round((87 - 64) / 2), round((73 - 64) / 2)  # 12 (11.5 to even), 4 (4.5 to even)
    for c in range(3):
        ref = _pil_resize(pixels[:, :, c], 87, 73)[top : top + 64, left : left + 64]
        np.testing.assert_allclose(out[c].numpy(), ref, atol=1e-5)


def test_train_with_whole_image_crop_is_a_resize_maybe_flipped() -> None:
    img = _random_rgb(20, 20, seed=2)
    pre = ImagePreprocess(size=8, mean=(0, 0, 0), std=(1, 1, 1), scale=(1.0, 1.0), ratio=(1, 1))
    out = pre([_png(img)] * 16, train=True, generator=torch.Generator().manual_seed(0))
    plain = resize(decode_image(_png(img)).float() / 255.0, (8, 8))
    flipped = [torch.equal(o, hflip(plain)) for o in out]
    assert all(f or torch.equal(o, plain) for o, f in zip(out, flipped, strict=True))
    assert 0 < sum(flipped) < 16  # the coin shows both faces


def test_constant_colour_maps_to_normalised_constant() -> None:
    colour = (200, 30, 117)
    raw = [_png(Image.new("RGB", (13, 9), colour))]
    pre = ImagePreprocess(size=16)
    expected = [(c / 255.0 - m) / s for c, m, s in zip(colour, pre.mean, pre.std, strict=True)]
    for train in (True, False):
        out = pre(raw, train=train, generator=torch.Generator().manual_seed(1))[0]  # [3, 16, 16]
        for c in range(3):
            torch.testing.assert_close(out[c], torch.full((16, 16), expected[c]), atol=1e-6, rtol=0)


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "I;16", "CMYK"])
def test_every_mode_becomes_three_channels(mode: str) -> None:
    img = _random_rgb(9, 14, seed=3).convert(mode)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    buf = BytesIO()
    img.save(buf, format=fmt)
    decoded = decode_image(buf.getvalue())
    assert decoded.shape == (3, 9, 14) and decoded.dtype == torch.uint8
    if mode in ("L", "LA", "1"):
        assert torch.equal(decoded[0], decoded[1]) and torch.equal(decoded[1], decoded[2])
    out = ImagePreprocess(size=8)([buf.getvalue()], train=True)
    assert out.shape == (1, 3, 8, 8)


def test_mixed_sizes_in_one_eval_batch_match_single_images() -> None:
    raw = [_png(_random_rgb(30, 50, seed=4)), _png(_random_rgb(40, 24, seed=5))]
    pre = ImagePreprocess(size=16)
    together = pre(raw, train=False)
    for i, one in enumerate(raw):
        torch.testing.assert_close(together[i], pre([one], train=False)[0])


def test_undecodable_bytes_name_their_index(batch: list[bytes]) -> None:
    pre = ImagePreprocess(size=16)
    with pytest.raises(ValueError, match="image 2 of the batch could not be decoded"):
        pre([*batch[:2], b"not an image", batch[3]], train=False)
    with pytest.raises(ValueError, match="image 1 of the batch"):
        pre([batch[0], batch[1][:200]], train=True)  # a truncated PNG


def test_wrong_raw_type_is_a_type_error() -> None:
    pre = ImagePreprocess()
    with pytest.raises(TypeError, match="got ndarray"):
        pre(np.zeros((2, 3), dtype=np.float32), train=False)
    with pytest.raises(TypeError, match="item 0 is str"):
        pre(["a.png"], train=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be at least 1"),
        ({"std": (0.2, 0.0, 0.2)}, "std values must be positive"),
        ({"scale": (0.5, 0.2)}, "scale must satisfy"),
        ({"scale": (0.0, 1.0)}, "scale must satisfy"),
        ({"ratio": (2.0, 1.0)}, "ratio must satisfy"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ImagePreprocess(**kwargs)


def test_describe_is_json_and_names_the_eval_path() -> None:
    desc = ImagePreprocess(size=64).describe()
    assert json.loads(json.dumps(desc)) == desc
    assert desc["kind"] == "image" and desc["size"] == 64
    assert desc["resize_shorter_side"] == 73 and desc["crop"] == "center 64x64"
    assert desc["mean"] == [0.485, 0.456, 0.406] and desc["std"] == [0.229, 0.224, 0.225]
    assert "bilinear" in desc["resize"] and "antialias" in desc["resize"]
    assert ImagePreprocess(augment=False).describe()["train_augment"] is None
