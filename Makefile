# qgt: two commands do all the set-up on a fresh machine.
#   make demo   create .venv (Python 3.12+), build, run a real 2-rank simulation
#   make test   same set-up, then ruff and the whole test suite
# PYTHON may be set explicitly: make test PYTHON=/path/to/python3.12

VENV      := .venv
VPY       := $(VENV)/bin/python
STAMP     := $(VENV)/.qgt-installed
# First interpreter of version >= 3.12 (3.12 preferred): $PYTHON, python3.1x on PATH, pyenv's
# versions (these machines default to 3.11 with 3.12 under pyenv), then python3.
PYTHON ?= $(shell for c in python3.12 python3.13 python3.14 \
	$$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.1[2-9]*/bin/python3 2>/dev/null | sort -V) \
	python3; do \
	  p=$$(command -v $$c 2>/dev/null) || continue; \
	  $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: demo test lint build clean bench

$(VPY):
	@if [ -z "$(PYTHON)" ]; then echo "make: no Python >= 3.12 found (pyhwloc needs it); set PYTHON=..." >&2; exit 1; fi
	@echo "using $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip

$(STAMP): $(VPY) setup.py $(wildcard csrc/*.c csrc/*.h qgt/*.pyx)
	$(VPY) -m pip install -q numpy Cython setuptools wheel
	$(VPY) -m pip install -q --no-build-isolation -e '.[test]'
	@touch $(STAMP)

build: $(STAMP)

demo: build
	$(VENV)/bin/mpiexec -n 2 $(VENV)/bin/qgt run qpe:20 --shots 1000 --seed 7 \
	  --observable ZIIIIIIIIIIIIIIIIIII --statevector demo-state.h5 --output demo-result.json

lint: build
	$(VENV)/bin/ruff check qgt tests setup.py

test: lint
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VPY) -m pytest -q tests

bench: build
	$(VENV)/bin/qgt bench --qubits 26

clean:
	rm -rf build $(VENV) qgt/*.so qgt/_kern.c *.egg-info
