# Two commands on a fresh machine with Python 3.11 and make:
#   make demo   build the environment from the lock (once), then run the lifecycle demo
#   make test   same bootstrap, then the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
LOCKED := $(VENV)/.installed-from-lock
STAMP  := $(VENV)/.installed-project
IMAGE  ?= mlops-suite/components:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: venv demo test compile bench lock image platform-up platform-status platform-down kind-up kind-e2e kind-down clean

venv: $(STAMP)

# The environment is exactly requirements.lock: built afresh whenever the lock changes,
# hash-checked and with --no-deps. The lock is the whole resolution, so pip must resolve
# nothing again (with dependencies on, pip resolves extras such as feast's uvicorn[standard]
# against the index and takes whatever was published since the lock was made). pip check
# and scripts/lockcheck.py then prove the installed set is whole, extras included.
$(LOCKED): requirements.lock requirements.in scripts/lockcheck.py
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0] + " at " + sys.executable + "; set PYTHON=/path/to/python3.11")'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --no-deps --require-hashes -r requirements.lock
	$(PIP) check
	$(BIN)/python scripts/lockcheck.py installed requirements.lock --roots requirements.in
	touch $@

# The project itself, without dependencies (they all came from the lock) and built with the
# lock's setuptools rather than a freshly fetched one.
$(STAMP): $(LOCKED) pyproject.toml
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Any project runs the same story: make demo PROJECT=churn (or a project folder).
PROJECT ?= credit-default
demo: venv
	$(BIN)/mlops demo --project $(PROJECT)

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

# Re-resolve every lock from its requirements (needs the index), then prove each one closed.
# uv and packaging come hash-checked from scripts/lock-tools.lock, in a venv of their own.
LOCK_VENV := .venv-lock
UV := $(LOCK_VENV)/bin/uv --quiet
LOCK_FOR := --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes
LOCKCHECK := $(LOCK_VENV)/bin/python scripts/lockcheck.py index
lock: $(LOCK_VENV)/.installed
	$(UV) pip compile requirements.in $(LOCK_FOR) -o requirements.lock
	$(UV) pip compile bench/gx-requirements.txt $(LOCK_FOR) -o bench/gx-requirements.lock
	$(UV) pip compile bench/evidently-requirements.txt $(LOCK_FOR) -o bench/evidently-requirements.lock
	$(UV) pip compile tests/schemathesis-requirements.txt $(LOCK_FOR) -o tests/schemathesis-requirements.lock
	$(LOCKCHECK) requirements.lock --roots requirements.in
	$(LOCKCHECK) bench/gx-requirements.lock --roots bench/gx-requirements.txt
	$(LOCKCHECK) bench/evidently-requirements.lock --roots bench/evidently-requirements.txt
	$(LOCKCHECK) tests/schemathesis-requirements.lock --roots tests/schemathesis-requirements.txt

$(LOCK_VENV)/.installed: scripts/lock-tools.lock
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r scripts/lock-tools.lock
	touch $@

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
	rm -rf $(VENV) $(LOCK_VENV) build *.egg-info
