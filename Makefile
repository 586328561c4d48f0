# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv, install the project, and install the xdomea schemas:
# from ../shared/xdomea when present, otherwise downloaded from XRepository.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SHARED_XDOMEA := ../shared/xdomea

.PHONY: demo test lint schemas clean

$(BIN)/ikz-gateway: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --editable '.[postgres]' --group dev
	touch $@

schemas: $(BIN)/ikz-gateway
	@if [ -d "$(SHARED_XDOMEA)" ]; then \
	  $(BIN)/ikz-gateway schemas import "$(SHARED_XDOMEA)"; \
	else \
	  $(BIN)/ikz-gateway schemas fetch all; \
	fi

demo: schemas
	$(BIN)/ikz-gateway demo

test: schemas
	$(BIN)/python -m pytest -q

lint: $(BIN)/ikz-gateway
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
