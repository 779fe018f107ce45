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

.PHONY: help venv host tools up images validate report backup restore teardown purge test lint unit render sanity engine images-test molecule molecule-ports bench clean

help:
	@echo "make up        deploy the lab on this machine (virtualenv, Docker host, images, site.yml)"
	@echo "make test      lint unit render sanity (no engine), then images engine images-test molecule molecule-ports"
	@echo "               (each a target of its own; tests/README.md: which tests need what)"
	@echo "make bench     time image builds, converges, health validation and the request path"
	@echo "make validate  check the running lab (playbooks/validate.yml)"
	@echo "make report    write the topology report under reports/ (playbooks/report.yml)"
	@echo "make backup    back up the running lab, verified by a restore (playbooks/backup.yml)"
	@echo "make restore BACKUP=<dir>  restore a backup into the lab (playbooks/restore.yml)"
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

backup: venv
	$(BIN)/ansible-playbook playbooks/backup.yml

# The backup to restore: make restore BACKUP=<directory> (make backup says where it wrote it).
BACKUP ?=
restore: venv
	@if [ -z "$(BACKUP)" ]; then echo "make restore BACKUP=<backup directory>: name the backup to restore" >&2; exit 2; fi
	$(BIN)/ansible-playbook playbooks/restore.yml -e backup=$(BACKUP)

teardown: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml

purge: venv
	$(BIN)/ansible-playbook playbooks/teardown.yml -e purge=true

# What needs no Docker engine first (lint, unit, render, sanity), then what needs one:
# the images, the tests against them (engine, images-test) and the deployed lab (molecule).
test: tools lint unit render sanity host images engine images-test molecule molecule-ports

# What the tests drive besides Python: Debian's Chromium and ChromeDriver (browser test of
# the demo page), graphviz (the report's SVG), shellcheck (an ansible-test sanity test) and age
# (the encrypted backups of the backup test).
TEST_PACKAGES := chromium chromium-driver graphviz shellcheck age
tools:
	@missing=""; for p in $(TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

lint: venv
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --profile production

# The images the images role built, as images.json records them. $(call image_ref,KEY)
# prints one (KEY: base, refs.prometheus, ...) or fails, naming the file and `make images`,
# when the file or the key is missing: no empty variable is passed on.
IMAGES_JSON ?= /opt/dockerlab/ecommerce/images.json
image_ref = $(BIN)/python tests/image_ref.py $(IMAGES_JSON) $(1)
PROMETHEUS_IMAGE = $(call image_ref,refs.prometheus)
BASE_IMAGE = $(call image_ref,base)

# No engine: the collection's plugins (model, filters, modules' logic).
unit: venv
	$(BIN)/python -m pytest tests/unit -q

# No engine: the configuration the roles render (tests/render/render.yml), parsed.
render: venv
	$(BIN)/python -m pytest tests/render -q

# An engine and the offline images: the services' code against real MariaDB and Redis,
# stack_health/topology_report against real containers, and the rendered monitoring
# config through promtool and a real Prometheus (the offline image).
engine: images
	prometheus="$$($(PROMETHEUS_IMAGE))"; \
	DOCKERLAB_PROMETHEUS_IMAGE="$$prometheus" $(BIN)/python -m pytest tests/engine -q

# An engine and the base image: each offline image recipe built and run for real against
# its official interface.
images-test: images
	base="$$($(BASE_IMAGE))"; \
	DOCKERLAB_BASE_IMAGE="$$base" $(BIN)/python -m pytest tests/images -q

sanity: venv
	tests/sanity/run.sh

molecule: host tools
	$(BIN)/molecule test --scenario-name default

# The lab with every port variable changed: flows, scrape targets, healthchecks,
# validation and the reachability report must follow (molecule/ports).
molecule-ports: host tools
	$(BIN)/molecule test --scenario-name ports

bench: host
	bench/bench.sh

clean:
	rm -rf $(VENV) .cache .pytest_cache
