"""Tested library behind the skin-lesion notebook course: `from helpers import ...` gives a notebook what it needs.

The names, by stage of a notebook (each loads its module on first use, so `import helpers` stays light):

    start       setup (parameters -> preset -> recipe: the one Config, its arms by name, the banner), Config
    data        load_ham10000, lesion_index, subsample_lesions, load_or_make_split, split_table, image_level_split,
                leaked_lesions, leak_table, linked_in_split, DX_CLASSES, DX_NAMES, MALIGNANT_DX, find_dermamnist_csv, models_home,
                data_home, load_split_data, load_folder_split_data, cached_images, cache_path, time_cache,
                load_resized, load_resized_mask, resolve_melanoma_source, describe_melanoma, load_melanoma10k,
                duplicate_report, duplicates (module)
    models      ensure_weights, WeightsUnavailableError, normalization, count_parameters, gradcam_layer,
                load_checkpoint (an arm builds its own model: config.arm(name).build(classes))
    training    fit, AugmentConfig, preview
    inference   predict_probs (inference.predict: helpers.predict is the command line), predict_logits
    evaluation  evaluate_split, evaluation_of, comparison_table, recall_table, majority_baseline,
                temperature_scaled, calibrate, pick_cases, subgroup_table, groups_below, train_on_splits, explain_image,
                accuracy_by_lesion, classification_report_table, expected_calibration_error, metrics_summary,
                classification_metrics, threshold_for_sensitivity,
                classifier_cams, cam_mass_inside, feature_map_size, mask_agreement, per_thousand_lesions,
                dermamnist_comparison, dermamnist_runs,
                metrics, gradcam (modules)
    studies     eda, scaling, powerlaw (modules)
    display     plots (module), history_table, value_table, full_text, fmt_ci, test_set_name
    results     summaries (module: each notebook's Results section written from its own numbers)
    elsewhere   find_isic2018_test, load_external, missing_models, train_missing, model_outputs, ENSEMBLE_MEMBERS
                (notebook 07's models and data), choose_on_validation (every choice, on validation only), shift (module: the tables),
                DERMAMNIST_E
    end         finish (metrics assembled, validated and saved; the best checkpoint)
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the module (relative to helpers) it comes from; a module listed under its own name is the module itself
_SOURCES: dict[str, str] = {
    "setup": "course.config", "Config": "course.config",
    "load_ham10000": "data", "subsample_lesions": "data", "load_or_make_split": "data", "split_table": "data",
    "image_level_split": "data", "leaked_lesions": "data", "DX_CLASSES": "data", "DX_NAMES": "data",
    "MALIGNANT_DX": "data", "find_dermamnist_csv": "data", "models_home": "data", "data_home": "data",
    "leak_table": "evaluation.leakage", "accuracy_by_lesion": "evaluation.leakage", "linked_in_split": "evaluation.leakage",
    "load_split_data": "data.dataset", "load_folder_split_data": "data.dataset", "lesion_index": "data.dataset",
    "load_melanoma10k": "data.dataset", "time_cache": "data.dataset", "duplicate_report": "data.duplicates",
    "cached_images": "data.images", "cache_path": "data.images", "load_resized": "data.images",
    "load_resized_mask": "data.images",
    "resolve_melanoma_source": "data.melanoma", "describe_melanoma": "data.melanoma",
    "duplicates": "data.duplicates",
    "ensure_weights": "models", "WeightsUnavailableError": "models", "normalization": "models",
    "count_parameters": "models", "gradcam_layer": "models", "load_checkpoint": "models",
    "fit": "training.loop", "AugmentConfig": "training.augment", "preview": "training.augment",
    "predict_probs": "training.inference", "predict_logits": "training.inference",
    "evaluate_split": "evaluation.splits", "evaluation_of": "evaluation.splits", "comparison_table": "evaluation.splits",
    "recall_table": "evaluation.splits", "majority_baseline": "evaluation.splits", "temperature_scaled": "evaluation.splits",
    "pick_cases": "evaluation.splits", "calibrate": "evaluation.splits", "train_on_splits": "course.recipes.preprocessing",
    "subgroup_table": "evaluation.subgroups", "groups_below": "evaluation.subgroups", "explain_image": "evaluation.splits",
    "dermamnist_runs": "course.recipes.resnet_transfer",
    "classification_report_table": "evaluation.metrics", "expected_calibration_error": "evaluation.metrics", "metrics_summary": "evaluation.metrics",
    "classification_metrics": "evaluation.metrics", "threshold_for_sensitivity": "evaluation.metrics",
    "classifier_cams": "evaluation.gradcam", "cam_mass_inside": "evaluation.gradcam", "feature_map_size": "evaluation.gradcam",
    "mask_agreement": "evaluation.gradcam", "per_thousand_lesions": "evaluation.screening",
    "dermamnist_comparison": "evaluation.published",
    "metrics": "evaluation.metrics", "gradcam": "evaluation.gradcam", "eda": "course.eda", "scaling": "course.scaling", "powerlaw": "course.powerlaw",
    "plots": "course.plots", "history_table": "course.tables", "value_table": "course.tables", "full_text": "course.tables",
    "fmt_ci": "reporting.results", "test_set_name": "reporting.results",
    "finish": "reporting.finish", "summaries": "reporting.summaries",
    "find_isic2018_test": "data.source", "load_external": "course.external_test", "missing_models": "course.external_test",
    "train_missing": "course.external_test", "model_outputs": "course.external_test",
    "ENSEMBLE_MEMBERS": "course.external_test",
    "choose_on_validation": "evaluation.choices", "shift": "evaluation.shift", "DERMAMNIST_E": "evaluation.published",
}
_MODULES = {"duplicates": "data.duplicates", "metrics": "evaluation.metrics", "shift": "evaluation.shift", "gradcam": "evaluation.gradcam", "eda": "course.eda",
            "scaling": "course.scaling", "powerlaw": "course.powerlaw", "plots": "course.plots",
            "summaries": "reporting.summaries"}

# Curated names that differ from the library's: `helpers.predict` is the command-line module, and importing it
# rebinds that attribute of the package, so inference.predict is offered as predict_probs.
_RENAMED = {"predict_probs": "predict"}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    """Load a curated name's module on first use (PEP 562)."""
    if name not in _SOURCES:
        raise AttributeError(f"module 'helpers' has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_SOURCES[name]}")
    value = module if name in _MODULES else getattr(module, _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
