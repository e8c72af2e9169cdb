"""The data layer: HAM10000 index and validation, splits, image folders, data resolution."""

from ..errors import DataError
from .folder import load_image_folder
from .ham10000 import check_ham10000, load_ham10000, summarize
from .labels import BINARY_CLASSES, DX_CLASSES, DX_NAMES, MALIGNANT_DX, binary_label
from .source import DataSource, data_home, describe, models_home, project_root, resolve_data_source
from .splits import (
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
    "BINARY_CLASSES", "DX_CLASSES", "DX_NAMES", "MALIGNANT_DX", "DataError", "DataSource",
    "binary_label", "check_ham10000", "data_home", "dermamnist_split", "describe", "image_level_split",
    "leaked_lesions", "lesion_split", "load_ham10000", "load_image_folder", "load_or_make_split",
    "load_split", "models_home", "project_root", "resolve_data_source", "save_split", "split_table", "subsample_lesions", "summarize",
]
