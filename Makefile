# Two commands do everything on a fresh machine:
#   make demo   -- set up .venv, build the extension, run the main job end to end (demo.py: teachers,
#                  Third-only vs Ego-Exo pre-training, fine-tuning, scores, figures) on generated data (CPU)
#   make test   -- same set-up, then the whole test suite
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# The CUDA kernels are compiled whenever nvcc and a CUDA build of torch are present, even
# without a GPU; EGOEXO_CPU_ONLY=1 forces a CPU-only build.
export CUDA_HOME ?= /usr/local/cuda
export TORCH_CUDA_ARCH_LIST ?= 8.0;9.0+PTX
export MAX_JOBS ?= 2

EXT_STAMP := $(VENV)/.ext-built
SOURCES   := $(wildcard csrc/*.cpp csrc/*.cu csrc/*.h)

.PHONY: setup demo test bench clean

setup: $(EXT_STAMP)

$(VENV)/.deps-installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(EXT_STAMP): $(VENV)/.deps-installed setup.py $(SOURCES)
	$(PY) -m pip install -q --no-build-isolation --no-deps -e .
	touch $@

# The main job end to end on its embedded default (demo.py): generated data, CPU, a fresh run.
demo: setup
	$(PY) demo.py --out_dir=runs/demo --fresh=true

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) bench/bench_ops.py
	$(PY) bench/bench_loader.py
	$(PY) bench/bench_detections.py
	$(PY) bench/bench_score_teachers.py
	$(PY) bench/bench_train.py --crop 112 --batch 2 --warmup 1 --repeats 5 --log-every 2 --intervals 2

clean:
	rm -rf build *.egg-info _egoexo_C*.so $(EXT_STAMP)
