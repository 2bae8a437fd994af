# One command runs the demo, one runs the tests; each sets itself up (virtual environment, install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test bench-accuracy clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/labelflow demo

test: $(STAMP)
	$(BIN)/python -m pytest

bench-accuracy: $(STAMP)
	$(BIN)/python benchmarks/accuracy/run.py

clean:
	rm -rf $(VENV) .pytest_cache

# Alert rules (deploy/prometheus): syntax check and unit tests; installs promtool (Debian package
# `prometheus`) with apt-get when it is missing.
.PHONY: promtool-test
promtool-test:
	PROMTOOL="$$(deploy/prometheus/ensure_promtool.sh)" && \
	"$$PROMTOOL" check rules deploy/prometheus/alerts.yml && \
	"$$PROMTOOL" test rules deploy/prometheus/alerts_test.yml
