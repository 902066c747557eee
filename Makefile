# The two commands of the README. Run them inside a virtual environment.
#   make book   set up, then build the book into _build/html
#   make test   set up, then lint (ruff) and run every test (unit tests, strict nbval over the
#               chapters, the book build, the browser test)
PYTHON ?= python
# Installed only when no torch is importable yet: pip finds the CPU build quickly here.
# Any torch >= 2.2 that is already installed is kept as it is.
TORCH ?= torch==2.13.0

.PHONY: book test torch lint browser-assets

torch:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"

book: torch
	$(PYTHON) -m pip install -e ".[book]"
	jupyter-book build . -W -n --keep-going

# The pages' CDN scripts for the browser test, fetched from the npm registry when npm is here.
browser-assets:
	@if command -v npm >/dev/null 2>&1; then bash tests/fetch_browser_assets.sh; \
	else echo "npm not found: the browser test will be skipped (and fail when CI is set)"; fi

LINTED = gptlib tests benchmarks scripts

lint:
	$(PYTHON) -m ruff check $(LINTED)
	$(PYTHON) -m ruff format --check $(LINTED)

test: torch
	$(PYTHON) -m pip install -e ".[test]"
	$(MAKE) --no-print-directory browser-assets lint PYTHON="$(PYTHON)"
	$(PYTHON) -m pytest
