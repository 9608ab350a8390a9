# Quorus: `make demo` and `make test` work on a fresh clone.
# They create .venv, install every distribution in editable mode with its test extras, and,
# when run as root on Debian, the system packages the tests and benchmarks need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.quorus-installed

# Every distribution in the workspace, installed editable with its test extras.
DISTS := quorus-core plugins/quorus-http quorus-integration-examples/quorus-example-protocol
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(DISTS))

# Test suites: each distribution's own tests, then the cross-process system tests.
TEST_PATHS := quorus-core/tests plugins/quorus-http/tests \
              quorus-integration-examples/quorus-example-protocol/tests tests
TYPED := quorus-core/src

.PHONY: setup system-deps test lint typecheck pytest demo bench clean

setup: system-deps $(STAMP)

system-deps:
	@bash scripts/install-system-deps.sh

$(STAMP): $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet \
		$(foreach d,$(DISTS),-e '$(d)[test]') -e .
	touch $@

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	cd quorus-core && ../$(BIN)/mypy --strict -p quorus.core
	cd plugins/quorus-http && ../../$(BIN)/mypy --strict -p quorus.protocols.http

pytest: setup
	$(BIN)/python -m pytest $(TEST_PATHS)

test: setup lint typecheck pytest

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python tests/benchmarks/transfer_vs_peers.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
