# Quorus: `make demo` and `make test` work on a fresh clone.
# They create .venv, install every distribution in editable mode with its test extras, and,
# when run as root on Debian, the system packages the tests and benchmarks need.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.quorus-installed

# Every distribution in the workspace, installed editable with its test extras: core first,
# then every package folder that has a pyproject.toml (a new plugin joins by existing).
dist_dirs = $(patsubst %/pyproject.toml,%,$(wildcard $(1)/pyproject.toml))
DISTS := quorus-core $(call dist_dirs,quorus-raft) $(call dist_dirs,quorus-tenant) \
         $(call dist_dirs,quorus-workflow) $(call dist_dirs,plugins/*) \
         $(call dist_dirs,quorus-integration-examples/*)
PYPROJECTS := pyproject.toml $(addsuffix /pyproject.toml,$(DISTS))

# Test suites: each distribution's own tests, then the cross-process system tests.
TEST_PATHS := $(wildcard $(addsuffix /tests,$(DISTS))) tests
# Checked with mypy --strict: every distribution of the project itself (examples excluded).
TYPED := $(filter-out quorus-integration-examples/%,$(DISTS))

.PHONY: setup system-deps test lint typecheck pytest demo bench raft-soak clean

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
	@set -e; for d in $(TYPED); do echo "mypy --strict $$d"; \
		(cd $$d && $(CURDIR)/$(BIN)/mypy --strict src); done

pytest: setup
	$(BIN)/python -m pytest $(TEST_PATHS)

test: setup lint typecheck pytest

demo: setup
	$(BIN)/python scripts/demo.py

bench: setup
	$(BIN)/python tests/benchmarks/transfer_vs_peers.py

# A long run of the Raft simulator: 10,000 seeded scenarios on 3-, 4-, 5- and 7-node clusters
# (the test suite runs a short slice of the same). A failing seed prints the command that
# replays it.
raft-soak: setup
	$(BIN)/python -m quorus.raft.sim --seeds 0..9999 --nodes 3,4,5,7 --steps 1500

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
