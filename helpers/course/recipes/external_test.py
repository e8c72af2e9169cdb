"""Notebook 07's settings: it trains no arm of its own (its models are 03's, 04's and 05's, helpers.course.external_test).

n_boot: bootstrap resamples per interval; max_external_images: the external images kept (an equal share per
diagnosis; None: all); coverages: the selective-prediction coverage levels, as confidence thresholds fitted on
validation; target_sensitivity: the malignant sensitivity the threshold is fitted for on validation.
"""

from __future__ import annotations

from .arms import NotebookRecipes

NOTEBOOK = "07_external_test"
SETTINGS = {
    "smoke": {"n_boot": 50, "max_external_images": 140, "coverages": [0.8, 0.9], "target_sensitivity": 0.9},
    "cpu": {"n_boot": 1000, "max_external_images": None, "coverages": [0.8, 0.9], "target_sensitivity": 0.9},
    "gpu": {"n_boot": 1000, "max_external_images": None, "coverages": [0.8, 0.9], "target_sensitivity": 0.9},
    "full": {"n_boot": 1000, "max_external_images": None, "coverages": [0.8, 0.9], "target_sensitivity": 0.9},
}

RECIPES = NotebookRecipes(NOTEBOOK, SETTINGS)
