# Two commands on a fresh machine: `make reports` runs the whole series, `make test` runs the tests.
# `make lab` opens the notebooks in JupyterLab, `make bench` measures training speed, `make data` downloads HAM10000.
# Each target creates .venv and installs the project into it (with the extras it needs) when missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP := $(BIN)/python -m pip install --quiet --disable-pip-version-check
LAB_PORT ?= 8888
LAB_ARGS ?=  # more `jupyter lab` options, e.g. `make lab LAB_ARGS=--allow-root` in a container running as root

.PHONY: reports test lab data bench check-gpu calibrate-gpu budget clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The [dev] extra holds what every target here needs: [reports] (papermill, nbconvert), [lab] (JupyterLab),
# pytest and nbval. A kernel alone (Colab, `pip install .`) needs none of them.
$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) -e '.[dev]'
	touch $@

reports: $(STAMP)  ## run every notebook with papermill into reports/ (reports/demo/ on the synthetic set)
	$(BIN)/python -m helpers.reports $(if $(PRESET),--preset $(PRESET))

check-gpu: $(STAMP)  ## the gpu and full presets' code paths on a few dozen images, on whatever device is here
	$(BIN)/python -m helpers.reports --preset gpu --check
	$(BIN)/python -m helpers.reports --preset full --check

calibrate-gpu: $(STAMP)  ## measure this GPU (img/s, peak memory) for the cost model: models/calibration/gpu-<class>.json
	$(BIN)/python -m helpers.budget --calibrate

budget: $(STAMP)  ## the cost model's estimate of every notebook on this machine, e.g. make budget PRESET=gpu DEVICE=t4
	$(BIN)/python -m helpers.budget --preset $(or $(PRESET),auto) --device $(or $(DEVICE),this)

test: $(STAMP)  ## unit tests, then every notebook on the smoke preset
	SKIN_LESION_PRESET=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

lab: $(STAMP)  ## JupyterLab on this project's environment and kernel
	$(BIN)/jupyter lab --port $(LAB_PORT) $(LAB_ARGS) notebooks  # the "python3" kernel it offers is this .venv's Python

bench: $(STAMP)  ## training throughput, ours vs a seed-style baseline (needs HAM10000_DIR)
	$(BIN)/python benchmarks/train_throughput.py --data $${HAM10000_DIR:?set HAM10000_DIR to a HAM10000 folder} --model reference_cnn --image-size 128 --images 1500
	$(BIN)/python benchmarks/train_throughput.py --data $${HAM10000_DIR} --model resnet18 --image-size 128 --images 800

data: $(STAMP)  ## download HAM10000 into data/ham10000 (needs network access)
	$(BIN)/python -m helpers.data download

clean-venv:
	rm -rf $(VENV)
