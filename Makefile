# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv first, with the
# test and ray extras (so the real Ray tests run; the base install has no Ray).
# torch: reuse one that is already installed (venv sees system site-packages); otherwise
# install the CPU build pinned in TORCH (on disk on the project's machines, no CUDA download).
PYTHON ?= python3
TORCH  ?= torch==2.13.0
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rotelab-installed

.PHONY: setup browser demo test test-all bench gpu-wheels clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@if $(PYTHON) -c "import torch" 2>/dev/null; then \
	  echo "using the torch already installed"; $(PYTHON) -m venv --system-site-packages $(VENV); \
	else \
	  $(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q "$(TORCH)"; \
	fi
	$(PY) -m pip install -q -e '.[test,ray]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rotelab demo

# The report test opens the page in Debian's chromium; install it when missing and possible.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the report's browser test"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
	  || echo "warning: could not install chromium; the browser test will be skipped"; }

test: $(STAMP) browser
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m ''

# The whole suite of benchmarks (a few hours here on 2 cores): the engine, scikit-learn, start-up and
# precision (python -m bench), CIFAR-shaped models, Ray, RMIA, label issues against cleanlab, adapt.
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) -m bench
	$(PY) -m bench.cifar_shaped --out bench
	$(PY) -m bench.ray_overhead --out bench
	$(PY) -m bench.rmia
	$(PY) -m bench.label_issues
	$(PY) -m bench.adapt

# Wheels of the packages a lent GPU machine lacks (Python 3.12 with torch, not ours), into .whl/
# for bench/gpu_check.sh: carry .whl with the run. No dependencies are resolved (kornia's would pull
# a CUDA torch): the list is the closure of our imports minus what that machine has.
GPU_WHEELS := typer click shellingham rich markdown-it-py mdurl pygments kornia kornia_rs mnist1d \
	pydantic pydantic-core annotated-types typing-inspection typing-extensions annotated-doc
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q -d .whl --no-deps --only-binary=:all: --python-version 3.12 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any $(GPU_WHEELS)

clean:
	rm -rf $(VENV) runs .pytest_cache
