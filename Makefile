# dive-pyro: `make demo` and `make test` create or reuse .venv and install the project.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# torch is pinned first: on this machine pip finds a local CPU build of exactly this version;
# a looser requirement would pull a multi-GB CUDA build (a local wheel of exactly this version is in the package index).
TORCH  ?= torch==2.13.0
export OMP_NUM_THREADS ?= 1

.PHONY: install test test-all lint demo bench lab notebooks clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=23' 'setuptools>=77' wheel
	$(PY) -m pip install --quiet '$(TORCH)'
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# OpenCV's pedestrian video from the Debian package opencv-doc (no system install). Never fails:
# without a reachable Debian registry it prints why, and the tests that need the video are skipped.
data/vtest.avi: | $(STAMP)
	@$(PY) scripts/fetch_vtest.py $@ || echo "make: $@ not fetched (see above); its tests will be skipped"

test: $(STAMP) data/vtest.avi
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

demo: $(STAMP)
	$(PY) -m dive_pyro demo --out reports/demo

# JupyterLab on notebooks/ (installs the `notebooks` extra once: JupyterLab + ipykernel, about a minute)
$(VENV)/.notebooks-stamp: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,notebooks]'
	touch $@

lab notebooks: $(VENV)/.notebooks-stamp
	$(VENV)/bin/jupyter lab notebooks

bench: $(STAMP)
	$(PY) benchmarks/data_generation.py

clean:
	rm -rf $(VENV) build dist *.egg-info reports
