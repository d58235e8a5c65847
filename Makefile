# `make test`: every notebook with nbdev-test, then pytest.
# Corpora come from TEXTKIT_DATA (default: ../shared/data beside the repository).
TEXTKIT_DATA ?= $(abspath ../shared/data)
export TEXTKIT_DATA

.PHONY: test test-slow readme
test:
	nbdev-test
	pytest -q

# Full-size runs of the notebooks (cells marked `#| slow`)
test-slow:
	nbdev-test --flags slow

readme:
	python tools/make_readme.py
