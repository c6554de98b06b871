PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-test
FASHION := /usr/share/datasets/fashion-mnist

.PHONY: train test demo bench lint clean data docs package

# one venv, created on first use and refreshed when pyproject.toml changes
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

# the docs extra (MkDocs, mkdocstrings); the test extra includes it for the suite's strict build
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e ".[docs]"
	touch $@

# Fashion-MNIST from Debian's package when apt is there and we are root; otherwise the
# training falls back to scikit-learn's digits (the loaders also read $$PEARLNET_DATA)
data:
	@if [ ! -d $(FASHION) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
		|| echo "make: could not install dataset-fashion-mnist; training on the digits"; \
	fi

# the main job: train the default classifier and print its test accuracy
train: $(STAMP) data
	@if [ -d $(FASHION) ]; then $(VENV)/bin/pearlnet train --dataset fashion-mnist; \
	else $(VENV)/bin/pearlnet train --dataset digits; fi

test: $(STAMP) data
	$(VENV)/bin/python -m pytest

demo: $(STAMP)
	$(VENV)/bin/pearlnet demo

# the peers (PyTorch 2.13.0 CPU, JAX, autograd) are installed only here
bench: $(STAMP) data
	$(VENV)/bin/python -m pip install --quiet -e ".[bench]"
	$(VENV)/bin/python bench/overhead.py
	$(VENV)/bin/python bench/curvature.py
	$(VENV)/bin/python bench/mlp_epoch.py
	$(VENV)/bin/python bench/optim_vs_torch.py
	$(VENV)/bin/python bench/rosenbrock.py
	$(VENV)/bin/python bench/cnn.py
	$(VENV)/bin/python bench/lstm.py

# the documentation site, built as CI builds it (strict: a broken link or reference, or a public
# name without an entry in the API reference, fails); open site/index.html
docs: $(DOCS_STAMP)
	$(VENV)/bin/python -m mkdocs build --strict --site-dir site

# the wheel and the sdist in dist/, then the wheel in a fresh venv: import, a gradient check,
# `pearlnet --version` (tests/test_packaging.py, which make test also runs, building its own)
package: $(STAMP)
	rm -rf dist
	$(VENV)/bin/python -m build --outdir dist .
	PEARLNET_DIST=dist $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/test_packaging.py

lint: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet ruff
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) build dist site src/*.egg-info .pytest_cache
