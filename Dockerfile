# FMC_UIA 2026 inference image: `python -m inference` reads /input, writes /output.
#
# One image for GPU and CPU, built the same way everywhere: a slim Debian 12 base, Debian's
# Python 3.11, and the CUDA 12.8 / cuDNN 9.10 libraries from NVIDIA's pip wheels
# (requirements-cuda.txt: onnxruntime-gpu[cuda,cudnn]==1.26.0, versions pinned), loaded by
# onnxruntime.preload_dlls(). No CUDA base image: CI builds this very Dockerfile (from
# localhost/base:bookworm, the same Debian 12 made with debootstrap) and checks at build time
# that every library of the CUDA provider resolves (scripts/check_cuda_libs.py).
# Host for GPU runs: NVIDIA driver >= 525.60.13 (CUDA 12 minor-version compatibility; 570+
# is CUDA 12.8's own) and the NVIDIA container toolkit (--gpus all). Without a usable GPU
# the same image runs on ONNX Runtime's CPU provider.
#
# Users: started as root (the organisers' `docker run --gpus all --rm -v IN:/input/:ro
# -v OUT:/output IMAGE`), scripts/entrypoint.sh steps down to the owner of /output before
# Python starts; started with --user UID:GID (Grand-Challenge), it runs as that user.
ARG BASE_IMAGE=debian:bookworm-slim

# ---- stage 1: the application files, world-readable ------------------------------------
# The whole (whitelisted, see .dockerignore) context goes to this throw-away stage, so a
# missing model folder is a warning here rather than a failed COPY; the final stage takes
# only the finished folders, one layer each.
FROM ${BASE_IMAGE} AS app
COPY . /src/
RUN test -f /src/inference/__init__.py \
        || { echo "ERROR: the inference/ package is missing from the build context" >&2; exit 1; }; \
    mkdir -p /opt/app \
    && for d in contract inference network biometry model_weights; do \
        if [ -d "/src/$d" ]; then cp -a "/src/$d" /opt/app/; \
        else echo "WARNING: $d/ is missing from the build context; the image has none" >&2; \
             mkdir "/opt/app/$d"; fi; \
    done \
    && if [ ! -f /opt/app/model_weights/manifest.json ]; then \
        echo "WARNING: no model_weights/manifest.json: the image has no default model" >&2; \
    fi \
    && mkdir /opt/app/scripts \
    && cp /src/scripts/entrypoint.sh /src/scripts/check_cuda_libs.py /opt/app/scripts/ \
    && chmod -R a+rX,go-w /opt/app \
    && chmod 0755 /opt/app/scripts/entrypoint.sh

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
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# Python from apt only when the base lacks it (debian:bookworm-slim has none; the CI base has
# it, from the same Debian 12 packages). setpriv (util-linux) is in every Debian base.
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
# requirements-cuda.txt adds NVIDIA's CUDA/cuDNN wheels (~1.8 GB to download, ~2.4 GB
# installed) to requirements.txt.
COPY requirements.txt requirements-cuda.txt /tmp/req/
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && pip install -r /tmp/req/requirements-cuda.txt \
    && python -c "import numpy, cv2, SimpleITK, pydantic, tqdm, onnxruntime"
# Optional PyTorch fallback engine (WITH_TORCH=1; the ARG is declared where it is used, so
# changing it rebuilds only from here). torch 2.9.1 from PyPI is a CUDA 12.8 build whose NVIDIA
# pins are the ones of requirements-cuda.txt (CUDA runtime, NVRTC, cuBLAS, cuFFT, cuRAND,
# nvJitLink, cuDNN 9.10.2.21), plus the libraries only torch uses (cuSOLVER, cuSPARSE,
# cuSPARSELt, NCCL, NVSHMEM, CUPTI, cuFile, NVTX): ONNX Runtime and the fallback share one set
# of CUDA 12 libraries. Both files are resolved together, so a torch that asked for other
# NVIDIA versions (PyPI's newer torch is a CUDA 13 build whose cuDNN would install over
# this one) fails here instead of replacing them; the library check at the end checks
# torch's CUDA libraries too.
ARG WITH_TORCH=0
COPY requirements-torch.txt /tmp/req/
RUN --mount=type=secret,id=pip_ca \
    if [ -s /run/secrets/pip_ca ]; then export PIP_CERT=/run/secrets/pip_ca; fi \
    && if [ "${WITH_TORCH}" = "1" ]; then \
        pip install -r /tmp/req/requirements-cuda.txt -r /tmp/req/requirements-torch.txt \
        && python -c "import torch, segmentation_models_pytorch, timm, onnx"; \
    fi \
    && rm -rf /tmp/req
# Which variant this is (tests/test_container_torch.py reads it; `docker image inspect`).
LABEL org.fmc-uia.with-torch="${WITH_TORCH}"

# The image's own unprivileged user runs it when there is no output folder to take the owner
# from (see scripts/entrypoint.sh); any other uid works too (--user 4242:4242): everything
# under /opt is world-readable and nothing is written outside /output and /tmp.
ARG APP_UID=1000
ARG APP_GID=1000
RUN if ! getent group "${APP_GID}" >/dev/null; then groupadd --gid "${APP_GID}" app; fi \
    && if ! getent passwd "${APP_UID}" >/dev/null; then \
        useradd --uid "${APP_UID}" --gid "${APP_GID}" --no-create-home --home-dir /tmp \
            --shell /usr/sbin/nologin app; \
    fi

WORKDIR /opt/app
COPY --from=app /opt/app/ /opt/app/
# Bytecode compiled at build time: a per-case cold start never compiles (and could not
# write next to the sources as a non-root user anyway). Then the CUDA provider's libraries
# are checked: a build whose CUDA stack is incomplete fails here, GPU or not.
RUN python -m compileall -q --invalidation-mode unchecked-hash /opt/app \
    && python /opt/app/scripts/check_cuda_libs.py

# No USER: the entrypoint starts as root only to step down to the owner of /output (or runs
# as the --user given). HEALTHCHECK is meaningless for a run-to-completion batch job.
ENTRYPOINT ["/opt/app/scripts/entrypoint.sh"]
