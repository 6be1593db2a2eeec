# audience-webhooks: `make demo` runs the product, `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export WEBHOOKS_KAFKA_BOOTSTRAP ?= 127.0.0.1:9092

.PHONY: help install browser compose-schema helm k8s broker broker-stop lint typecheck test test-unit test-integration test-e2e demo bench clean

help:
	@echo "make demo   - broker + worker + HTTPS receiver + example jobs and events (Ctrl-C stops)"
	@echo "make test   - install, start the broker if needed, ruff + mypy + pytest"
	@echo "make bench  - throughput/latency benchmark against a minimal aiokafka+aiohttp baseline"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The compose-spec JSON schema, as shipped in docker-compose 1.29.2's wheel (downloaded, not
# installed: only its compose/config/compose_spec.json is read, by tests/unit/test_compose.py).
COMPOSE_WHEEL := .cache/compose-spec/docker_compose-1.29.2-py2.py3-none-any.whl
$(COMPOSE_WHEEL): | $(STAMP)
	$(BIN)/pip download -q --no-deps --dest .cache/compose-spec docker-compose==1.29.2

compose-schema: $(COMPOSE_WHEEL)

# helm, built once from source into .cache/bin (tests/unit/test_helm_chart.py lints and renders
# charts/audience-webhooks with it). Go from PATH, else where CI machines have it.
HELM := .cache/bin/helm
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
$(HELM):
	GOBIN=$(CURDIR)/.cache/bin $(GO) install helm.sh/helm/v4/cmd/helm@v4.3.2

helm: $(HELM)

# k8s/: the chart rendered (`$(HELM) template` as release audience-webhooks, with K8S_VALUES)
# for `kubectl apply -k k8s/`, one file per chart template plus their kustomization.yaml.
# Run it after changing the chart or K8S_VALUES, and commit k8s/ with them:
# tests/unit/test_manifests.py fails when k8s/ differs from the chart's current rendering.
# `make k8s K8S_VALUES=mine.yaml K8S_DIR=my-k8s` renders your own values elsewhere.
K8S_VALUES := charts/audience-webhooks/ci/k8s-values.yaml
K8S_DIR := k8s
k8s: $(HELM)
	$(PYTHON) scripts/render_k8s.py --helm $(HELM) --values $(K8S_VALUES) $(K8S_DIR)

# Debian's chromium + chromium-driver for the dashboard test (tests/e2e/test_dashboard.py).
browser:
	scripts/install-browser.sh

broker: install
	scripts/kafka.sh start

broker-stop:
	scripts/kafka.sh stop

lint: install
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts

typecheck: install
	$(BIN)/mypy app tests bench scripts

test: install compose-schema helm browser broker lint typecheck
	$(BIN)/pytest -ra tests

test-unit: install compose-schema helm
	$(BIN)/pytest -ra tests/unit

test-integration: install broker
	$(BIN)/pytest -ra tests/integration

test-e2e: install browser broker
	$(BIN)/pytest -ra tests/e2e

demo: install
	$(BIN)/python scripts/demo.py

bench: install broker
	$(BIN)/python -m bench.run

clean:
	rm -rf .cache/worker-data .demo .pytest_cache .mypy_cache .ruff_cache
