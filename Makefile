# `make book`: execute every notebook with the `book` profile, then build the HTML.
# `make test`: unit tests and every notebook (quick defaults) under nbval.
# Both create .venv from requirements.txt when it is missing or older than it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROFILE ?= book

.PHONY: book test venv benchmark sweep clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade -q pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	@touch $@

# the Part II runs first, one single-threaded job per core (book/sweep.py), then every chapter (loading them)
book: venv
	$(PY) book/sweep.py --profile $(PROFILE)
	$(PY) book/build.py --profile $(PROFILE)

# one BLAS/OpenMP thread (book/build.py says why): robust on a busy machine, about as fast on a quiet one
test: venv
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-1} $(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider -q

# train the Part II runs of PROFILE ahead of `make book` as submitit jobs: SWEEP_ARGS="--executor slurm --partition gpu ..."
sweep: venv
	$(PY) book/sweep.py --profile $(PROFILE) $(SWEEP_ARGS)

benchmark: venv
	$(PY) benchmarks/lif_step.py

clean:
	rm -rf _build
