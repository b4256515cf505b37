#!/usr/bin/env bash
# Prints the container engine command line to use, e.g. "docker" or "podman --runtime runc",
# or says on stderr why none is usable and exits 1.
#   scripts/container_engine.sh          the command line
#   scripts/container_engine.sh --kind   "docker" or "podman"
# CONTAINER_ENGINE names the engine; unset, the first usable of docker and podman is taken.
# With podman, `--runtime runc` is added (crun fails on these machines, see CONTAINERS.md);
# PODMAN_RUNTIME picks another runtime, PODMAN_RUNTIME= (empty) keeps podman's default.
set -euo pipefail

if [ -n "${CONTAINER_ENGINE:-}" ]; then candidates=("$CONTAINER_ENGINE"); else candidates=(docker podman); fi
reasons=()
for engine in "${candidates[@]}"; do
    if ! command -v "$engine" >/dev/null 2>&1; then
        reasons+=("$engine: not installed")
        continue
    fi
    cmd=("$engine")
    kind=docker
    if "$engine" --version 2>/dev/null | grep -qi podman; then   # podman, or docker aliased to it
        kind=podman
        runtime=${PODMAN_RUNTIME-runc}
        if [ -n "$runtime" ] && command -v "$runtime" >/dev/null 2>&1; then
            cmd+=(--runtime "$runtime")
        fi
    fi
    if "${cmd[@]}" info >/dev/null 2>&1; then
        if [ "${1:-}" = "--kind" ]; then echo "$kind"; else echo "${cmd[*]}"; fi
        exit 0
    fi
    reasons+=("$engine: installed, but '${cmd[*]} info' fails (no engine running or no permission)")
done
printf '%s\n' "no usable container engine:" "${reasons[@]/#/  - }" >&2
exit 1
