#!/usr/bin/env bash
# The upload step in one command: run the built image on a validation folder with the organisers'
# own run line, zip its output for the Codabench format check, and save the image with its sha256.
#   scripts/package_submission.sh [--image TAG] [--out DIR] [--no-save] VALIDATION_DIR
#     VALIDATION_DIR  a folder in the challenge layout (VALIDATION_DIR/csv_files/*.csv + images)
#     --image TAG     the built image (default: $FMC_IMAGE, else fmc-uia:latest)
#     --out DIR       where everything goes (default: dist/):
#                       DIR/output/                the run's output folder (replaced on each run)
#                       DIR/output.log             the run's console output
#                       DIR/predictions.zip        = cd DIR/output && zip -r predictions.zip . (without
#                                                  the run's .fmc-* bookkeeping): upload it to Codabench
#                       DIR/NAME.tar.gz            the saved image (scripts/save_image.sh): send it
#                       DIR/NAME.tar.gz.sha256     its sha256 (check: cd DIR && sha256sum -c NAME.tar.gz.sha256)
#     --no-save       skip saving the image (the zip only)
# The run line is the organisers' `docker run --gpus all --rm -v VALIDATION:/input/:ro -v OUT:/output
# IMAGE`, with --gpus all (podman: --device nvidia.com/gpu=all) only where a GPU is visible.
# Environment: CONTAINER_ENGINE (docker or podman), PYTHON (default .venv/bin/python, else python3).
# Exit status: 0 done; 1 the image is missing, the run failed or the packaging failed; 2 usage.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "ERROR: $1" >&2; exit "${2:-1}"; }

image=${FMC_IMAGE:-fmc-uia:latest}
out=dist
save=1
validation=""
while [ $# -gt 0 ]; do
    case "$1" in
        --image) image=${2:?--image needs a tag}; shift 2 ;;
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --no-save) save=0; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "ERROR: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) [ -z "$validation" ] || { echo "ERROR: one VALIDATION_DIR only (got $validation and $1)" >&2; exit 2; }
           validation=$1; shift ;;
    esac
done
[ -n "$validation" ] || { echo "ERROR: VALIDATION_DIR is required" >&2; usage >&2; exit 2; }
[ -d "$validation/csv_files" ] || die "$validation/csv_files is not a folder: VALIDATION_DIR must be in the challenge layout" 2

if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif [ -x .venv/bin/python ]; then python=.venv/bin/python
else python=python3; fi

engine_line=$(scripts/container_engine.sh) || die "no usable container engine (see above)"
read -ra engine <<<"$engine_line"
kind=$(scripts/container_engine.sh --kind)
"${engine[@]}" image inspect "$image" >/dev/null 2>&1 || die "no image $image; build it first: scripts/build_image.sh $image"

gpu_opts=()
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    if [ "$kind" = podman ]; then gpu_opts=(--device nvidia.com/gpu=all); else gpu_opts=(--gpus all); fi
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out/predictions.zip"  # never leave an older archive looking like this run's
input=$(cd "$validation" && pwd)
# A fresh folder made here (755, the caller's), as the organisers' mkdir would: the image starts as
# root and steps down to the folder's owner. It replaces DIR/output only once the run succeeded.
staging=$(mktemp -d "$out/.output.XXXXXX")
trap 'rm -rf "$staging"' EXIT
chmod 755 "$staging"
run_line=("${engine[@]}" run "${gpu_opts[@]}" --rm -v "$input:/input/:ro" -v "$staging:/output" "$image")
echo "run: ${run_line[*]}" >&2
start=$SECONDS
rc=0
"${run_line[@]}" >"$out/output.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    echo "FAIL: the run exited with $rc after $((SECONDS - start)) s; its log ($out/output.log) ends:" >&2
    tail -n 15 "$out/output.log" | sed 's/^/    /' >&2
    exit 1
fi
rm -rf "$out/output"
mv "$staging" "$out/output"
echo "ok   the run finished in $((SECONDS - start)) s: $out/output" >&2

"$python" scripts/zip_predictions.py "$out/output" "$out/predictions.zip" >&2 || die "packaging $out/output failed"

if [ "$save" = 1 ]; then
    scripts/save_image.sh --out "$out" "$image"
    name=$(basename "${image%%:*}")
    (cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256.part" && mv "$name.tar.gz.sha256.part" "$name.tar.gz.sha256")
    echo "sha256: $(cut -d' ' -f1 "$out/$name.tar.gz.sha256")  $out/$name.tar.gz" >&2
fi
echo "upload $out/predictions.zip to Codabench (validation phase)$([ "$save" = 1 ] && echo "; send $out/$(basename "${image%%:*}").tar.gz and its sha256 to the organisers")" >&2
