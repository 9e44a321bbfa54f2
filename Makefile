# SealGate: `make run` and `make test` set up everything they need on a fresh machine.

# A system Python is preferred for the venv: run as root, the supervisor drops to two service
# users, who must be able to run the interpreter (a pyenv build under /root is 0700).
PYTHON ?= $(shell for p in /usr/bin/python3 /usr/local/bin/python3 python3; do \
	$$p -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 \
	&& echo $$p && break; done)
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check

.PHONY: run try ctl test test-fast test-slow soak lint format bench lock clean desktop desktop-screenshot image test-image

$(PY):
	@test -n "$(PYTHON)" || { echo "make: no Python >= 3.11 with venv found; install python3-venv" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# Dependencies are installed from the lock files with every hash required.
$(VENV)/.runtime: requirements.lock | $(PY)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements.lock
	@printf '#!/bin/sh\nexec "%s/sealgate-ctl" "$$@"\n' "$(CURDIR)" > $(VENV)/bin/sealgate-ctl
	@chmod 0755 $(VENV)/bin/sealgate-ctl
	@touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime | $(PY)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-dev.lock
	@touch $@

# The desktop client's extra (PySide6, keyring, ...): never in requirements.lock, the server's.
$(VENV)/.desktop: requirements-desktop.lock $(VENV)/.runtime | $(PY)
	$(PIP) install --quiet --require-hashes --no-deps -r requirements-desktop.lock
	@touch $@

desktop: $(VENV)/.desktop
	$(PY) -m desktop

# The README's screenshot of the real window, under Xvfb, against a hub with fake providers.
desktop-screenshot: $(VENV)/.dev
	bash tests/setup_machine.sh
	QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1280x800x24" $(PY) -m tests.desktop.screenshot docs/desktop.png

run: $(VENV)/.runtime
	@echo "make run: operator CLI: ./sealgate-ctl status (from another shell, as root or the guardian's user)"
	$(PY) -I supervisor.py

# SealGate without a key: the fake providers (bench/fake_provider.py) and the hub with
# bench/fake.pyfun, started together and stopped together (Ctrl-C). FAKE_PORT moves the fakes
# (default 8900, bench/fake_provider.py's DEFAULT_PORT; 0: any free port).
try: $(VENV)/.dev
	$(PY) bench/try.py $(if $(FAKE_PORT),--port $(FAKE_PORT))

# The operator CLI through make, e.g. `make ctl ARGS="users add ada"`; the same as ./sealgate-ctl.
ctl: $(VENV)/.runtime
	@./sealgate-ctl $(ARGS)

# The container image with whichever engine exists (podman: `--format docker` keeps the
# HEALTHCHECK). BASE builds on another base image (default: the Dockerfile's, the official
# Python image); IMAGE_BUILD_FLAGS adds engine flags. Podman reads the project's settings
# (docker/containers.conf: the runc runtime, the host's ulimits) when runc is installed.
IMAGE  ?= sealgate
ENGINE ?= $(shell command -v podman || command -v docker)
image:
	@test -n "$(ENGINE)" || { echo "make image: no podman or docker found; install one (Debian: apt-get install podman runc)" >&2; exit 1; }
	$(if $(and $(findstring podman,$(ENGINE)),$(wildcard /usr/sbin/runc /usr/bin/runc)),CONTAINERS_CONF=$(CURDIR)/docker/containers.conf) \
		$(ENGINE) build $(if $(findstring podman,$(ENGINE)),--format docker) \
		$(if $(BASE),--build-arg BASE=$(BASE)) $(IMAGE_BUILD_FLAGS) -t $(IMAGE) .

# The image built and run by the tests with podman (installed when missing, as root): a base
# made from Debian's packages (built once, cached), both run modes, the attacks inside it.
test-image: $(VENV)/.dev
	bash tests/setup_machine.sh
	bash docker/podman.sh install
	$(PY) -m pytest tests/image -q -m slow

# The test layers (tests/layers.py, docs/DEVELOPMENT.md); each pytest run ends with its time
# per layer and names the layers it left out. `test`: lint, types, the unit layer, then the
# e2e layer (10 to 12 minutes on two cores). `test-fast`: the unit layer alone (in one
# process, no PostgreSQL, well under 30 s). `test-slow`: the suites too long for `test`.
# The e2e layer runs in TEST_WORKERS pytest processes (pytest-xdist), each module whole in
# one of them: its tests mostly wait on the processes they start, so two keep two cores busy.
TEST_WORKERS ?= 2
test: $(VENV)/.dev
	bash tests/setup_machine.sh
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest -m unit
	$(PY) -m pytest -m e2e -n $(TEST_WORKERS) --dist loadfile

test-fast: $(VENV)/.dev
	$(PY) -m pytest -m unit -q

test-slow: $(VENV)/.dev
	SEALGATE_REAL_CLIENTS=1 bash tests/setup_machine.sh
	bash docker/podman.sh install
	$(PY) -m pytest -m slow

# The reliability suite at full length (about 40 minutes): a 30-minute mixed soak, PostgreSQL
# down 30 s, ten times the fuzz cases; prints the figures docs/RELIABILITY.md records.
soak: $(VENV)/.dev
	bash tests/setup_machine.sh
	SEALGATE_SOAK_S=1800 SEALGATE_PG_OUTAGE_S=30 SEALGATE_FLOOD_STREAMS=1000 SEALGATE_FLOOD_HOLD_S=60 \
	SEALGATE_FUZZ_EXAMPLES=3000 SEALGATE_FUZZ_CONNECTIONS=4000 SEALGATE_SCHEMATHESIS_EXAMPLES=250 \
		$(PY) -m pytest tests/reliability tests/protocol/test_framing.py -q -s --timeout 3600

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(VENV)/.dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(VENV)/.dev
	@command -v wrk >/dev/null || { test "$$(id -u)" = 0 && apt-get install -y -qq wrk >/dev/null; } || true
	@test -x bench/.litellm-venv/bin/litellm || { python3 -m venv bench/.litellm-venv && \
		bench/.litellm-venv/bin/pip install --quiet 'litellm[proxy]==1.108.7'; } || \
		echo "bench: LiteLLM could not be installed; its rows are skipped"
	@$(PY) bench/portkey.py || echo "bench: Portkey's gateway could not be installed; its rows are skipped"
	$(PY) bench/rpc.py
	$(PY) bench/call_start.py
	$(PY) bench/gateway.py
	$(PY) bench/receipts.py --rounds 2 --blocks 16 --wrk 2
	$(PY) bench/receipts.py --rounds 0 --blocks 16 --wrk 2 --pin
	$(PY) bench/tracing.py
	$(PY) bench/vs_litellm.py
	$(PY) bench/workers.py
	$(PY) bench/slow_readers.py --readers 1000 --words 3000

# Re-pin after editing pyproject.toml (needs uv: `pip install uv`).
lock:
	uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o requirements.lock
	uv pip compile pyproject.toml --extra desktop --generate-hashes --python-version 3.11 -o requirements-desktop.lock
	uv pip compile pyproject.toml --extra dev --extra desktop --generate-hashes --python-version 3.11 -o requirements-dev.lock

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache .hypothesis
