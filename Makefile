# Two commands on a fresh machine with python3 and make:
#   make serve   set everything up and start the service
#   make test    set everything up, lint, and run the tests
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= ./var

.PHONY: install lint format test serve models bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy app

format: install
	$(BIN)/ruff check --fix app tests bench
	$(BIN)/ruff format app tests bench

test: lint
	$(BIN)/pytest -q

serve: install
	$(BIN)/ovbench serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

models: install
	$(BIN)/ovbench make-models $(DATA_DIR)/sample-models

bench: install
	$(BIN)/python bench/vs_benchmark_app.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

# The container image, built with no network from a wheelhouse of this tree (see Dockerfile):
#   make image [IMAGE=ovbench:local] [BASE_IMAGE=python:3.11-slim]
# then `docker-compose up -d` (or `docker compose up -d`) runs it; README.md, section Container, has more.
# The wheels are built by $(PYTHON), so it must be the base image's Python (3.11).
IMAGE ?= ovbench:local
BASE_IMAGE ?= python:3.11-slim

.PHONY: image
image:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make image: $(PYTHON) is not Python 3.11, the image'"'"'s; set PYTHON=python3.11")'
	rm -f wheelhouse/ovbench-*.whl
	$(PYTHON) -m pip wheel --quiet --disable-pip-version-check --wheel-dir wheelhouse .
	docker build --network none --build-arg BASE_IMAGE=$(BASE_IMAGE) --tag $(IMAGE) .
