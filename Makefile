# xmic — the README's commands. Every target creates the virtual environment when it is missing.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= dev,hands
BIN := $(VENV)/bin
# Python writes the bytecode of each module it imports (what pip's install would write, minus the modules never
# imported), also where the environment says not to: the demo and the tests start many processes, and without it
# each one compiles torch and transformers from source again (about 15 s a process on 2 cores)
unexport PYTHONDONTWRITEBYTECODE

# reproduce-tableN: the paper's table N with the paper's numbers beside ours (see README).
CACHE ?= cache
SEEDS ?=
PRESET ?= authors-code
REPRO_OUT ?= reproduce
EPIC_ROOT ?=
EGO4D_ROOT ?=
EGTEA_ROOT ?=
HOA_DIR ?=
# hand boxes of the groups a table extracts: HANDS=ego4d=mediapipe,egtea=yolo,epic=epic-hoa (default: hoa for the
# datasets HOA_DIR gives a folder, HOA_DIR=DIR (EPIC) or HOA_DIR=epic=DIR,ego4d=DIR,egtea=DIR; else mediapipe); HAND_MODEL=.../hand_landmarker.task (default: env XMIC_HAND_MODEL, or the file in
# MODEL_DIR); YOLO_WEIGHTS for yolo; ALLOW_NO_HANDS=1 lets X-MIC rows and Table 4 use groups without hand boxes
HANDS ?=
HAND_MODEL ?=
YOLO_WEIGHTS ?=
ALLOW_NO_HANDS ?=
MODEL_DIR ?=
SPLIT_FILES ?=
SECOND_ENCODER ?=
EPOCHS ?=
PAPER_NUMBERS ?=
DEMO ?=
DEMO_OUT ?= demo_out
# several processes (docs/cluster.md): JOBS=K trains K runs at once; SHARD=I/N is share I of N for reproduce-shard;
# TABLE=all|N|N,M for reproduce-plan, reproduce-shard and reproduce-assemble
JOBS ?=
SHARD ?=
TABLE ?= all

.PHONY: install test test-yolo lint format bench demo clean reproduce-all reproduce-plan reproduce-shard \
	reproduce-assemble \
	reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6 reproduce-table7

$(BIN)/xmic: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --no-compile "$(TORCH)"
	@# the rest with uv (parallel downloads, no resolver backtracking; it keeps the torch above, which satisfies
	@# the project's range); plain pip when uv cannot be had. Bytecode is written on first import (above), not here.
	($(BIN)/python -m pip install --no-compile -q uv && $(BIN)/uv pip install --python $(BIN)/python -e ".[$(EXTRAS)]") \
		|| $(BIN)/python -m pip install --no-compile -e ".[$(EXTRAS)]"
	touch $(BIN)/xmic

install: $(BIN)/xmic

test: $(BIN)/xmic
	$(BIN)/python -m pytest -q

# ultralytics needs torchvision, which does not install beside the CPU torch 2.13: a separate venv in /tmp
test-yolo:
	bash scripts/test_yolo.sh

lint: $(BIN)/xmic
	$(BIN)/ruff check xmic tests benchmarks
	$(BIN)/ruff format --check xmic tests benchmarks

format: $(BIN)/xmic
	$(BIN)/ruff format xmic tests benchmarks
	$(BIN)/ruff check --fix xmic tests benchmarks

REPRODUCE_FLAGS = --cache "$(if $(DEMO),$(DEMO_OUT)/cache,$(CACHE))" $(if $(SEEDS),--seeds "$(SEEDS)",) \
	--preset "$(PRESET)" --out "$(REPRO_OUT)" --epic-root "$(EPIC_ROOT)" --ego4d-root "$(EGO4D_ROOT)" \
	--egtea-root "$(EGTEA_ROOT)" --hoa-dir "$(HOA_DIR)" --model-dir "$(MODEL_DIR)" \
	--hands "$(HANDS)" --hand-model "$(HAND_MODEL)" --yolo-weights "$(YOLO_WEIGHTS)" \
	$(if $(ALLOW_NO_HANDS),--allow-no-hands,) \
	--split-files "$(SPLIT_FILES)" --second-encoder "$(SECOND_ENCODER)" --paper-numbers "$(PAPER_NUMBERS)" \
	$(if $(EPOCHS),--epochs $(EPOCHS),) $(if $(DEMO),--demo,) $(if $(filter quick,$(DEMO)),--demo-quick,)

reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6 reproduce-table7: reproduce-table%: $(BIN)/xmic
	$(BIN)/xmic reproduce --table $* $(REPRODUCE_FLAGS) $(if $(JOBS),--jobs $(JOBS),)

# the runs of TABLE, one line each with its `xmic train` command (SHARD=I/N: that share only)
reproduce-plan: $(BIN)/xmic
	$(BIN)/xmic reproduce --table $(TABLE) --plan $(REPRODUCE_FLAGS) $(if $(SHARD),--shard $(SHARD),)

# share SHARD=I/N of TABLE's runs; start one per host / GPU / terminal (SHARD may be left out under a SLURM array or
# torchrun), then reproduce-assemble
reproduce-shard: $(BIN)/xmic
	$(BIN)/xmic reproduce --table $(TABLE) $(REPRODUCE_FLAGS) $(if $(SHARD),--shard $(SHARD),) \
		$(if $(JOBS),--jobs $(JOBS),)

# TABLE's tables from the finished runs, training nothing; fails naming the runs that are missing
reproduce-assemble: $(BIN)/xmic
	$(BIN)/xmic reproduce --table $(TABLE) --assemble $(REPRODUCE_FLAGS)

# every table in turn; later tables reuse the runs of earlier ones
reproduce-all: reproduce-table1 reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 \
	reproduce-table6 reproduce-table7

demo: $(BIN)/xmic
	$(BIN)/xmic demo --out $(DEMO_OUT)

bench: $(BIN)/xmic
	$(BIN)/xmic bench train --json

clean:
	rm -rf $(VENV) .pytest_cache
