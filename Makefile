# The two commands a newcomer needs: `make demo` and `make test`. Both install first.
# uv is installed with pip if it is missing; everything else comes from uv.lock.
SHELL := /bin/bash
# uv on PATH, else the uv module of the python3 on PATH (installed on first use).
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PYTEST_ARGS ?=

.PHONY: install install-browser demo test run bench lint clean

.venv/.installed: pyproject.toml uv.lock
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --extra dev
	@touch $@

install: .venv/.installed

# Debian's chromium for the dashboard tests (playwright's own browser download does not work here).
install-browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else echo "chromium missing: browser tests will be skipped (install Debian's chromium)"; fi; }

demo: install
	$(UV) run vpp demo

test: install install-browser
	$(UV) run ruff check vpp forecasting bidding device_adapters sim tests benchmarks
	@# mypy checks the packages listed in pyproject.toml ([tool.mypy] files).
	$(UV) run mypy
	@# pytest's exit 5 means it collected no tests: report it as a failure, not a pass.
	@$(UV) run pytest -n 2 $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; exit 1; fi; exit $$rc

run: install
	$(UV) run vpp db upgrade
	$(UV) run vpp serve

bench: install
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(UV) run python $$b --quick; done

lint: install
	$(UV) run ruff check .
	$(UV) run mypy

clean:
	rm -rf .venv data .pytest_cache
