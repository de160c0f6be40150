# `make run` and `make test` set themselves up on first use: they create .venv
# with Python 3.12 (found on PATH or under pyenv) and install the pinned set.
SHELL := /bin/bash
# The first Python 3.12 that actually runs (a pyenv shim may exist but refuse).
PYTHON312 ?= $(shell for p in $$(command -v python3.12) $$(ls -1d $$HOME/.pyenv/versions/3.12.*/bin/python3.12 2>/dev/null); do "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test bench sample-efficiency race clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@if [ -z "$(PYTHON312)" ]; then echo "lsc needs Python 3.12 (python3.12 on PATH or under pyenv); set PYTHON312=/path/to/python3.12"; exit 1; fi
	$(PYTHON312) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test,warp]'
	touch $@

run: $(VENV)/.installed
	$(PY) -m experiments.halfcheetah

test: $(VENV)/.installed
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m benchmarks.rollout
	$(PY) -m benchmarks.pipeline --envs halfcheetah

# The CPU-sized sample-efficiency table on all 15 tasks with all seven methods
# (experiments/RESULTS.md): 10 seeds on the fine-tuning tasks, 5 on the locomotion tasks.
# About 15 h on 2 cores; every stage resumes, so rerunning after an interruption continues.
# The committed tables were run method by method with the same commands and merged
# (experiments.sample_efficiency merges runs of one env).
ALL_METHODS := latent_pgpe,latent_then_param,param_pgpe,ppo,sac,td3,ddpg
SE_RUNS := runs/se-mountain_car runs/se-reacher runs/se-hopper runs/se-halfcheetah
sample-efficiency: $(VENV)/.installed
	$(PY) -m experiments.mountain_car --seeds 10 --methods $(ALL_METHODS) --out runs/se-mountain_car
	$(PY) -m experiments.reacher --seeds 10 --tasks reach_ne,reach_nw,reach_sw,reach_se --methods $(ALL_METHODS) --out runs/se-reacher
	$(PY) -m experiments.hopper --seeds 5 --tasks forward,backward,jump --methods $(ALL_METHODS) --out runs/se-hopper
	$(PY) -m experiments.halfcheetah --seeds 5 --tasks forward,backward,frontflip,backflip --methods $(ALL_METHODS) --out runs/se-halfcheetah
	$(PY) -m experiments.sample_efficiency $(SE_RUNS) --tag all

# The fair race (experiments/RACE.md): per env, the symmetric tuning, then every method
# from the reward-chosen start and the dataset's readers from the mean code (tuned for
# it); each env's records kept (experiments/results/race_runs/); then the table from
# them.  Tens of hours on 2 cores; every stage and sweep cell resumes.
RACE_ENVS := mountain_car reacher hopper halfcheetah
LATENT_METHODS := latent_pgpe,latent_then_param,start_param_pgpe,random_subspace_pgpe,pca_subspace_pgpe
race: $(VENV)/.installed
	for env in $(RACE_ENVS); do \
	  $(PY) -m experiments.race_tune $$env && \
	  $(PY) -m experiments.race_tune $$env --start mean && \
	  $(PY) -m experiments.$$env --preset race --out runs/race-$$env && \
	  $(PY) -m experiments.$$env --preset race_mean --methods $(LATENT_METHODS) --out runs/race-$$env-mean && \
	  $(PY) -m experiments.race --keep runs/race-$$env runs/race-$$env-mean || exit 1; \
	done
	$(PY) -m experiments.race $(foreach env,$(RACE_ENVS),experiments/results/race_runs/race-$(env).json experiments/results/race_runs/race-$(env)-mean.json) --tag all

clean:
	rm -rf $(VENV) runs
