# Two commands on a fresh machine: `make reports` runs the whole series, `make test` runs the tests.
# `make bench` measures training speed, `make data` downloads HAM10000.
# Each target creates .venv and installs the project into it when missing or out of date.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: reports test data bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

reports: $(STAMP)  ## run every notebook with papermill into reports/ (reports/demo/ on the synthetic set)
	$(BIN)/python -m helpers.reports $(if $(PRESET),--preset $(PRESET))

test: $(STAMP)  ## unit tests, then every notebook on the smoke preset
	SKIN_LESION_PRESET=smoke $(BIN)/python -m pytest tests notebooks --nbval-lax -p no:cacheprovider

bench: $(STAMP)  ## training throughput, ours vs a seed-style baseline (needs HAM10000_DIR)
	$(BIN)/python benchmarks/train_throughput.py --data $${HAM10000_DIR:?set HAM10000_DIR to a HAM10000 folder} --model seed_cnn --image-size 128 --images 1500
	$(BIN)/python benchmarks/train_throughput.py --data $${HAM10000_DIR} --model resnet18 --image-size 128 --images 800

data: $(STAMP)  ## download HAM10000 into data/ham10000 (needs network access)
	$(BIN)/python -m helpers.data download

clean-venv:
	rm -rf $(VENV)
