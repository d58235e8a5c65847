# `make demo` and `make test` from the repository root, on a fresh machine: each creates (or reuses) the project's
# virtual environment $(VENV) and installs textkit into it with the constraints, so they work where the system pip
# refuses to install (PEP 668). Corpora come from TEXTKIT_DATA (default: ../shared/data beside the repository, if any;
# otherwise textkit's cache, downloading on first use).
TEXTKIT_DATA ?= $(abspath ../shared/data)
export TEXTKIT_DATA
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.textkit-installed

.PHONY: venv demo test test-slow readme docs docs-check

# (re)install when the environment is new or the dependencies changed
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

# pretrained models first (seconds), then a small model trained live for a fixed number of steps
demo: $(STAMP)
	$(BIN)/textkit demo

# nbdev-test runs notebooks in parallel, one per core: one torch thread each avoids oversubscription,
# which slows recurrent training many times over on a 2-core machine.
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test
	$(BIN)/python -m pytest -q

# Full-size runs of the notebooks (cells marked `#| slow`)
test-slow: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --flags slow

readme: $(STAMP)
	$(BIN)/python tools/make_readme.py

# The docs site in _docs/, without Quarto (`nbdev-docs` where Quarto is installed): nbdev's processing of nbs/, then
# Sphinx + MyST-NB (tools/docs.py). Offline: no TEXTKIT_DATA, no network, nothing retrained. Installs the `docs` extra.
DOCS_STAMP := $(VENV)/.textkit-docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[docs]"
	@touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(BIN)/python tools/docs.py

# Build, then open every page in headless Chromium (Debian's chromium + chromium-driver) and fail on what a reader
# would miss (tools/check_docs.py). `make docs-check PAGES=cells.html` (a glob: 'tutorials/*') checks those pages only.
PAGES ?=
docs-check: docs
	$(BIN)/python tools/check_docs.py $(if $(PAGES),--pages '$(PAGES)') $(DOCS_CHECK_FLAGS)
