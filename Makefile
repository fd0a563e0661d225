# The two commands a newcomer needs: `make run` and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Material's end-of-life banner on every build says nothing about our docs.
export NO_MKDOCS_2_WARNING := 1

.PHONY: install run test bench bench-peers lint docs docs-serve clean

install: $(STAMP)

# Re-installs only when the dependency list changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test,docs]'
	touch $(STAMP)

run: install
	$(BIN)/python -m server

# The manual first: --strict turns a broken link or anchor into a failure.
test: install
	$(BIN)/mkdocs build --strict --quiet
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench

# rota beside workflow-graph and BullMQ (docs/performance.md says where they go).
bench-peers: install
	$(BIN)/python -m bench.peers $(if $(ROUNDS),--rounds $(ROUNDS))

# ruff is a developer tool, not a runtime or test dependency: fetched on demand.
lint: install
	$(BIN)/python -m pip install -q ruff
	$(BIN)/ruff check server worker tests bench tools

# The manual (docs/, mkdocs.yml) as a site in site/.
docs: install
	$(BIN)/mkdocs build --strict

docs-serve: install
	$(BIN)/mkdocs serve

clean:
	rm -rf $(VENV) *.egg-info site
