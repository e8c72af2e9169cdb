"""Run the notebooks on the smoke preset under pytest (nbval) unless a preset is set explicitly."""

import os

os.environ.setdefault("SKIN_LESION_PRESET", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
