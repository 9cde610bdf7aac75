# The two commands of the README, and the checks CI runs. Each target bootstraps .venv itself.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test soak fuzz check lint bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m node.demo

# Browser tests drive Debian's chromium (never a downloaded browser); install it when missing.
/usr/bin/chromium:
	@echo "installing Debian's chromium for the browser tests"
	@if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-thai-tlwg; \
	else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-thai-tlwg; fi

test: $(STAMP) lint /usr/bin/chromium
	$(BIN)/python -m pytest -q

# The long reliability runs (bigger partitions, more kills, more fuzzing examples); see bench/README.md.
soak: $(STAMP)
	SEAJUST_SOAK=1 $(BIN)/python -m pytest -q -m soak

# Coverage-guided fuzzing of the network parsers (atheris), FUZZ_SECONDS each, the corpus kept in .fuzz/.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	for target in messages envelopes grants relay_frames; do \
		PYTHONPATH=. $(BIN)/python tests/fuzz_atheris.py $$target .fuzz/$$target -max_total_time=$(FUZZ_SECONDS) \
			-artifact_prefix=.fuzz/ || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check node sync crypto ui tests bench
	$(BIN)/ruff format --check node sync crypto ui tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/sync_bench.py
	$(BIN)/python bench/cases_bench.py
	$(BIN)/python bench/network_bench.py
	$(BIN)/python bench/scale_bench.py
	$(BIN)/python bench/throughput_bench.py

clean:
	rm -rf $(VENV) demo .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
