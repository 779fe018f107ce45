# Two commands do everything: `make up` deploys the lab, `make test` tests it.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV ?= .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)
# Molecule installs the collection under ANSIBLE_HOME: keep it inside the checkout.
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible-home
export PATH := $(BIN):$(PATH)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

.PHONY: help venv host tools up images validate report teardown purge test lint unit integration sanity molecule bench clean

help:
	@echo "make up        deploy the lab on this machine (virtualenv, Docker host, images, site.yml)"
	@echo "make test      lint, unit tests, image tests, ansible-test sanity and the Molecule scenario"
	@echo "make bench     time image builds, converges, health validation and the request path"
	@echo "make validate  check the running lab (playbooks/validate.yml)"
	@echo "make report    write the topology report under reports/ (playbooks/report.yml)"
	@echo "make teardown  remove the lab's containers and networks (data volumes stay)"
	@echo "make purge     remove the lab and its data volumes"

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP)

# Make this machine a working Docker host (installs and starts the engine when needed).
host: venv
	$(BIN)/ansible-playbook playbooks/docker_host.yml

up: host
	$(BIN)/ansible-playbook site.yml

images: host
	$(BIN)/ansible-playbook site.yml --tags images

validate: venv
	$(BIN)/ansible-playbook playbooks/validate.yml

report: venv
	$(BIN)/ansible-playbook playbooks/report.yml

teardown: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml

purge: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml -e purge=true

test: host tools lint images unit integration sanity molecule

# What the tests drive besides Python: Debian's Chromium and ChromeDriver (browser test of
# the demo page), graphviz (the report's SVG) and shellcheck (an ansible-test sanity test).
TEST_PACKAGES := chromium chromium-driver graphviz shellcheck
tools:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

# The services' unit tests run against real MariaDB and Redis from the offline images.
# The rendered monitoring config is also checked by promtool and a real Prometheus: the
# offline image the images role built (recorded in the stack's images.json).
PROMETHEUS_IMAGE = $$($(BIN)/python -c 'import json; print(json.load(open("/opt/dockerlab/ecommerce/images.json"))["refs"]["prometheus"])')
unit: venv
	DOCKERLAB_PROMETHEUS_IMAGE="$(PROMETHEUS_IMAGE)" $(BIN)/python -m pytest tests/unit -q

# The offline image recipes, built and run for real against their official interface.
# The base image the images role made (recorded in the stack's images.json).
BASE_IMAGE = $$($(BIN)/python -c 'import json; print(json.load(open("/opt/dockerlab/ecommerce/images.json"))["base"])')
integration: images
	DOCKERLAB_BASE_IMAGE="$(BASE_IMAGE)" $(BIN)/python -m pytest tests/integration -q

sanity: venv
	tests/sanity/run.sh

molecule: host
	$(BIN)/molecule test --scenario-name default

bench: host
	bench/bench.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache
