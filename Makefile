# The two commands a newcomer needs: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: install run test bench lint clean

install: $(STAMP)

# Re-installs only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/python -m server

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

# ruff is a developer tool, not a runtime or test dependency: fetched on demand.
lint: install
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check server worker tests bench

clean:
	rm -rf $(VENV) *.egg-info
