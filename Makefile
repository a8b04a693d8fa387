# affectstream — developer entry points. Every target creates .venv and installs what it needs.
#   make demo       synthesise a subject, replay it over LSL, show what a listener receives
#   make test       the whole test suite (LSL, slow and browser tests included)
#   make test-fast  the quick inner-loop subset (no LSL, no slow, no browser tests)
#   make bench      measure latency, capacity and throughput; update the README's benchmark block
#   make lint       ruff (lint + format check), mypy, the import layers (lint-imports), hadolint

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
EXTRAS ?= dev,train
# the folders mapped into the `affectstream` import namespace (pyproject.toml, package-dir)
PACKAGE_DIRS := streaming models service training bench

.PHONY: venv demo test test-fast bench lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "affectstream needs Python >= 3.11; set PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: $(STAMP)
	$(BIN)/affectstream demo $(ARGS)

# The whole suite in two phases: everything not marked `serial` on two workers (most tests wait
# on real time: LSL streams, servers, replays), then the `serial` tests alone (they measure
# latency or capacity). JUNIT_DIR (set by .ci/run) gets one JUnit report per phase.
JOBS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile -m "not serial" $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/parallel.xml) $(ARGS)
	$(BIN)/python -m pytest -m serial $(if $(JUNIT_DIR),--junitxml=$(JUNIT_DIR)/serial.xml) $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not lsl and not browser" $(ARGS)

bench: $(STAMP)
	$(BIN)/affectstream bench --update-readme README.md $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@rm -rf build/typecheck && mkdir -p build/typecheck/affectstream
	@for d in $(PACKAGE_DIRS); do ln -s ../../../$$d build/typecheck/affectstream/$$d; done
	@ln -s ../../../clients build/typecheck/affectstream/client
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint --failure-threshold style Dockerfile docker/Dockerfile.gpu

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist
