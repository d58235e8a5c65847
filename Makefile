# `make test`: every notebook with nbdev-test, then pytest.
# Corpora come from TEXTKIT_DATA (default: ../shared/data beside the repository).
TEXTKIT_DATA ?= $(abspath ../shared/data)
export TEXTKIT_DATA

.PHONY: test test-slow readme
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
