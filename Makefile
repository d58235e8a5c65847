# `make test`: every notebook with nbdev-test, then pytest.
# Corpora come from TEXTKIT_DATA (default: ../shared/data beside the repository).
TEXTKIT_DATA ?= $(abspath ../shared/data)
export TEXTKIT_DATA

.PHONY: test test-slow readme docs docs-check
# nbdev-test runs notebooks in parallel, one per core: one torch thread each avoids oversubscription,
# which slows recurrent training many times over on a 2-core machine.
test:
	OMP_NUM_THREADS=1 nbdev-test
	pytest -q

# Full-size runs of the notebooks (cells marked `#| slow`)
test-slow:
	OMP_NUM_THREADS=1 nbdev-test --flags slow

readme:
	python tools/make_readme.py

# The docs site in _docs/, without Quarto (`nbdev-docs` where Quarto is installed): nbdev's processing of nbs/, then
# Sphinx + MyST-NB (tools/docs.py). Offline: no TEXTKIT_DATA, no network, nothing retrained. Needs the `docs` extra.
docs:
	python tools/docs.py

# Build, then open every page in headless Chromium (Debian's chromium + chromium-driver) and fail on what a reader
# would miss (tools/check_docs.py). `make docs-check PAGES=cells.html` (a glob: 'tutorials/*') checks those pages only.
PAGES ?=
docs-check: docs
	python tools/check_docs.py $(if $(PAGES),--pages '$(PAGES)')
