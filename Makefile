# spherevae developer commands. `make test` sets up everything on a fresh machine and runs every check.
# Every tool runs as `$(PY) -m ...`, so nothing depends on an activated virtual environment.

# torch is installed first and pinned: 2.13.0 resolves to the local CPU-only build here and on CI.
# Any other torch requirement (including the package's own `torch>=2.2`) resolved with no torch
# installed pulls the CUDA build and several GB of nvidia-* wheels. Override with
# `make venv TORCH_VERSION=...` (add -B, or `make distclean`, to reinstall an existing venv).
TORCH_VERSION ?= 2.13.0

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

# lint only the folders that exist (benchmarks/ may not be there yet)
LINT_PATHS := $(wildcard src tests benchmarks examples docs/hooks)

# pytest exits 5 when it ran no test: say so and fail, never pass silently.
define run_pytest
	$(PY) -m pytest $(1); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make: pytest ran no tests (exit 5); failing" >&2; fi; \
	exit $$rc
endef

.PHONY: venv browser lint typecheck pytest test test-slow docs bench bench-deps demo clean distclean

## venv: create .venv and install torch (pinned) then the package with its dev tools
venv: $(STAMP)

# the second install repeats the pin so that no other requirement can swap torch
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "torch==$(TORCH_VERSION)"
	$(PIP) install -e '.[all,dev]' "torch==$(TORCH_VERSION)"
	touch $@

## lint: ruff lint rules and formatting (both run; either failing fails)
lint: venv
	@status=0; \
	echo "ruff check $(LINT_PATHS)"; $(PY) -m ruff check $(LINT_PATHS) || status=1; \
	echo "ruff format --check $(LINT_PATHS)"; $(PY) -m ruff format --check $(LINT_PATHS) || status=1; \
	exit $$status

## typecheck: mypy, strict on src (configured in pyproject.toml)
typecheck: venv
	$(PY) -m mypy

## pytest: the default test suite (slow tests are excluded by addopts in pyproject.toml)
pytest: venv
	$(call run_pytest,)

## browser: headless Chromium for the report test (Debian's chromium package, installed when missing)
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "installing chromium (Debian package) for the report test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "make: the report test needs headless Chromium: install Debian's 'chromium' package" >&2; exit 1; \
		fi; }

## test: everything: install, then lint, typecheck and pytest; all three run, and any failure fails
test: venv browser
	@failed=; \
	$(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	$(MAKE) --no-print-directory typecheck || failed="$$failed typecheck"; \
	$(MAKE) --no-print-directory pytest || failed="$$failed pytest"; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make test: lint, typecheck and pytest passed"

## test-slow: only the long statistical grids
test-slow: venv
	$(call run_pytest,-m slow)

## docs: the documentation site into site/ (mkdocs.yml, docs/); --strict fails on any warning,
## such as a broken link or a reference that cannot be found. `mkdocs serve` shows it while editing.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

## bench: speed benchmarks (needs the optional power-spherical reference implementation)
bench-deps: $(BENCH_STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PIP) install -e '.[bench]' "torch==$(TORCH_VERSION)"
	touch $@

bench: bench-deps
	$(PY) benchmarks/distributions.py

## demo: fetch MNIST, train an S-VAE with an S^2 latent for a few epochs on the CPU, evaluate it
DEMO_DIR ?= runs/demo
DEMO_EPOCHS ?= 20
demo: venv
	@if [ -e "$(DEMO_DIR)/config.yaml" ]; then \
		echo "make demo: $(DEMO_DIR) already holds a run; remove it or set DEMO_DIR=..." >&2; exit 2; fi
	$(PY) -m spherevae train --dataset mnist --latent S2 --posterior vmf --epochs $(DEMO_EPOCHS) \
		--seed 0 --device cpu --out $(DEMO_DIR)
	$(PY) -m spherevae eval $(DEMO_DIR) --ll-samples 500
	@echo
	@echo "make demo: done. Run directory: $(DEMO_DIR)"
	@echo "  figures:  $(DEMO_DIR)/plots/ (latent_means.png shows the test digits on the sphere)"
	@echo "  metrics:  $(DEMO_DIR)/metrics.csv, test evaluation: $(DEMO_DIR)/eval_test.json"
	@echo "  model:    $(DEMO_DIR)/model/ (load with spherevae.models.VAE.from_pretrained)"

## clean: caches and build outputs (keeps .venv); distclean: also removes .venv
clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache build dist site
	find $(LINT_PATHS) -name __pycache__ -type d -prune -exec rm -rf {} +
	rm -rf src/*.egg-info

distclean: clean
	rm -rf $(VENV)
