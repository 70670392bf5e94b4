"""preprocess: one batch of raw inputs -> what a backbone's forward takes.

Images are decoded and augmented with torch ops that reproduce torchvision's ImageNet recipe
(`_image`), text is tokenised by the tokenizer that belongs to the text backbone (`_text`),
tensors pass through (`_tensor`). Each describes itself as JSON, so an export is fed the same way.

Runs in the Ray Train workers, the driver's scoring tasks and `minesearch embed`. Imports torch,
Pillow and (for text, lazily) tokenizers, or transformers for a tokenizer it cannot run directly.
"""

from minesearch.data.preprocess._image import (
    EVAL_CROP_FRACTION,
    ImagePreprocess,
    center_crop,
    decode_image,
    hflip,
    random_resized_crop_box,
    resize,
    resize_shorter_side,
)
from minesearch.data.preprocess._tensor import TensorPreprocess
from minesearch.data.preprocess._tokenize import TextPreprocess

__all__ = [
    "EVAL_CROP_FRACTION",
    "ImagePreprocess",
    "TensorPreprocess",
    "TextPreprocess",
    "center_crop",
    "decode_image",
    "hflip",
    "random_resized_crop_box",
    "resize",
    "resize_shorter_side",
]
