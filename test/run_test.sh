#!/usr/bin/env bash
# End-to-end test of the submission: run the model on test/input the way the platform does
# and compare the result with test/expected_output (python test/compare.py).
#
#   test/run_test.sh            build the image, run it in a container, compare
#   test/run_test.sh --no-build run an existing image (also: FMC_NO_BUILD=1)
#   test/run_test.sh --image T  image tag (default: $FMC_IMAGE, else fmc-uia:latest)
#   test/run_test.sh --local    no container: run `python -m inference` here, compare
#   test/run_test.sh --output D output folder (default: test/output; emptied first)
#
# Environment: CONTAINER_ENGINE (docker or podman), FMC_BASE_IMAGE and WITH_TORCH (build,
# see scripts/build_image.sh), PYTHON (interpreter for --local and compare.py; default
# .venv/bin/python when present, else python3).
# Exit status: 0 the outputs match; 1 they do not, or the run failed; 2 usage or setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }
mode=container
build=1
[ "${FMC_NO_BUILD:-0}" = 1 ] && build=0
image=${FMC_IMAGE:-fmc-uia:latest}
out=test/output
while [ $# -gt 0 ]; do
    case "$1" in
        --local) mode=local; shift ;;
        --no-build) build=0; shift ;;
        --image) image=${2:?--image needs a tag}; build=0; shift 2 ;;
        --output) out=${2:?--output needs a folder}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ERROR: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif [ -x .venv/bin/python ]; then python=.venv/bin/python
else python=python3; fi

die() { echo "ERROR: $1" >&2; exit "${2:-2}"; }
for f in test/input/csv_files test/expected_output test/compare.py; do
    [ -e "$f" ] || die "$f is missing: the sample set and its reference outputs are needed"
done
ls test/input/csv_files/*.csv >/dev/null 2>&1 || die "no CSV file in test/input/csv_files"

rm -rf "$out"
mkdir -p "$out"
out_abs=$(cd "$out" && pwd)
log="$out_abs.log"

start=$(date +%s)
if [ "$mode" = local ]; then
    echo "running: $python -m inference --input test/input --output $out" >&2
    set +e
    "$python" -m inference --input test/input --output "$out" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
else
    if ! engine_line=$(scripts/container_engine.sh); then
        die "no usable container engine (see above); use --local to test without one"
    fi
    read -ra engine <<<"$engine_line"
    kind=$(scripts/container_engine.sh --kind)
    if [ "$build" = 1 ]; then
        scripts/build_image.sh "$image" || die "the image build failed" 1
    elif ! "${engine[@]}" image inspect "$image" >/dev/null 2>&1; then
        die "no image $image; build it with scripts/build_image.sh or drop --no-build"
    fi
    # As the platform runs it: no network, /input read-only, a writable /output. The root
    # filesystem is read-only too (only /output and /tmp are writable), which proves the
    # image writes nowhere else. As root the image's own user runs it (world-writable
    # output folder); otherwise the caller's uid, so the caller owns the files.
    chmod 0777 "$out_abs"
    run=(run --rm --network none --read-only --tmpfs /tmp
         -v "$(pwd)/test/input:/input:ro" -v "$out_abs:/output")
    [ "$(id -u)" = 0 ] || run+=(--user "$(id -u):$(id -g)")
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        if [ "$kind" = podman ]; then run+=(--device nvidia.com/gpu=all); else run+=(--gpus all); fi
    fi
    echo "running: ${engine[*]} ${run[*]} $image" >&2
    set +e
    "${engine[@]}" "${run[@]}" "$image" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
fi
echo "inference exited with $rc after $(( $(date +%s) - start )) s (log: $log)" >&2
case "$rc" in
    0) ;;
    3) echo "FAIL: some rows could not be predicted (exit 3); see the log" >&2; exit 1 ;;
    *) echo "FAIL: the inference run failed (exit $rc)" >&2; exit 1 ;;
esac

echo "comparing test/expected_output with $out ..." >&2
if "$python" test/compare.py test/expected_output "$out"; then
    echo "PASS: $out matches test/expected_output" >&2
else
    echo "FAIL: $out does not match test/expected_output (see above)" >&2
    exit 1
fi
