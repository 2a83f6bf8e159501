# `make run`: set up, run the whole pipeline, say where the results are.
# `make test`: set up, run the test suite. `make lint`: ruff's linter and formatter check, and the layers contract
# (import-linter, pyproject.toml). `make mutation`: mutation testing, each module's score. All reuse .venv.
# `make benchmark-transfer`, `make benchmark-signals`, `make benchmark-multitask`, `make benchmark-federated`,
# `make benchmark-active-learning`, `make benchmark-scale`, `make benchmark-gpu-memory`, `make benchmark-faults benchmark-speed benchmark-mlflow`,
# `make benchmark-distill-compress`, `make benchmark-grad-accumulation`, `make benchmark-live-tensors`: the tables of
# docs/benchmarks.md.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Pins every package; torch==2.13.0 resolves to the local CPU wheel on a CPU-only machine.
CONSTRAINTS ?= constraints.txt

.PHONY: setup run test lint benchmark-transfer benchmark-signals benchmark-multitask benchmark-federated benchmark-federated-flower benchmark-active-learning \
	benchmark-scale benchmark-gpu-memory benchmark-faults benchmark-speed benchmark-mlflow benchmark-distill-compress \
	benchmark-grad-accumulation benchmark-live-tensors mutation

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev,flower]"
	touch $@

# First what killed stages left (a cached stage is not run, so would not clean up), then the pipeline. The compare
# stage prints the comparison when it runs; when dvc repro finds nothing to run (reports/summary.txt not newer than
# its start), the last one is printed instead: once either way.
run: setup
	@$(BIN)/python -m pipeline.tidy
	@started=$$(mktemp); PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro; status=$$?; \
	if [ $$status -eq 0 ] && [ ! reports/summary.txt -nt "$$started" ]; then echo; $(BIN)/python -m pipeline.compare; fi; \
	rm -f "$$started"; exit $$status
	@echo
	@echo "Results: reports/comparison.md, metrics/ (dvc metrics show), plots/ (dvc plots show), models/, data/prepared/"
	@echo "MLflow runs, models and the registry are in mlflow.db. Open the UI with the environment active"
	@echo "(source $(VENV)/bin/activate):"
	@echo "  mlflow ui --backend-store-uri sqlite:///mlflow.db   # then browse the link above"

# Two workers, a test file each at a time: the dvc repro tests take one core, the rest of the suite the other.
# --no-loadscope-reorder: files in conftest's order (the longest first), not xdist's (the most tests first).
test: setup
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# Mutation testing, outside make test: plants small bugs in the modules every result rests on ([tool.mutmut] in
# pyproject.toml) and prints each module's share the tests catch (docs/benchmarks.md; 15 to 20 minutes on two cores
# from scratch, then only what changed).
mutation: setup
	$(BIN)/python -m benchmarks.mutation --csv benchmark-mutation.csv

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache

# The transfer / fine-tuning / scratch table in docs/benchmarks.md (about 5 minutes on two cores).
benchmark-transfer: setup
	$(BIN)/python -m benchmarks.transfer_shots --csv benchmark-transfer.csv

# The 1-D signals table in docs/benchmarks.md: noise units and backbones on the target task.
benchmark-signals: setup
	$(BIN)/python -m benchmarks.signals --csv benchmark-signals.csv

# The multi-task against separate models tables in docs/benchmarks.md (under a minute on two cores).
benchmark-multitask: setup
	$(BIN)/python -m benchmarks.multitask_seeds --csv benchmark-multitask.csv

# The federated tables in docs/benchmarks.md: strategies against centralised, compression, the
# simulation's overhead for 10 and 100 clients, and SCAFFOLD against FedAvg and FedProx on the skewed
# partitions at two skews (about eight minutes on two cores).
benchmark-federated: setup
	$(BIN)/python -m benchmarks.federated_seeds --csv benchmark-federated.csv
	$(BIN)/python -m benchmarks.federated_overhead --csv benchmark-federated-overhead.csv
	for alpha in 0.1 0.5; do $(BIN)/python -m benchmarks.federated_seeds --compressions --dp-noise \
	  --set 'federated.partitions=[dirichlet, shards]' --set 'federated.strategies=[fedavg, fedprox, scaffold]' \
	  --set prepare.federated.dirichlet_alpha=$$alpha --csv benchmark-federated-scaffold-$$alpha.csv \
	  --log benchmark-federated-scaffold-$$alpha.log || exit 1; done

