# xmic — the README's commands. Every target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= dev,hands
BIN := $(VENV)/bin

.PHONY: install test test-yolo lint format bench clean

$(BIN)/xmic: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH)"
	$(BIN)/python -m pip install -e ".[$(EXTRAS)]"
	touch $(BIN)/xmic

install: $(BIN)/xmic

test: $(BIN)/xmic
	$(BIN)/python -m pytest -q

# ultralytics needs torchvision, which does not install beside the CPU torch 2.13: a separate venv in /tmp
test-yolo:
	bash scripts/test_yolo.sh

lint: $(BIN)/xmic
	$(BIN)/ruff check xmic tests benchmarks
	$(BIN)/ruff format --check xmic tests benchmarks

format: $(BIN)/xmic
	$(BIN)/ruff format xmic tests benchmarks
	$(BIN)/ruff check --fix xmic tests benchmarks

bench: $(BIN)/xmic
	$(BIN)/xmic bench train --json

clean:
	rm -rf $(VENV) .pytest_cache
