# The two commands of the README. Run them inside a virtual environment.
#   make book   set up, then build the book into _build/html
#   make test   set up, then run every test (unit tests, strict nbval over the chapters, the book build)
PYTHON ?= python
# Installed only when no torch is importable yet: pip finds the CPU build quickly here.
# Any torch >= 2.2 that is already installed is kept as it is.
TORCH ?= torch==2.13.0

.PHONY: book test torch

torch:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PYTHON) -m pip install "$(TORCH)"

book: torch
	$(PYTHON) -m pip install -e ".[book]"
	jupyter-book build . -W -n --keep-going

test: torch
	$(PYTHON) -m pip install -e ".[test]"
	$(PYTHON) -m pytest
