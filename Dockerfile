# FMC_UIA 2026 inference image: `python -m inference` reads /input, writes /output.
#
# Base image: CUDA 12.8.1 runtime + cuDNN 9.8 on Ubuntu 24.04. onnxruntime-gpu 1.26.0 is
# built for CUDA 12.8 (its build_and_package_info.py) and cuDNN 9, and loads libcudart.so.12,
# libcublas(Lt).so.12, libcufft.so.11, libcurand.so.10 and libcudnn.so.9 from the system.
# Host driver for GPU runs: >= 525.60.13 (Linux), through CUDA 12 minor-version
# compatibility; CUDA 12.8 Update 1 itself ships with 570.124.06. The image sets
# NVIDIA_DISABLE_REQUIRE=1 so that the NVIDIA container toolkit does not refuse drivers
# 525..569 (the base image's NVIDIA_REQUIRE_CUDA says cuda>=12.8). Without a usable GPU
# (no --gpus, older driver) the runtime runs on ONNX Runtime's CPU provider.
#
# Any Debian/Ubuntu image works as BASE_IMAGE (Python is installed from apt only when it is
# missing); CI builds from localhost/base:bookworm (Debian 12 + python3, see CONTAINERS.md).
ARG BASE_IMAGE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu24.04

# ---- stage 1: the application files, world-readable ------------------------------------
# The whole (whitelisted, see .dockerignore) context goes to this throw-away stage, so a
# missing model folder is a warning here rather than a failed COPY; the final stage takes
# only the finished folders, one layer each.
FROM ${BASE_IMAGE} AS app
COPY . /src/
RUN test -f /src/inference/__init__.py \
        || { echo "ERROR: the inference/ package is missing from the build context" >&2; exit 1; }; \
    mkdir -p /opt/app \
    && for d in contract inference network model_weights; do \
        if [ -d "/src/$d" ]; then cp -a "/src/$d" /opt/app/; \
        else echo "WARNING: $d/ is missing from the build context; the image has none" >&2; \
             mkdir "/opt/app/$d"; fi; \
    done \
    && if [ ! -f /opt/app/model_weights/manifest.json ]; then \
        echo "WARNING: no model_weights/manifest.json: the image has no default model" >&2; \
    fi \
    && chmod -R a+rX,go-w /opt/app

# ---- stage 2: the image -------------------------------------------------------------------
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="fmc-uia" \
      org.opencontainers.image.description="FMC_UIA 2026 multi-task ultrasound inference (ONNX Runtime; optional PyTorch fallback)"

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    PYTHONPATH=/opt/app \
    HOME=/tmp \
    FMC_MODEL_DIR=/opt/app/model_weights \
    NVIDIA_DISABLE_REQUIRE=1

# Python from apt only when the base lacks it (the CUDA image has none; the CI base has it).
RUN if ! python3 -m venv /opt/venv >/dev/null 2>&1; then \
        rm -rf /opt/venv \
        && apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/* \
        && python3 -m venv /opt/venv; \
    fi

# Dependency layers before the code: they are rebuilt only when a requirements file changes.
# Behind a TLS-intercepting proxy, pass its CA bundle as the build secret `pip_ca`
# (scripts/build_image.sh does when the host's pip is configured with one); nothing of it
# stays in the image.
COPY requirements.txt /tmp/req/
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install -r /tmp/req/requirements.txt \
    && python -c "import numpy, cv2, SimpleITK, pydantic, tqdm, onnxruntime"
# Optional PyTorch fallback engine (WITH_TORCH=1; each ARG is declared where it is used, so
# changing it rebuilds only from there). PyPI's torch 2.14.1 on x86_64 is a CUDA 13.0 build
# (+ ~4 GB of nvidia-*-cu13 wheels; its GPU path needs driver >= 580, else it runs on the
# CPU); it must never share a process with ONNX Runtime's CUDA 12 provider. TORCH_INDEX_URL
# may name another wheel index (e.g. PyTorch's CPU one) when the build can reach it.
ARG WITH_TORCH=0
ARG TORCH_INDEX_URL=""
COPY requirements-torch.txt /tmp/req/
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && if [ "${WITH_TORCH}" = "1" ]; then \
        pip install ${TORCH_INDEX_URL:+--extra-index-url "${TORCH_INDEX_URL}"} \
            -r /tmp/req/requirements.txt -r /tmp/req/requirements-torch.txt \
        && python -c "import torch, segmentation_models_pytorch, timm"; \
    fi \
    && rm -rf /tmp/req

# Fixed non-root user; the image runs the same under any other uid (--user 4242:4242):
# everything under /opt is world-readable and nothing is written outside /output and /tmp.
ARG APP_UID=1000
ARG APP_GID=1000
RUN if ! getent group "${APP_GID}" >/dev/null; then groupadd --gid "${APP_GID}" app; fi \
    && if ! getent passwd "${APP_UID}" >/dev/null; then \
        useradd --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home --home-dir /tmp \
            --shell /usr/sbin/nologin app; \
    fi

WORKDIR /opt/app
COPY --from=app /opt/app/contract/ contract/
COPY --from=app /opt/app/network/ network/
COPY --from=app /opt/app/model_weights/ model_weights/
COPY --from=app /opt/app/inference/ inference/
# Bytecode compiled at build time: a per-case cold start never compiles (and could not
# write next to the sources as a non-root user anyway).
RUN python -m compileall -q --invalidation-mode unchecked-hash contract network inference

USER ${APP_UID}:${APP_GID}
ENTRYPOINT ["/opt/venv/bin/python", "-m", "inference"]
