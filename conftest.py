"""Run the notebooks on the smoke preset under pytest (nbval) unless a preset is set explicitly."""

import os

os.environ.setdefault("SKIN_LESION_PRESET", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite never downloads weights: notebooks take their offline path (EfficientNet-Lite0) wherever they run;
# tests/test_weights_download.py unsets this to download from a server on 127.0.0.1.
os.environ.setdefault("SKIN_LESION_OFFLINE", "1")
