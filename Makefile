# The two commands of the README. Run them inside a virtual environment.
#   make book   set up, then build the book into _build/html
#   make test   set up, then lint (ruff) and run every test (unit tests, strict nbval over the
#               chapters, the book build, the browser test), one pytest-xdist worker per core,
#               each test file (each notebook) on one worker
PYTHON ?= python
# Every package is installed at the version pinned in constraints.txt: the versions the
# notebooks' stored outputs and CI come from. torch is installed first, only when none is
# importable yet (on the project's own machines pip finds the CPU build on local disk);
# a torch 2.13.0 that is already installed, of any build (CPU or CUDA), is kept.
CONSTRAINTS ?= constraints.txt
PIP = $(PYTHON) -m pip install -c $(CONSTRAINTS)

.PHONY: book test torch lint browser-assets

torch:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) torch

book: torch
	$(PIP) -e ".[book]"
	jupyter-book build . -W -n --keep-going

# The pages' CDN scripts for the browser test, fetched from the npm registry when npm is here.
browser-assets:
	@if command -v npm >/dev/null 2>&1; then bash tests/fetch_browser_assets.sh; \
	else echo "npm not found: the browser test will be skipped (and fail when CI is set)"; fi

LINTED = conftest.py gptlib tests benchmarks scripts

lint:
	$(PYTHON) -m ruff check $(LINTED)
	$(PYTHON) -m ruff format --check $(LINTED)

test: torch
	$(PIP) -e ".[test]"
	$(MAKE) --no-print-directory browser-assets lint PYTHON="$(PYTHON)"
	$(PYTHON) -m pytest -n auto --dist loadfile
