#!/usr/bin/env bash
# Builds the inference image from the repository's Dockerfile.
#   scripts/build_image.sh [TAG]            (default: $FMC_IMAGE, else fmc-uia:latest, or
#                                            fmc-uia:torch with WITH_TORCH=1)
# Environment:
#   CONTAINER_ENGINE  docker or podman (see scripts/container_engine.sh)
#   FMC_BASE_IMAGE    overrides the Dockerfile's BASE_IMAGE (CI: localhost/base:bookworm)
#   WITH_TORCH=1      also installs the PyTorch fallback engine (requirements-torch.txt:
#                     torch 2.9.1, PyPI's CUDA 12.8 build; ~4.6 GB more, docs/image.md)
#   PIP_CA_BUNDLE     CA bundle for pip inside the build (default: $PIP_CERT or the
#                     `cert` of /etc/pip.conf)
#   BUILD_ARGS        extra arguments for the engine's build command
set -euo pipefail
cd "$(dirname "$0")/.."

default_tag=fmc-uia:latest
[ "${WITH_TORCH:-0}" != 1 ] || default_tag=fmc-uia:torch
tag=${1:-${FMC_IMAGE:-$default_tag}}
read -ra engine <<<"$(scripts/container_engine.sh)"
kind=$(scripts/container_engine.sh --kind)

args=(build -t "$tag")
[ -z "${FMC_BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$FMC_BASE_IMAGE")
[ -z "${WITH_TORCH:-}" ] || args+=(--build-arg "WITH_TORCH=$WITH_TORCH")
if [ "$kind" = podman ]; then
    # Docker image format (keeps every Dockerfile instruction) and the host's network.
    args+=(--format docker --network host)
fi
# The CA bundle pip trusts here (a TLS-intercepting proxy's, CONTAINERS.md step 4) goes to
# the build as the secret pip_ca: PIP_CA_BUNDLE, else PIP_CERT, else /etc/pip.conf's cert.
ca=${PIP_CA_BUNDLE:-${PIP_CERT:-$(sed -n 's/^[[:space:]]*cert[[:space:]]*=[[:space:]]*//p' /etc/pip.conf 2>/dev/null | head -n 1)}}
if [ -n "$ca" ] && [ -f "$ca" ]; then
    args+=(--secret "id=pip_ca,src=$ca")
fi
# shellcheck disable=SC2206  # BUILD_ARGS is a word list on purpose
[ -z "${BUILD_ARGS:-}" ] || args+=(${BUILD_ARGS})

echo "building $tag with: ${engine[*]} ${args[*]} ." >&2
start=$(date +%s)
"${engine[@]}" "${args[@]}" .
echo "built $tag in $(( $(date +%s) - start )) s" >&2
