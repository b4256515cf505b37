#!/usr/bin/env bash
# Builds the inference image from the repository's Dockerfile.
#   scripts/build_image.sh [TAG]            (default: $FMC_IMAGE, else fmc-uia:latest)
# Environment:
#   CONTAINER_ENGINE  docker or podman (see scripts/container_engine.sh)
#   FMC_BASE_IMAGE    overrides the Dockerfile's BASE_IMAGE (CI: localhost/base:bookworm)
#   WITH_TORCH=1      also installs the PyTorch fallback engine (requirements-torch.txt)
#   BUILD_ARGS        extra arguments for the engine's build command
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${1:-${FMC_IMAGE:-fmc-uia:latest}}
read -ra engine <<<"$(scripts/container_engine.sh)"
kind=$(scripts/container_engine.sh --kind)

args=(build -t "$tag")
[ -z "${FMC_BASE_IMAGE:-}" ] || args+=(--build-arg "BASE_IMAGE=$FMC_BASE_IMAGE")
[ -z "${WITH_TORCH:-}" ] || args+=(--build-arg "WITH_TORCH=$WITH_TORCH")
if [ "$kind" = podman ]; then
    # Docker image format (keeps every Dockerfile instruction), the host's network, and the
    # host's pip settings + CA bundle for the build only (CONTAINERS.md, step 4).
    args+=(--format docker --network host)
    for f in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt; do
        [ -f "$f" ] && args+=(-v "$f:$f:ro")
    done
fi
# shellcheck disable=SC2206  # BUILD_ARGS is a word list on purpose
[ -z "${BUILD_ARGS:-}" ] || args+=(${BUILD_ARGS})

echo "building $tag with: ${engine[*]} ${args[*]} ." >&2
start=$(date +%s)
"${engine[@]}" "${args[@]}" .
echo "built $tag in $(( $(date +%s) - start )) s" >&2
