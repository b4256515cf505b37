#!/usr/bin/env bash
# End-to-end test of the submission: run the model the way the platform does and compare
# with the expected outputs (python test/compare.py EXPECTED ACTUAL). Two kinds of cases:
#   batch  test/input            -> test/output            vs test/expected_output
#          (the organisers' run line: started as root, no --user)
#   gc     test/gc/<case>/input  -> test/gc/<case>/output  vs test/gc/<case>/expected_output
#          (one fresh container per case with --user, as Grand-Challenge runs each job)
# In a container, every output file must also belong to the output folder's owner and none
# may be world-writable.
#
#   test/run_test.sh            build the image, run every case in a container, compare
#   test/run_test.sh --no-build use the existing image (also: FMC_NO_BUILD=1)
#   test/run_test.sh --image T  image tag (default: $FMC_IMAGE, else fmc-uia:latest)
#   test/run_test.sh --local    no container: `python -m inference` here, same comparisons
# The PyTorch fallback (an image built with WITH_TORCH=1), within the same tolerances:
#   --engine torch       every case through `--engine torch`; each log must name torch
#   --onnx-unloadable    every case under `--engine auto` with a copy of model_weights/ whose
#                        encoder ONNX Runtime cannot load (test/make_unloadable_model.py; at
#                        /opt/ml/model, or --weights with --local): each log must show the
#                        switch to PyTorch
#
# Environment: CONTAINER_ENGINE (docker or podman), FMC_BASE_IMAGE and WITH_TORCH (build,
# see scripts/build_image.sh), PYTHON (interpreter for --local, compare.py and
# make_unloadable_model.py; default .venv/bin/python when present, else python3).
# Exit status: 0 every case matches; 1 a case failed or differs; 2 usage or setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "ERROR: $1" >&2; exit "${2:-2}"; }

mode=container
build=1
[ "${FMC_NO_BUILD:-0}" = 1 ] && build=0
image=${FMC_IMAGE:-fmc-uia:latest}
engine_arg=""
unloadable=0
while [ $# -gt 0 ]; do
    case "$1" in
        --local) mode=local; shift ;;
        --no-build) build=0; shift ;;
        --image) image=${2:?--image needs a tag}; build=0; shift 2 ;;
        --engine) engine_arg=${2:?--engine needs onnxruntime, torch or auto}; shift 2 ;;
        --onnx-unloadable) unloadable=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "ERROR: unknown argument $1" >&2; usage >&2; exit 2 ;;
    esac
done

if [ -n "${PYTHON:-}" ]; then python=$PYTHON
elif [ -x .venv/bin/python ]; then python=.venv/bin/python
else python=python3; fi

case "$engine_arg" in
    ""|onnxruntime|torch|auto) ;;
    *) die "--engine must be onnxruntime, torch or auto, not $engine_arg" ;;
esac
[ "$unloadable" = 0 ] || [ -z "$engine_arg" ] || [ "$engine_arg" = auto ] \
    || die "--onnx-unloadable runs under --engine auto (the fallback); drop --engine $engine_arg"
# What each run adds to the inference command line, and what its log must show.
infer_args=()
[ -z "$engine_arg" ] || infer_args+=(--engine "$engine_arg")
log_must=()
[ "$engine_arg" != torch ] || log_must+=("inference engine: torch")
if [ "$unloadable" = 1 ]; then
    infer_args+=(--engine auto)
    log_must+=("falling back to PyTorch" "inference engine: torch")
fi

# The cases: "name input expected output", test/input first.
cases=()
[ -d test/input ] || die "test/input is missing: the sample set is needed"
[ -d test/expected_output ] || die "test/expected_output is missing: the reference outputs are needed"
[ -f test/compare.py ] || die "test/compare.py is missing"
cases+=("batch test/input test/expected_output test/output")
for dir in test/gc/*/; do
    [ -d "${dir}input" ] || continue
    name=$(basename "$dir")
    [ -d "${dir}expected_output" ] \
        || die "test/gc/$name/expected_output is missing (make it: python test/make_gc_cases.py --expected)"
    cases+=("gc/$name ${dir}input ${dir}expected_output ${dir}output")
done

if [ "$mode" = container ]; then
    engine_line=$(scripts/container_engine.sh) \
        || die "no usable container engine (see above); 'test/run_test.sh --local' tests without one"
    read -ra engine <<<"$engine_line"
    kind=$(scripts/container_engine.sh --kind)
    if [ "$build" = 1 ]; then
        if ! scripts/build_image.sh "$image"; then
            [ -n "${FMC_BASE_IMAGE:-}" ] || echo "HINT: if the base image could not be pulled (no registry access), build" \
                "the same Debian 12 locally and use it: scripts/make_base_image.sh localhost/base:bookworm &&" \
                "FMC_BASE_IMAGE=localhost/base:bookworm make test" >&2
            die "the image build failed" 1
        fi
    elif ! "${engine[@]}" image inspect "$image" >/dev/null 2>&1; then
        die "no image $image; build it with scripts/build_image.sh, or drop --no-build"
    fi
    # Two ways of starting the image, both with --shm-size 1m (nothing may need shared memory):
    #  batch  the organisers' own line, `docker run --gpus all --rm -v IN:/input/:ro
    #         -v OUT:/output IMAGE`, on an output folder made by mkdir (the caller's, 755):
    #         the image starts as root and steps down to OUT's owner;
    #  gc     as Grand-Challenge: --user UID:GID (the caller's; 4242:4242 when the caller is
    #         root, its output folder given to that uid), no network, and a read-only root
    #         filesystem (only /output and /tmp writable), which proves nothing is written elsewhere.
    # After each run, every file must belong to OUT's owner and none may be world-writable.
    gpu_opts=()
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        if [ "$kind" = podman ]; then gpu_opts=(--device nvidia.com/gpu=all); else gpu_opts=(--gpus all); fi
    fi
    organisers_opts=(run --rm "${gpu_opts[@]}" --shm-size 1m)
    gc_user="$(id -u):$(id -g)"
    [ "$(id -u)" != 0 ] || gc_user=4242:4242
    gc_opts=(run --rm "${gpu_opts[@]}" --shm-size 1m --network none --read-only --tmpfs /tmp --user "$gc_user")
    echo "batch: ${engine[*]} ${organisers_opts[*]} -v INPUT:/input/:ro -v OUTPUT:/output $image" >&2
    echo "gc:    ${engine[*]} ${gc_opts[*]} -v INPUT:/input:ro -v OUTPUT:/output $image" >&2
    # The container's user is not always the files' owner: inputs must be world-readable.
    if [ "$(id -u)" = 0 ]; then
        for case in "${cases[@]}"; do
            read -r name input _ <<<"$case"
            private=$(find "$input" \( \( -type f ! -perm -o=r \) -o \( -type d ! -perm -o=rx \) \) -print -quit)
            [ -z "$private" ] || die "$input has files the container's user cannot read (e.g. $private); make them readable: chmod -R a+rX $input"
        done
    fi
fi

# --onnx-unloadable: the model copy, readable by the container's user, removed at exit.
model_opts=()
if [ "$unloadable" = 1 ]; then
    model_tmp=$(mktemp -d /tmp/fmc-unloadable.XXXXXX)
    trap 'rm -rf "$model_tmp"' EXIT
    "$python" test/make_unloadable_model.py model_weights "$model_tmp/model" \
        || die "could not make the unloadable model copy (test/make_unloadable_model.py)"
    chmod -R a+rX "$model_tmp"
    if [ "$mode" = local ]; then model_opts=(--weights "$model_tmp/model")
    else model_opts=(-v "$model_tmp/model:/opt/ml/model:ro"); fi
fi
[ ${#infer_args[@]} -eq 0 ] || echo "each run adds: ${infer_args[*]}${model_opts:+ (model: ${model_opts[*]})}" >&2

# run_case NAME INPUT OUTPUT LOG: one inference run; prints nothing, returns its exit status.
run_case() {
    local name=$1 input=$2 output=$3 log=$4
    if [ "$mode" = local ]; then
        "$python" -m inference --input "$input" --output "$output" "${model_opts[@]}" "${infer_args[@]}" >"$log" 2>&1
    elif [ "$name" = batch ]; then
        "${engine[@]}" "${organisers_opts[@]}" -v "$(cd "$input" && pwd):/input/:ro" \
            -v "$(cd "$output" && pwd):/output" "${model_opts[@]}" "$image" "${infer_args[@]}" >"$log" 2>&1
    else
        [ "$(id -u)" != 0 ] || chown "$gc_user" "$output"
        "${engine[@]}" "${gc_opts[@]}" -v "$(cd "$input" && pwd):/input:ro" \
            -v "$(cd "$output" && pwd):/output" "${model_opts[@]}" "$image" "${infer_args[@]}" >"$log" 2>&1
    fi
}

# log_misses LOG: the first line LOG must hold (--engine torch, --onnx-unloadable) that it lacks.
log_misses() {
    local wanted
    for wanted in "${log_must[@]}"; do
        grep -qF "$wanted" "$1" || { echo "$wanted"; return 0; }
    done
    return 1
}

# check_files OUTPUT: every file belongs to the folder's owner and none is world-writable.
check_files() {
    local output=$1 owner uid gid bad
    owner=$(stat -c '%u:%g' "$output")
    uid=${owner%%:*} gid=${owner#*:}
    bad=$(find "$output" -mindepth 1 \( ! -uid "$uid" -o ! -gid "$gid" \) -printf '%P (%U:%G)\n' | head -n 3)
    [ -z "$bad" ] || { echo "files not owned by the output folder's owner $owner: $bad"; return 1; }
    bad=$(find "$output" -mindepth 1 -perm -o+w -printf '%P\n' | head -n 3)
    [ -z "$bad" ] || { echo "world-writable files: $bad"; return 1; }
}

failed=()
for case in "${cases[@]}"; do
    read -r name input expected output <<<"$case"
    rm -rf "$output"
    mkdir -p "$output"
    log="$output.log"
    start=$(date +%s%N)
    rc=0
    run_case "$name" "$input" "$output" "$log" || rc=$?
    tenths=$(( ($(date +%s%N) - start) / 100000000 ))
    took="$((tenths / 10)).$((tenths % 10))"
    if [ "$rc" -ne 0 ]; then
        echo "FAIL $name: inference exited with $rc after ${took} s; its log ($log) ends:" >&2
        tail -n 15 "$log" | sed 's/^/    /' >&2
        failed+=("$name")
    elif ! "$python" test/compare.py "$expected" "$output" >"$output.compare" 2>&1; then
        echo "FAIL $name: $output differs from $expected (ran ${took} s):" >&2
        sed 's/^/    /' "$output.compare" >&2
        failed+=("$name")
    elif missing=$(log_misses "$log"); then
        echo "FAIL $name: its log ($log) lacks \"$missing\"; it ends:" >&2
        tail -n 15 "$log" | sed 's/^/    /' >&2
        failed+=("$name")
    elif [ "$mode" = container ] && ! problem=$(check_files "$output"); then
        echo "FAIL $name: $problem" >&2
        failed+=("$name")
    else
        echo "ok   $name (${took} s)" >&2
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${#failed[@]} of ${#cases[@]} cases: ${failed[*]}" >&2
    exit 1
fi
echo "PASS: all ${#cases[@]} cases match their expected outputs ($mode${infer_args:+, ${infer_args[*]}}${model_opts:+, ONNX-unloadable encoder})" >&2
