# Two front doors: `make demo` renders a scene on the embedded defaults, `make test` runs the suite.
# Both create .venv on a fresh machine. torch is installed first, pinned (TORCH_SPEC), so that
# resolving the project's dependencies never pulls another torch. Where pip sees a CPU build of
# that release (a local wheel, or PyTorch's CPU index via PIP_EXTRA_INDEX_URL, see README) it takes
# it; from PyPI alone, Linux gets the CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
DEMO_PROMPT ?= Rain pouring outside as thunder rumbles in the distance, followed by a door slamming
DEMO_OUT ?= out/demo

.PHONY: venv demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[test]"
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/audio-agent render "$(DEMO_PROMPT)" --duration 10 --out $(DEMO_OUT)

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: venv
	$(BIN)/python benchmarks/render.py

clean:
	rm -rf $(VENV) out
