# Two commands on a fresh machine: `make run` (set up, start the app) and `make test` (set up, run every test).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: setup run test lint bench fuzz package package-test clean

setup: $(STAMP)

# torch first, pinned: it is a CPU build on this disk; anything else lets pip fetch a CUDA build (GBs).
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

# Qt's X11 libraries are system packages pip cannot install: the check names them (installs them as root).
run: $(STAMP)
	$(PY) scripts/check_system.py $(ARGS)
	$(VENV)/bin/studio $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check studio tests bench scripts fuzz packaging
	$(VENV)/bin/lint-imports

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen HF_HUB_OFFLINE=1 $(PY) -m pytest -q $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

# Hostile input through the CLI (about 2,000 generated cases, kills, concurrent catalogues): a few minutes,
# bounded by --seconds; not part of `make test`. ARGS="--seed 1 --scale 2" for another, bigger set.
fuzz: $(STAMP)
	$(PY) -m fuzz $(ARGS)

# An installable desktop application (PyInstaller one-folder bundle + tarball with install.sh): minutes.
# Not part of `make test`. package-test runs the bundle (version, generate, info, the window, the
# validators, install/uninstall) and reports its size and start time; it installs the validators as root.
package: $(STAMP)
	$(PIP) install -q "pyinstaller>=6.10,<7"
	$(PY) packaging/build.py

package-test: $(STAMP)
	@command -v desktop-file-validate >/dev/null && command -v appstreamcli >/dev/null || \
		{ [ "$$(id -u)" = 0 ] && apt-get install -y -q --no-install-recommends desktop-file-utils appstream >/dev/null; } || \
		{ echo "needs desktop-file-validate and appstreamcli: sudo apt-get install desktop-file-utils appstream"; exit 1; }
	$(PY) packaging/test_package.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