# docs/benchmarks.md "Federated learning on Flower": the flower engine against the in-process one, the same rounds
# (FedAvg, FedProx, FedAdam, 3 seeds) and their cost at 10, 100 and 1,000 clients (about 25 minutes on two cores).
benchmark-federated-flower: setup
	$(BIN)/python -m benchmarks.federated_flower --csv benchmark-federated-flower.csv

# The active-learning tables in docs/benchmarks.md: every strategy against random, with and
# without pseudo-labels, over three seeds (about two and a half minutes on two cores).
benchmark-active-learning: setup
	$(BIN)/python -m benchmarks.active_learning_seeds --csv benchmark-active-learning.csv

# The GPU path and scale tables in docs/benchmarks.md: the pipeline's training path against a hand-written
# loop, federated rounds per second for 10, 100 and 1,000 clients, active-learning pool scoring per
# strategy. Each runs on the GPU when there is one, else on the CPU (about two minutes on two cores).
benchmark-scale: setup
	$(BIN)/python -m benchmarks.stage_throughput --csv benchmark-stage-throughput.csv
	$(BIN)/python -m benchmarks.federated_scale --csv benchmark-federated-scale.csv
	$(BIN)/python -m benchmarks.active_scoring --csv benchmark-active-scoring.csv

# The memory estimator against torch.cuda's allocator (full fine-tuning, LoRA, transfer). Needs a CUDA GPU;
# without one it says so and stops (`python -m benchmarks.gpu_memory --device cpu` checks the CPU side).
benchmark-gpu-memory: setup
	$(BIN)/python -m benchmarks.gpu_memory --csv benchmark-gpu-memory.csv

# The faults table in docs/benchmarks.md: each fault a user tries, its exit code and line (about five minutes).
benchmark-faults: setup
	$(BIN)/python -m benchmarks.faults --csv benchmark-faults.csv

# Speed on small machines (docs/benchmarks.md, issue 21): threads idle and busy, the small-model inner loop against a
# hand-written one, federated clients one after another and batched (about six minutes).
benchmark-speed: setup
	$(BIN)/python -m benchmarks.threads --csv benchmark-threads.csv
	$(BIN)/python -m benchmarks.inner_loop --csv benchmark-inner-loop.csv
	$(BIN)/python -m benchmarks.federated_scale --csv benchmark-federated-scale.csv

# What MLflow-native results cost the default pipeline: the MLflow Model per run, system metrics, the registry
# against the commit before them (six whole pipelines and four compare stages: about 18 minutes on two cores).
benchmark-mlflow: setup
	$(BIN)/python -m benchmarks.mlflow_costs --before 834c57e --csv benchmark-mlflow.csv

# Distillation and compression against size and latency (docs/benchmarks.md, issue 23): 3 seeds, all labels and
# 10 % of them for the students (about three minutes on two cores).
benchmark-distill-compress: setup
	$(BIN)/python -m benchmarks.distill_compress_seeds --csv benchmark-distill-compress.csv

# What counting live tensors costs a CPU training step, and the peak it measures (docs/benchmarks.md, issue 39; a minute).
benchmark-live-tensors: setup
	$(BIN)/python -m benchmarks.live_tensors --csv benchmark-live-tensors.csv

# Gradient accumulation at a fixed effective batch, with its figure (docs/benchmarks.md, issue 24; under two minutes).
benchmark-grad-accumulation: setup
	$(BIN)/python -m benchmarks.grad_accumulation --figure docs/figures/gradient-accumulation.png \
	  --csv benchmark-grad-accumulation.csv
