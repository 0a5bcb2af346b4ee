# huntbook: `make demo` and `make test` do everything on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
OUT    ?= demo-output

.PHONY: demo test lint typecheck unit bench system-packages clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall when the project's dependencies change. The demo uses the 'ml' (STL), 'sigma', 'geo' (offline GeoIP, hosting tags) and 'vis' (charts) extras.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[ml,sigma,geo,vis]'
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/huntbook demo --out $(OUT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy

# Debian packages some tests need: headless Chromium (charts, reports), PostgreSQL (the sql driver) and a
# Java runtime (pyspark). Installed when missing and we may (root); otherwise those tests skip and say why.
SYSTEM_NEEDS := chromium:chromium chromedriver:chromium-driver initdb:postgresql java:default-jre-headless

system-packages:
	@missing=""; for pair in $(SYSTEM_NEEDS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null || ls /usr/lib/postgresql/*/bin/$$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo "not installed:$$missing: the tests that need them will be skipped"; fi

unit: $(VENV)/.installed-test system-packages
	$(BIN)/python -m pytest

test: lint typecheck unit

bench: $(VENV)/.installed-test system-packages
	$(BIN)/python benchmarks/bench_foundation.py
	for b in iocs decode proctree timeseries cluster_sessions sigma feeds enrich vis; do $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

clean:
	rm -rf $(VENV) $(OUT) .mypy_cache .ruff_cache .pytest_cache
