#!/bin/bash
# The main job, from nothing: install dockerpy and its system packages, start
# the daemon, make a busybox base image locally (no registry needed), run a
# container with the real docker CLI (or bin/docker when it is absent) and
# show its output.  The daemon keeps running afterwards; stop it with
#   kill $(cat /run/dockerpy.pid)
set -euo pipefail
cd "$(dirname "$0")/.."
./contrib/install.sh

HOST=${DOCKERPY_HOST:-unix:///var/run/docker.sock}
DATA_ROOT=${DOCKERPY_DATA_ROOT:-/var/lib/dockerpy}
EXEC_ROOT=${DOCKERPY_EXEC_ROOT:-/run/dockerpy}
PIDFILE=${DOCKERPY_PIDFILE:-/run/dockerpy.pid}
LOG=${DOCKERPY_LOG:-/var/log/dockerpy.log}
export DOCKER_HOST=$HOST

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "dockerpy daemon already running (pid $(cat "$PIDFILE"))"
else
    .venv/bin/twistd --pidfile "$PIDFILE" --logfile "$LOG" docker -H "$HOST" \
        --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT"
    for _ in $(seq 1 100); do
        if bin/docker version >/dev/null 2>&1; then break; fi
        sleep 0.1
    done
    echo "dockerpy daemon started (pid $(cat "$PIDFILE"), log $LOG) on $HOST"
fi

CLI=/usr/local/bin/docker
[ -x "$CLI" ] || CLI=bin/docker

if ! "$CLI" image inspect busybox:latest >/dev/null 2>&1; then
    .venv/bin/python -m dockerpy.tools.busybox_rootfs | "$CLI" import -c 'CMD ["sh"]' - busybox:latest
fi
set -x
"$CLI" run --rm busybox sh -c 'echo "Hello from a dockerpy container: $(uname -sr), pid $$, $(id)"'
"$CLI" ps -a
"$CLI" images
