# The two commands of the README: `make book` builds the book, `make test` runs the tests.
# Each creates .venv from requirements.txt on first use (Python 3.11+ as python3, or PYTHON=...).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test test-compat test-colab lint notebooks format-notebooks logo mathjax clean

$(BIN)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
	  "The pinned book environment (Keras 3.15, NumPy 2.4) needs Python 3.11+; " \
	  "set PYTHON=python3.11 (the package itself installs on 3.10 with pip install .)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

book: $(BIN)/.installed
	$(BIN)/jupyter-book build . -W --keep-going

test: $(BIN)/.installed
	$(BIN)/python -m pytest

# The unit tests on the floors pyproject.toml declares: every dependency and the onnx extra at
# exactly its lowest admitted version (tools/floors.py), in a venv of its own under _build
# (Sphinx, git and pytest skip it; make clean removes it): `make test-compat`, or
# `make test-compat COMPAT_TF=2.19.0` for another TensorFlow beside the other floors. The
# notebooks, the site, hygiene, Setup-cell and Colab-image tests need the pinned book
# environment and are left out.
COMPAT_TF ?= $(shell $(PYTHON) tools/floors.py | sed -n 's/^tensorflow==//p')
COMPAT_VENV := _build/venv-compat-tf$(COMPAT_TF)
COMPAT_TOOLS := $(shell grep -E '^(pytest|hypothesis|beautifulsoup4|pyyaml)==' requirements.txt)
# An upper bound in seconds on the test run: a hang fails the target instead of stalling CI.
COMPAT_TIMEOUT ?= 900

$(COMPAT_VENV)/.installed: pyproject.toml requirements.txt tools/floors.py
	@test -n "$(COMPAT_TF)" || { echo "test-compat: no tensorflow>= floor in pyproject.toml"; exit 1; }
	rm -rf $(COMPAT_VENV)
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(PYTHON) tools/floors.py --set tensorflow==$(COMPAT_TF) > $(COMPAT_VENV)/floors.txt
	$(COMPAT_VENV)/bin/python -m pip install --quiet -e ".[onnx]" -r $(COMPAT_VENV)/floors.txt \
	  $(COMPAT_TOOLS)
	touch $@

test-compat: $(COMPAT_VENV)/.installed
	@$(COMPAT_VENV)/bin/python -c 'import importlib.metadata as m, platform; print("test-compat:", \
	  ", ".join(f"{n} {m.version(n)}" for n in ("tensorflow", "keras", "numpy", "matplotlib", "scikit-learn", \
	  "ai-edge-litert", "tf2onnx", "onnx", "onnxruntime", "protobuf")), \
	  "on Python", platform.python_version())'
	@echo "test-compat: pytest tests (not the notebooks, site, hygiene, Setup-cell or Colab-image tests), at most" \
	  "$(COMPAT_TIMEOUT) s"
	@timeout -k 30 $(COMPAT_TIMEOUT) $(COMPAT_VENV)/bin/python -m pytest -q -rfEs -p no:cacheprovider \
	  -o addopts= tests --ignore=tests/test_site.py --ignore=tests/test_notebook_hygiene.py \
	  --ignore=tests/test_colab_setup.py --ignore=tests/test_colab_image.py \
	  || { status=$$?; case $$status in \
	         124|137) echo "test-compat: stopped after COMPAT_TIMEOUT=$(COMPAT_TIMEOUT) s";; \
	         1) ;; \
	         *) echo "test-compat: pytest exited with status $$status (above 128: killed by a signal)";; \
	       esac; exit $$status; }

# Every chapter on an image built like Colab's runtime (tools/colab-image.txt: Python 3.12,
# TensorFlow 2.19, Keras 3.10, NumPy 2.0), without the library: each chapter runs from a pristine
# copy of the image, and its own Setup cell installs this checkout's committed HEAD
# (tools/colab_image.py). COLAB_PYTHON is a Python 3.12: python3.12, else pyenv's.
COLAB_PYTHON ?= $(shell python3.12 -c '' 2>/dev/null && echo python3.12 || { \
  v=$$(pyenv versions --bare 2>/dev/null | grep -m1 '^3\.12'); \
  test -n "$$v" && echo "env PYENV_VERSION=$$v python3"; })
COLAB_VENV := _build/venv-colab
COLAB_TIMEOUT ?= 1200

$(COLAB_VENV)/.installed: tools/colab-image.txt
	@test -n "$(COLAB_PYTHON)" || { echo "test-colab: needs Python 3.12 (Colab's): set COLAB_PYTHON"; exit 1; }
	@$(COLAB_PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else \
	  f"test-colab: COLAB_PYTHON is Python {sys.version.split()[0]}, Colab runs 3.12")'
	rm -rf $(COLAB_VENV)
	$(COLAB_PYTHON) -m venv $(COLAB_VENV)
	$(COLAB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(COLAB_VENV)/bin/python -m pip install --quiet -r tools/colab-image.txt
	touch $@

test-colab: $(BIN)/.installed $(COLAB_VENV)/.installed
	timeout -k 30 $(COLAB_TIMEOUT) $(BIN)/python tools/colab_image.py --image $(COLAB_VENV)

lint: $(BIN)/.installed
	$(BIN)/ruff check .

# Run every chapter top to bottom in a fresh kernel and store its outputs.
notebooks: $(BIN)/.installed
	$(BIN)/python tools/notebooks.py execute

# Strip volatile metadata so notebook diffs show only what changed.
format-notebooks: $(BIN)/.installed
	$(BIN)/python tools/notebooks.py normalize

# Redraw the logo and favicon (book/_static) with matplotlib.
logo: $(BIN)/.installed
	$(BIN)/python tools/make_logo.py

# Refresh the vendored MathJax (book/_static/mathjax) from the npm registry.
mathjax:
	$(PYTHON) tools/vendor_mathjax.py

clean:
	rm -rf _build
