PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed-test

.PHONY: demo test bench lint clean

# one venv, created on first use and refreshed when pyproject.toml changes
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/python -m pearlnet.demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest

# the peers (PyTorch 2.13.0 CPU, JAX, autograd) are installed only here
bench: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet -e ".[bench]"
	$(VENV)/bin/python bench/overhead.py

lint: $(STAMP)
	$(VENV)/bin/python -m pip install --quiet ruff
	$(VENV)/bin/ruff check src tests bench

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
