"""Encoded image files -> a normalised float batch, with torchvision's standard recipes in torch.

torchvision is not a dependency, but its ImageNet recipe is what image backbones are pretrained
and compared with: RandomResizedCrop + horizontal flip for training, "resize the shorter side to
size / 0.875, then center-crop" for evaluation. The helpers below reproduce those transforms on
tensors (same sampling, same bilinear antialiased resize), so a model trained here can be fed the
same way by torchvision elsewhere, which is what `ImagePreprocess.describe` writes down.

Every random draw goes through an explicit `torch.Generator`, so a trial's seed reproduces its
batches exactly and an eval pass never consumes randomness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from minesearch.data._contracts import RawInputs

__all__ = [
    "EVAL_CROP_FRACTION",
    "ImagePreprocess",
    "center_crop",
    "decode_image",
    "hflip",
    "random_resized_crop_box",
    "resize",
    "resize_shorter_side",
]

EVAL_CROP_FRACTION = 0.875  # eval crops size/0.875 down to size: 224 of 256, the ImageNet habit


def decode_image(data: bytes) -> torch.Tensor:
    """Encoded file -> uint8 [3, H, W].

    Everything becomes RGB (grayscale, palette, RGBA, CMYK) because the backbone's first layer has
    three input channels; alpha is dropped rather than composited, as torchvision's loader does.
    Kept uint8 so that a train crop converts only the pixels it keeps to float.
    """
    with Image.open(BytesIO(data)) as img:
        rgb = np.array(img.convert("RGB"))  # [H, W, 3] uint8, a writable copy
    return torch.from_numpy(rgb).permute(2, 0, 1)


def random_resized_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    generator: torch.Generator | None = None,
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params: (top, left, crop_height, crop_width).

    Up to 10 tries of an area fraction uniform in `scale` and an aspect ratio (w/h) log-uniform in
    `ratio`; the first box that fits is placed uniformly. If none fits (extreme aspect ratios), the
    central crop clamped to `ratio` is used. The draws are the same calls in the same order as
    torchvision's, so with the same RNG state both pick the same box.
    """
    area = height * width
    log_ratio = torch.log(torch.tensor(ratio))  # float32, as torchvision
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        log_r = torch.empty(1).uniform_(
            float(log_ratio[0]), float(log_ratio[1]), generator=generator
        )
        aspect = torch.exp(log_r).item()
        w = round(math.sqrt(target_area * aspect))
        h = round(math.sqrt(target_area / aspect))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, size=(1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, size=(1,), generator=generator).item())
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        w, h = round(height * max(ratio)), height
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def resize(img: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Float [C, H, W] or [B, C, H, W] -> (height, width) = `size`, bilinear with antialiasing.

    Antialiasing matters when shrinking: without it bilinear samples only 4 pixels and aliases;
    with it the result matches PIL's (and torchvision's) bilinear resize.
    """
    if tuple(img.shape[-2:]) == tuple(size):
        return img
    batch = img if img.dim() == 4 else img.unsqueeze(0)
    out = F.interpolate(batch, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out if img.dim() == 4 else out.squeeze(0)


def resize_shorter_side(img: torch.Tensor, shorter: int) -> torch.Tensor:
    """Scale so the shorter side is `shorter`, keeping the aspect ratio (torchvision Resize(int)).

    The longer side is truncated (int), not rounded, as torchvision does, so eval crops agree.
    """
    h, w = int(img.shape[-2]), int(img.shape[-1])
    if h <= w:
        return resize(img, (shorter, int(shorter * w / h)))
    return resize(img, (int(shorter * h / w), shorter))


def center_crop(img: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """The central (height, width) window of [..., H, W]; offsets rounded as torchvision does."""
    ch, cw = (size, size) if isinstance(size, int) else size
    h, w = int(img.shape[-2]), int(img.shape[-1])
    if ch > h or cw > w:
        raise ValueError(f"cannot center-crop {ch}x{cw} from a {h}x{w} image")
    top, left = round((h - ch) / 2.0), round((w - cw) / 2.0)
    return img[..., top : top + ch, left : left + cw]


def hflip(img: torch.Tensor) -> torch.Tensor:
    """Mirror left-right: the one flip that keeps natural images natural."""
    return img.flip(-1)


@dataclass(frozen=True)
class ImagePreprocess:
    """Encoded images -> float32 [B, 3, size, size], normalised with `mean` / `std`.

    Train (train and augment): random resized crop to size x size, then a flip with p=0.5. Eval:
    shorter side to round(size / 0.875), center crop. Defaults are ImageNet's statistics, which
    pretrained backbones expect.
    """

    size: int = 64
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    augment: bool = True
    scale: tuple[float, float] = (0.35, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)

    def __post_init__(self) -> None:
        """Reject settings that would only fail (or silently misbehave) deep inside a trial."""
        if self.size < 1:
            raise ValueError(f"size must be at least 1, got {self.size}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per RGB channel (3 each)")
        if not all(s > 0 for s in self.std):
            raise ValueError(f"std values must be positive, got {self.std}")
        if not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ValueError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")

    @property
    def eval_resize(self) -> int:
        """The shorter side eval resizes to before its center crop (73 for size 64)."""
        return round(self.size / EVAL_CROP_FRACTION)

    def __call__(
        self, raw: RawInputs, train: bool, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Decode, transform and normalise one batch; `generator` is only used for augmentation."""
        images = [_decode_item(i, item) for i, item in enumerate(_as_list(raw))]
        if train and self.augment:
            batch = torch.stack([self._train_view(img, generator) for img in images])
        else:
            batch = self._eval_views(images)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, 3, 1, 1)
        return (batch - mean) / std  # [B, 3, size, size]

    def _train_view(self, img: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """uint8 [3, H, W] -> float [3, size, size]: crop box first, then the flip coin."""
        top, left, h, w = random_resized_crop_box(
            int(img.shape[1]), int(img.shape[2]), self.scale, self.ratio, generator
        )
        crop = img[:, top : top + h, left : left + w].float().div_(255.0)
        out = resize(crop, (self.size, self.size))
        if torch.rand(1, generator=generator).item() < 0.5:
            out = hflip(out)
        return out

    def _eval_views(self, images: list[torch.Tensor]) -> torch.Tensor:
        """[3, H, W] each -> [B, 3, size, size]; one resize call when all images share a shape."""
        if all(img.shape == images[0].shape for img in images):
            batch = torch.stack(images).float().div_(255.0)
            return center_crop(resize_shorter_side(batch, self.eval_resize), self.size)
        return torch.stack(
            [
                center_crop(
                    resize_shorter_side(img.float().div_(255.0), self.eval_resize), self.size
                )
                for img in images
            ]
        )

    def describe(self) -> dict[str, Any]:
        """The eval path, step by step, in terms torchvision (or PIL + numpy) can replay."""
        return {
            "kind": "image",
            "size": self.size,
            "decode": "PIL Image.open(...).convert('RGB'), uint8 / 255 -> float32 in [0, 1]",
            "resize": (
                f"shorter side to {self.eval_resize} (round(size / {EVAL_CROP_FRACTION})), longer "
                "side int(scaled); bilinear, antialias, align_corners=False"
            ),
            "resize_shorter_side": self.eval_resize,
            "crop": f"center {self.size}x{self.size}",
            "mean": list(self.mean),
            "std": list(self.std),
            "layout": "NCHW float32, RGB",
            "train_augment": (
                {
                    "random_resized_crop": {"scale": list(self.scale), "ratio": list(self.ratio)},
                    "hflip_p": 0.5,
                }
                if self.augment
                else None
            ),
        }


def _as_list(raw: RawInputs) -> list[bytes]:
    """Image sources hand over encoded files; anything else is a wiring mistake worth naming."""
    if not isinstance(raw, list):
        raise TypeError(
            f"image preprocess expects a list of encoded files, got {type(raw).__name__}"
        )
    for i, item in enumerate(raw):
        if not isinstance(item, bytes | bytearray | memoryview):
            raise TypeError(
                f"image preprocess expects bytes per image; item {i} is {type(item).__name__}"
            )
    return raw  # type: ignore[return-value]  # checked item by item above


def _decode_item(index: int, data: bytes) -> torch.Tensor:
    """decode_image, with the batch position in the error: the caller maps it to a file or row."""
    try:
        return decode_image(bytes(data))
    except Exception as err:  # Pillow raises OSError, SyntaxError, struct.error, ... per format
        raise ValueError(f"image {index} of the batch could not be decoded: {err}") from err
