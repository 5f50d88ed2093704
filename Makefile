# `make demo`: set up and run a full local audit on the shipped demo data.
# `make test`: set up (system packages too), lint and type-check (ruff, mypy), run the tests.
# `make dashboard`: rebuild dashboard.html's script (templates/dashboard.js) from dashboard/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup system-deps demo test generate compile images clean dashboard

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[all,test]'
	touch $@

setup: $(VENV)/.installed

# A real MLServer for tests/test_served_model.py, in a venv of its own (it pins its own
# fastapi/starlette, which the audit's venv holds at other versions).
MLSERVER_VENV ?= .venv-mlserver
$(MLSERVER_VENV)/.installed: tests/mlserver/requirements.txt
	$(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/python -m pip install -q --upgrade pip
	$(MLSERVER_VENV)/bin/python -m pip install -q -r tests/mlserver/requirements.txt
	touch $@

# The page's script is built from dashboard/ (Preact, esbuild; see dashboard/README.md) and
# committed; the tests also read axe-core from dashboard/node_modules.
dashboard/node_modules/.installed: dashboard/package.json dashboard/package-lock.json
	cd dashboard && npm ci --no-audit --no-fund
	touch $@

dashboard: dashboard/node_modules/.installed
	cd dashboard && npm run build

system-deps:
	scripts/install-system-deps.sh

demo: setup
	$(VENV)/bin/rai-audit demo --output rai-audit-demo

# Lint, format and type checks first: they take seconds, the tests a quarter of an hour.
LINTED := components tests scripts bench
test: setup system-deps dashboard/node_modules/.installed $(MLSERVER_VENV)/.installed
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/mypy
	$(PY) -m pytest -q $(PYTEST_ARGS)

# What is derived from the steps' specs as text: the KFP step components, the option tables.
generate: setup
	$(PY) scripts/generate-from-specs.py

# The checked-in pipelines (KFP IR YAML, one per flow, and the Argo documents) and every
# component's spec, components/<name>/component.yaml with its README (loadable without rai-audit).
compile: generate
	for p in $$($(PY) -c 'from rai_audit.pipelines import PIPELINE_OPTIONS; print(*PIPELINE_OPTIONS)'); do \
	  $(VENV)/bin/rai-audit compile --pipeline $$p || exit 1; done
	$(VENV)/bin/rai-audit compile --target argo --pipeline audit --output pipelines/argo
	$(PY) scripts/compile-components.py >/dev/null

# Every step's image built without a Docker engine (buildah), then the demo audit run one
# container per step and compared with the local run (root; see images/README.md).
# `make images REGISTRY=ghcr.io/acme/rai-audit TAG=1.0.0` names them so and pushes them
# (podman; `podman login` first), recording their digests in images/pushed.json: pipelines
# compiled for that registry and tag then name each image by digest (rai_audit.images).
REGISTRY ?=
TAG ?=
images: setup
	RAI_AUDIT_IMAGE_REGISTRY=$(REGISTRY) RAI_AUDIT_IMAGE_TAG=$(TAG) scripts/build-images.sh
	$(if $(REGISTRY),scripts/push-images.sh $(REGISTRY) $(or $(TAG),$$($(PY) -c 'import rai_audit; print(rai_audit.__version__)')))

clean:
	rm -rf $(VENV) $(MLSERVER_VENV) rai-audit-demo rai-audit-output rai-audit-containers dashboard/node_modules
