# Two commands on a fresh machine with python3 and make:
#   make serve   set everything up and start the service
#   make test    set everything up, lint, and run the tests
# `make serve` reads every OVBENCH_* setting from the environment, as `ovbench serve` does
# (`ovbench serve --help` lists them; OVBENCH_PORT=18123 make serve). HOST=, PORT= and
# DATA_DIR= are shortcuts for --host, --port and --data-dir, passed only when given:
#   make serve PORT=18123
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?=
PORT ?=
DATA_DIR ?=
# `make models`: the sample models and images, in the data dir `make serve` uses (./var
# unless DATA_DIR or OVBENCH_DATA_DIR say otherwise).
MODELS_DIR ?= $(or $(DATA_DIR),$(OVBENCH_DATA_DIR),./var)/sample-models

.PHONY: install lint format servers browser test serve models bench clean fleet-demo

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts
	$(BIN)/mypy app

format: install
	$(BIN)/ruff check --fix app tests bench scripts
	$(BIN)/ruff format app tests bench scripts

# PostgreSQL 15 and RabbitMQ from Debian's packages, for the tests that start their own
# (tests/servers.py), and Prometheus's promtool (tests/api/test_metrics.py). Installed when missing, as root; otherwise the script says how, and
# those tests skip (under CI=true they fail).
servers:
	@bash .ci/servers-prepare.sh || [ "$$(id -u)" != 0 ]

# Debian's Chromium for the dashboard's browser tests (tests/web/); installed when missing, as
# root; otherwise the script says how, and those tests fail naming it.
browser:
	@bash .ci/browser-prepare.sh || [ "$$(id -u)" != 0 ]

test: lint servers browser
	$(BIN)/pytest -q

serve: install
	$(BIN)/ovbench serve $(if $(HOST),--host $(HOST)) $(if $(PORT),--port $(PORT)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

models: install
	$(BIN)/ovbench make-models $(MODELS_DIR)

bench: install
	$(BIN)/python bench/vs_benchmark_app.py

# Fleet mode on this machine (README: Fleet): PostgreSQL, RabbitMQ, the API on PORT (8000)
# and two agents, lab-a and lab-b; Ctrl-C stops them all.
fleet-demo: install servers
	$(BIN)/python scripts/local_fleet.py $(if $(PORT),--port $(PORT))

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

# ---- Fleet containers (docker-compose.fleet.yml; docs/fleet-containers.md) ----
#   make fleet-images      ovbench-postgres:local and ovbench-rabbitmq:local, stand-ins for the
#                          official images built from Debian's packages (where Docker Hub is out of reach)
#   make image-agent-gpu   $(AGENT_GPU_IMAGE): the image of `make image` plus Debian's Intel OpenCL
#                          runtime, installed offline; BASE_IMAGE must be Debian bookworm, like this
#                          machine's apt (e.g. BASE_IMAGE=ovbench-base:bookworm or python:3.11-slim-bookworm)
AGENT_GPU_IMAGE ?= ovbench-agent-gpu:local

.PHONY: fleet-images gpu-debs image-agent-gpu
fleet-images:
	bash .ci/fleet-images.sh

gpu-debs:
	OVBENCH_BASE_IMAGE=$(BASE_IMAGE) bash .ci/gpu-debs.sh

image-agent-gpu: image gpu-debs
	docker build --network none --build-arg OVBENCH_IMAGE=$(IMAGE) --tag $(AGENT_GPU_IMAGE) docker/agent-gpu
# ---- end of fleet containers ----
