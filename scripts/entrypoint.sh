#!/bin/sh
# Entrypoint of the inference image: `python -m inference "$@"`, run as the owner of the
# output folder, so that on the host the files belong to whoever owns OUT.
#
# Started as a non-root user (`docker run --user UID:GID`, as Grand-Challenge does): runs as
# that user, unchanged.
# Started as root (the organisers' `docker run --gpus all --rm -v IN:/input/:ro -v OUT:/output
# IMAGE`): steps down with setpriv (util-linux) before Python starts, to the uid:gid that
# owns the output folder (--output DIR, default /output):
#   - OUT owned by a user: that uid:gid, no supplementary groups, no capabilities;
#   - OUT owned by root: uid 0 with every capability dropped (empty bounding set,
#     no_new_privs): the files belong to root, OUT's owner, and the process cannot override
#     file permissions, change owners or regain privileges;
#   - no output folder: the image's unprivileged user (FMC_APP_USER, default 1000:1000),
#     which cannot create /output, so the run stops with one line naming it.
# Root without the capabilities to step down (--cap-drop ALL) runs as it is, with one warning.
# umask 022 in every case: files 644, folders 755, never world-writable.
set -eu
umask 022
python=/opt/venv/bin/python

if [ "$(id -u)" != 0 ]; then
    exec "$python" -m inference "$@"
fi

out=/output
previous=""
for arg in "$@"; do
    [ "$previous" != --output ] || out=$arg
    case "$arg" in --output=*) out=${arg#--output=} ;; esac
    previous=$arg
done

if [ -d "$out" ]; then
    owner=$(stat -c '%u:%g' "$out")
else
    owner=${FMC_APP_USER:-1000:1000}
fi
uid=${owner%%:*}
gid=${owner#*:}

# CAP_SETGID (6), CAP_SETUID (7) and CAP_SETPCAP (8) are needed to step down.
caps=$(sed -n 's/^CapEff:[[:space:]]*//p' /proc/self/status)
if [ $(( 0x${caps:-0} & 0x1c0 )) -ne $(( 0x1c0 )) ]; then
    echo "entrypoint: WARNING: root without the capabilities to change user; running as root (owner of $out: $owner)" >&2
    exec "$python" -m inference "$@"
fi

exec setpriv --reuid="$uid" --regid="$gid" --clear-groups --no-new-privs \
    --inh-caps=-all --bounding-set=-all -- "$python" -m inference "$@"
