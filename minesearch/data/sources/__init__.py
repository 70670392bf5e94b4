"""sources: labelled data sets that keep labels in memory and hand over inputs by row.

`Dataset` (scikit-learn's digits, in memory), `ParquetSource` (a file, a directory or a URI, read
lazily through a node-local memory-mapped Arrow cache) and `ImageFolderSource` (root/<class>/...).
Each satisfies `minesearch.data.Source`. Imports numpy, pyarrow and Pillow; never torch.
"""

from minesearch.data.sources._digits import Dataset, load_digits_dataset
from minesearch.data.sources._image_folder import IMAGE_EXTENSIONS, ImageFolderSource
from minesearch.data.sources._parquet import ParquetSource, default_cache_dir

__all__ = [
    "IMAGE_EXTENSIONS",
    "Dataset",
    "ImageFolderSource",
    "ParquetSource",
    "default_cache_dir",
    "load_digits_dataset",
]
