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

.PHONY: help venv host up images validate teardown purge test lint unit integration sanity molecule bench clean

help:
	@echo "make up        deploy the lab on this machine (virtualenv, Docker host, images, site.yml)"
	@echo "make test      lint, unit tests, image tests, ansible-test sanity and the Molecule scenario"
	@echo "make bench     time a cold and a no-op converge and the offline image builds"
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

teardown: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml

purge: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml -e purge=true

test: host lint unit integration sanity molecule

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

unit: venv
	$(BIN)/python -m pytest tests/unit -q

# The offline image recipes, built and run for real against their official interface.
integration: images
	DOCKERLAB_BASE_IMAGE="$$(docker image ls dockerlab/ecommerce-base --format '{{.Repository}}:{{.Tag}}' | head -n 1)" \
	  $(BIN)/python -m pytest tests/integration -q

# shellcheck is one of the sanity tests; ansible-test skips it (with a warning) without it.
sanity: venv
	command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck >/dev/null; } \
	  || echo "sanity: shellcheck could not be installed; ansible-test will skip its shellcheck test"
	tests/sanity/run.sh

molecule: host
	$(BIN)/molecule test --scenario-name default

bench: host
	bench/bench.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache
