#!/usr/bin/env bash
# Writes the inference image as a compressed tarball for upload (engine save | gzip), and
# optionally a model tarball whose archive root is the model folder's content (what
# Grand-Challenge unpacks at /opt/ml/model).
#   scripts/save_image.sh [--out DIR] [--model DIR] [TAG]
#     --out DIR     where the tarballs go (default: dist/)
#     --model DIR   also write DIR's content as model.tar.gz (needs DIR/manifest.json)
#     TAG           image to save (default: $FMC_IMAGE, else fmc-uia:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; }
out=dist
model=""
tag=${FMC_IMAGE:-fmc-uia:latest}
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=${2:?--out needs a folder}; shift 2 ;;
        --model) model=${2:?--model needs a folder}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "ERROR: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) tag=$1; shift ;;
    esac
done

read -ra engine <<<"$(scripts/container_engine.sh)"
if ! "${engine[@]}" image inspect "$tag" >/dev/null 2>&1; then
    echo "ERROR: no image $tag; build it first: scripts/build_image.sh $tag" >&2
    exit 1
fi
if [ -n "$model" ] && [ ! -f "$model/manifest.json" ]; then
    echo "ERROR: $model/manifest.json not found: --model needs an exported model folder" >&2
    exit 1
fi
mkdir -p "$out"

name=$(basename "${tag%%:*}")
image_tar="$out/$name.tar.gz"
echo "saving $tag to $image_tar ..." >&2
"${engine[@]}" save "$tag" | gzip -6 >"$image_tar.part"
mv "$image_tar.part" "$image_tar"
echo "$image_tar: $(du -h "$image_tar" | cut -f1)" >&2

if [ -n "$model" ]; then
    model_tar="$out/model.tar.gz"
    # Entries at the archive root (manifest.json, *.onnx), no "./" prefix, owned by root and
    # readable by everyone (the container's user is not root and not the files' owner).
    (cd "$model" && find . -mindepth 1 -maxdepth 1 -printf '%P\0' | LC_ALL=C sort -z \
        | tar --null -T - --owner=0 --group=0 --numeric-owner --mode=a+rX,go-w -czf - ) >"$model_tar.part"
    mv "$model_tar.part" "$model_tar"
    echo "$model_tar: $(du -h "$model_tar" | cut -f1) ($(tar -tzf "$model_tar" | wc -l) entries)" >&2
fi
