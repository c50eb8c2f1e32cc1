# The two commands of the README: `make book` builds the book, `make test` runs the tests.
# Each creates .venv from requirements.txt on first use (Python 3.11+ as python3, or PYTHON=...).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: book test lint notebooks format-notebooks logo mathjax clean

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
