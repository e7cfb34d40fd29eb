# The two entry points of the README. Both create .venv and install the pinned CPU set-up on first use
# (--no-compile: byte-compiling all of torch up front costs ~20 s). Python would compile what it imports lazily,
# but not where PYTHONDONTWRITEBYTECODE is set (as on the development machines): then every process compiles
# torch, torch._dynamo and scikit-learn from source again (~9 s of CPU each). The import line below writes the
# bytecode of just the modules a run imports, once (~18 s of CPU at set-up).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup clean

$(STAMP): requirements-cpu.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --no-compile -r requirements-cpu.txt
	$(BIN)/python -m pip install -q --no-compile --no-deps --no-build-isolation -e .
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -c "import noisyclr.engine, noisyclr.demo, torch._dynamo, \
	    sklearn.mixture, sklearn.cluster, sklearn.datasets, sklearn.model_selection, sklearn.metrics"
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m noisyclr.demo

test: $(STAMP)
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) runs
