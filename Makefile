# make run   run the embedded default model on test/input into output/ (runtime venv)
# make test  dev venv, pytest, then the container test of both images: the default one
#            (fmc-uia:latest) and the PyTorch fallback one (WITH_TORCH=1, $(TORCH_IMAGE): every
#            case through --engine torch, and through --engine auto with an encoder ONNX
#            Runtime cannot load); the last line says "PASSED (python + container)"; without a
#            container engine the container test is skipped, the last line says "PARTIAL: ..."
#            and make test fails (non-zero exit)
# make test-python  the python tests only (an explicit partial run: exit 0 when they pass)
#            The dev venv is about 7.2 GB: PyPI's torch is a CUDA build (+0.5 GB Ray). Where the PyTorch
#            CPU wheel index is reachable, TORCH_INDEX=https://download.pytorch.org/whl/cpu
#            installs the CPU-only torch/torchvision instead (no CUDA libraries).
# make image build the image (scripts/build_image.sh; FMC_BASE_IMAGE applies): fmc-uia:latest,
#            ONNX Runtime only; `make image WITH_TORCH=1` builds $(TORCH_IMAGE) with the PyTorch
#            fallback (docs/image.md: sizes, and why the default image has none)
# make save  write dist/fmc-uia.tar.gz (+ dist/model.tar.gz from model_weights/)
# make submission VALIDATION=DIR  run the built image on DIR with the organisers' run line, write
#            dist/predictions.zip (for Codabench) and dist/fmc-uia.tar.gz + .sha256 (scripts/package_submission.sh)
# make lint  hadolint on the Dockerfile
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYTEST_ARGS ?= -q
TORCH_INDEX ?=
TORCH_IMAGE ?= fmc-uia:torch
WITH_TORCH ?= 0

.PHONY: run test test-python test-container image save submission lint venv dev-venv
.DEFAULT_GOAL := test

# The stamps record which requirements files the venv was last installed from, so a second
# `make` skips pip entirely until one of them changes.
$(VENV)/.runtime-stamp: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	@touch $@

$(VENV)/.dev-stamp: requirements.txt requirements-dev.txt requirements-ray.txt
	@echo "dev venv $(VENV): installing requirements-dev.txt and requirements-ray.txt, $(if $(TORCH_INDEX),torch from $(TORCH_INDEX),about 7.2 GB with" \
		"PyPI's torch (a CUDA build); TORCH_INDEX=https://download.pytorch.org/whl/cpu gets the CPU-only torch)" >&2
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH_INDEX),$(PY) -m pip install -q --index-url $(TORCH_INDEX) $$(grep -E '^(torch|torchvision)==' requirements-dev.txt))
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -r requirements-ray.txt
	@touch $@ $(VENV)/.runtime-stamp

venv: $(VENV)/.runtime-stamp
dev-venv: $(VENV)/.dev-stamp

run: $(VENV)/.runtime-stamp
	$(PY) -m inference --input test/input --output output

# The container test: exit 0 passed, 1 failed (or an engine is required and missing), 2 skipped.
# The default image, then the torch image (its build reuses every layer up to the torch one).
CONTAINER_TEST = if err=$$(scripts/container_engine.sh 2>&1 >/dev/null); then \
		{ PYTHON=$(PY) WITH_TORCH=0 test/run_test.sh && { $(call PYTEST,-m container); } \
		  && $(TORCH_CONTAINER_TEST); } || exit 1; \
	else \
		echo "$$err" >&2; \
		if [ "$$CI" = true ] || [ "$${REQUIRE_CONTAINER:-0}" = 1 ]; then \
			echo "ERROR: a container engine is required here (CI=true or REQUIRE_CONTAINER=1)" >&2; exit 1; \
		fi; \
		echo "SKIPPED: the container test (test/run_test.sh) did not run: no usable container engine." >&2; \
		echo "         Set CONTAINER_ENGINE, or run 'test/run_test.sh --local' to test without one." >&2; \
		exit 2; \
	fi

TORCH_CONTAINER_TEST = PYTHON=$(PY) FMC_IMAGE=$(TORCH_IMAGE) WITH_TORCH=1 test/run_test.sh --engine torch \
	&& PYTHON=$(PY) test/run_test.sh --image $(TORCH_IMAGE) --onnx-unloadable \
	&& ( export FMC_IMAGE=$(TORCH_IMAGE) FMC_EXPECT_TORCH=1; $(call PYTEST,-m container) )

test: $(VENV)/.dev-stamp
	@$(call PYTEST,-m "not slow and not container")
	@rc=0; ( $(CONTAINER_TEST) ) || rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "PASSED (python + container)"; \
	elif [ $$rc -eq 2 ]; then \
		echo "PARTIAL: python tests passed, container test SKIPPED: not a full pass ('make test-python' is the python-only run)"; \
		exit 2; \
	else echo "FAILED: the container test (exit $$rc)"; exit 1; fi

# pytest's exit 5 (nothing collected) means the test setup is broken: an error, not a pass.
PYTEST = rc=0; $(PY) -m pytest $(PYTEST_ARGS) $(1) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "ERROR: pytest collected no tests (broken test setup)" >&2; exit 1; fi; \
	[ $$rc -eq 0 ]

test-python: $(VENV)/.dev-stamp
	@$(call PYTEST,-m "not slow and not container")
	@echo "PASSED (python only: the container test was not run; 'make test' runs both)"

test-container: $(VENV)/.dev-stamp
	@$(CONTAINER_TEST)

image:
	WITH_TORCH=$(WITH_TORCH) scripts/build_image.sh $(if $(filter 1,$(WITH_TORCH)),$(TORCH_IMAGE))

save:
	scripts/save_image.sh --model model_weights

submission:
	@test -n "$(VALIDATION)" || { echo "usage: make submission VALIDATION=/path/to/validation" >&2; exit 2; }
	PYTHON=$(if $(wildcard $(PY)),$(PY),$(PYTHON)) scripts/package_submission.sh "$(VALIDATION)"

lint: $(VENV)/.dev-stamp
	$(VENV)/bin/hadolint Dockerfile
