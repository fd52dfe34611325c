#!/bin/sh
# Start-up time of the two clients: dockerpy's bin/docker against the real
# docker CLI, both running "version" (one round trip to the daemon) and
# "--version" (no daemon at all).  The two clients alternate, run by run.
#
#   DOCKER_HOST=unix:///path bench/cli_startup.sh [RUNS]
#
# Prints the median, min and max wall time in milliseconds for each.
# Needs a daemon at DOCKER_HOST (bench/run_all.py starts one and calls this).
set -eu

runs=${1:-30}
here=$(cd "$(dirname "$0")/.." && pwd)
ours=$here/bin/docker
real=${DOCKER_CLI:-/usr/local/bin/docker}
# bin/docker's "#!/usr/bin/env python3" may find a version manager's shim
# (pyenv's costs ~100 ms a run); also time it under a plain interpreter.
direct=${DIRECT_PYTHON:-/usr/bin/python3}
: "${DOCKER_HOST:?set DOCKER_HOST to the daemon to ask}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

now_ns() { date +%s%N; }

# one CLI run, its wall time in microseconds appended to FILE
time_one() {
    file=$1; shift
    t0=$(now_ns)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    t1=$(now_ns)
    echo $(((t1 - t0) / 1000)) >> "$file"
}

stats() {
    sort -n "$1" | awk -v label="$2" '
        { v[NR] = $1 }
        END {
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "%-40s median %7.1f ms  (min %.1f, max %.1f, n=%d)\n", label, m / 1000, v[1] / 1000, v[NR] / 1000, NR
        }'
}

for args in "version" "--version"; do
    key=$(echo "$args" | tr -c "a-z\n" _)
    "$ours" $args >/dev/null 2>&1; "$real" $args >/dev/null 2>&1  # warm the page cache
    i=0
    while [ $i -lt "$runs" ]; do
        time_one "$tmp/ours-$key" "$ours" $args
        time_one "$tmp/real-$key" "$real" $args
        [ -x "$direct" ] && time_one "$tmp/direct-$key" "$direct" "$ours" $args
        i=$((i + 1))
    done
    stats "$tmp/ours-$key" "bin/docker $args"
    [ -x "$direct" ] && stats "$tmp/direct-$key" "$direct bin/docker $args"
    stats "$tmp/real-$key" "$real $args"
done
