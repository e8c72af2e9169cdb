"""The data layer: HAM10000 index and validation, splits, image folders, where the data is, the image cache.

These names load without torch; the tensors of a split come from `helpers.data.dataset.load_split_data`.
"""

from ..core.errors import DataError
from .folder import load_image_folder
from .ham10000 import check_ham10000, index_counts, load_ham10000
from .labels import BINARY_CLASSES, DX_CLASSES, DX_NAMES, MALIGNANT_DX, binary_label
from .source import (DataSource, data_home, describe, find_dermamnist_csv, find_isic2018_test, models_home,
                     project_root, resolve_data_source, resolve_path)
from .splits import (
    SPLIT_FRACTIONS,
    SPLITS,
    dermamnist_split,
    image_level_split,
    leaked_lesions,
    lesion_split,
    load_or_make_split,
    load_split,
    save_split,
    split_table,
    subsample_lesions,
)

__all__ = [
    "BINARY_CLASSES", "DX_CLASSES", "DX_NAMES", "MALIGNANT_DX", "SPLITS", "SPLIT_FRACTIONS", "DataError", "DataSource",
    "binary_label", "check_ham10000", "data_home", "dermamnist_split", "describe", "find_dermamnist_csv",
    "find_isic2018_test", "image_level_split", "index_counts", "leaked_lesions", "lesion_split", "load_ham10000",
    "load_image_folder", "load_or_make_split", "load_split", "models_home", "project_root", "resolve_data_source",
    "resolve_path", "save_split", "split_table", "subsample_lesions",
]
