# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   build the environment from the lock (once), then run the lifecycle demo
#   make test   same bootstrap, then the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-from-lock
IMAGE  ?= mlops-suite/components:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: venv demo test compile bench lock image platform-up platform-status platform-down kind-up kind-e2e kind-down clean

venv: $(STAMP)

# The environment is built only from requirements.lock (hash-checked), then the
# project itself is installed without dependencies.
$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " at " + sys.executable + "; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: venv
	$(BIN)/mlops demo

# Two workers, whole files per worker (module fixtures start servers once): 10 min instead of 19 on 2 CPUs.
test: venv
	$(BIN)/python -m pytest -n 2 --dist loadfile

compile: venv
	MLOPS_COMPONENT_IMAGE=$(IMAGE) $(BIN)/mlops compile

bench: venv
	$(BIN)/python bench/bench_training.py
	$(BIN)/python bench/bench_validation.py
	$(BIN)/python bench/bench_drift.py
	$(BIN)/python bench/bench_feature_store.py
	$(BIN)/python bench/bench_serving.py
	$(BIN)/python bench/bench_load.py
	$(BIN)/python bench/bench_batch.py

platform-up: venv
	$(BIN)/mlops platform up
platform-status: venv
	$(BIN)/mlops platform status
platform-down: venv
	$(BIN)/mlops platform down

# Re-resolve the lock from requirements.in (needs network; uv is only a dev tool).
lock:
	$(PYTHON) -m pip install --quiet uv==0.13.8
	$(PYTHON) -m uv pip compile requirements.in --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes -o requirements.lock

# Build the component image (needs a Docker engine; not available on every machine).
image:
	docker build -t $(IMAGE) --build-arg IMAGE=$(IMAGE) --build-arg CODE_VERSION=$$(git rev-parse HEAD) \
	  --build-arg LOCK_DIGEST=sha256:$$(sha256sum requirements.lock | cut -d' ' -f1) .

# The kind cluster path (needs Docker and kind; kubectl comes from the lock). See README "Run on a kind cluster".
KIND_ENV := KUBECTL=$(abspath $(BIN)/kubectl) PYTHON=$(abspath $(BIN)/python) IMAGE=$(IMAGE)
kind-up: venv
	$(KIND_ENV) scripts/kind-up.sh
kind-e2e: venv
	$(KIND_ENV) scripts/kind-e2e.sh
kind-down:
	scripts/kind-down.sh

clean:
	rm -rf $(VENV) build *.egg-info
