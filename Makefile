# The two entry points of the README. Both create .venv and install the pinned CPU set-up on first use
# (--no-compile: byte-compiling all of torch up front costs ~20 s; Python compiles what it imports lazily).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): requirements-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -r requirements-cpu.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m noisyclr.demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) runs
