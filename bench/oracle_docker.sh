#!/bin/sh
# Start or stop a private Docker 20.10 daemon (Debian's docker.io) used only as
# the yardstick for dockerpy's benchmarks.
#
#   bench/oracle_docker.sh start [DIR]   -> prints the DOCKER_HOST to use
#   bench/oracle_docker.sh stop  [DIR]
#
# DIR defaults to /tmp/dref.  The daemon gets its own socket, data root, exec
# root and containerd; it makes no bridge, no firewall rule and leaves
# net.ipv4.ip_forward alone (--bridge none --iptables=false --ip-forward=false
# --ip-masq=false).  Nothing is enabled in an init system.  "start" imports
# the same busybox image dockerpy's benchmarks use (there is no registry here).
# "stop" kills the daemon by its pid, waits for its containerd, unmounts and
# removes DIR, and compares firewall rules, links and ip_forward with what
# "start" recorded, saying so if anything differs.
#
# ORACLE_NETWORK=bridge runs dockerd with its default bridge, NAT and
# iptables rules, but inside a network namespace of its own (nsenter --net,
# named dpyref-<basename of DIR>), so that it changes nothing in the host's
# firewall, links or ip_forward; "stop" deletes that namespace.
#
# Needs root and `apt-get install --no-install-recommends docker.io` (with a
# policy-rc.d that forbids starting services if the machine has an init
# system that would otherwise start dockerd on the default socket).
set -eu

cmd=${1:-}
dir=${2:-/tmp/dref}
here=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$here/.venv/bin/python}
dockerd=${DOCKERD:-/usr/sbin/dockerd}
cli=${DOCKER_CLI:-/usr/local/bin/docker}
sock=$dir/docker.sock

snapshot() {
    {
        echo "## ip_forward"; sysctl -n net.ipv4.ip_forward
        echo "## iptables"; iptables -S 2>&1 || true
        echo "## ip6tables"; ip6tables -S 2>&1 || true
        echo "## nft"; nft list ruleset 2>&1 || true
        echo "## links"; ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
    } > "$1"
}

case "$cmd" in
start)
    if [ -e "$dir/docker.pid" ] && kill -0 "$(cat "$dir/docker.pid")" 2>/dev/null; then
        echo "unix://$sock"; exit 0
    fi
    mkdir -p "$dir"
    snapshot "$dir/host-before.txt"
    echo '{}' > "$dir/daemon.json"
    # containerd's shims put their sockets in /run/containerd/s whatever the
    # exec root: remember whether that directory was ours to remove.
    [ -e /run/containerd ] || touch "$dir/made-run-containerd"
    # runc (cgroupfs driver) makes a "docker" cgroup parent per hierarchy and
    # dockerd never removes it: remember which ones already existed.
    ls -d /sys/fs/cgroup/docker /sys/fs/cgroup/*/docker 2>/dev/null > "$dir/cgroups-before" || true
    # setsid: its own session, so a benchmark's process group never kills it.
    # tini -s: the shims daemonize; a subreaper reaps them when they exit
    # (PID 1 of a container or sandbox may not).
    reaper=""
    command -v tini >/dev/null 2>&1 && reaper="tini -s --"
    wrap=""
    netflags="--bridge none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false"
    if [ "${ORACLE_NETWORK:-none}" = bridge ]; then
        ns="dpyref-$(basename "$dir")"
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        echo "$ns" > "$dir/netns"
        # nsenter, not "ip netns exec": that one remounts /sys, hiding the cgroup mounts.
        wrap="nsenter --net=/run/netns/$ns --"
        netflags="--ip6tables=false"
    fi
    setsid $wrap $reaper "$dockerd" -H "unix://$sock" --data-root "$dir/data" --exec-root "$dir/exec" \
        --pidfile "$dir/docker.pid" --config-file "$dir/daemon.json" \
        $netflags \
        --storage-driver overlay2 --log-level warn \
        </dev/null >"$dir/dockerd.log" 2>&1 &
    i=0
    until DOCKER_HOST="unix://$sock" "$cli" version >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -gt 300 ]; then
            echo "dockerd did not answer; see $dir/dockerd.log" >&2; tail -20 "$dir/dockerd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    if ! DOCKER_HOST="unix://$sock" "$cli" image inspect busybox:latest >/dev/null 2>&1; then
        PYTHONPATH=$here "$python" -m dockerpy.tools.busybox_rootfs \
            | DOCKER_HOST="unix://$sock" "$cli" import - busybox:latest >/dev/null
    fi
    echo "unix://$sock"
    ;;
stop)
    [ -d "$dir" ] || exit 0
    if [ -e "$dir/docker.pid" ]; then
        pid=$(cat "$dir/docker.pid")
        if kill -0 "$pid" 2>/dev/null; then
            DOCKER_HOST="unix://$sock" "$cli" ps -aq 2>/dev/null \
                | xargs -r env DOCKER_HOST="unix://$sock" "$cli" rm -f >/dev/null 2>&1 || true
            kill -TERM "$pid"
            i=0
            while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
            kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
        fi
    fi
    # dockerd stops the containerd it started; wait for it (found by its
    # socket under DIR, never by name alone).
    for p in $(pgrep -f "containerd --config $dir/" || true); do
        i=0
        while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p"
    done
    if [ -e "$dir/netns" ]; then
        ip netns del "$(cat "$dir/netns")" 2>/dev/null || true
    fi
    grep -F " $dir/" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
    if [ -e "$dir/host-before.txt" ]; then
        snapshot "$dir/host-after.txt"
        if ! diff -u "$dir/host-before.txt" "$dir/host-after.txt" >&2; then
            echo "oracle_docker.sh: the host changed while dockerd ran (see diff above;" \
                 "other programs on the machine may be the cause)" >&2
        fi
    fi
    if [ -e "$dir/cgroups-before" ]; then
        for c in /sys/fs/cgroup/docker /sys/fs/cgroup/*/docker; do
            [ -d "$c" ] && ! grep -qxF "$c" "$dir/cgroups-before" || continue
            # rmdir, deepest first (BuildKit makes docker/buildkit), so a
            # cgroup that still holds anything is left alone.
            find "$c" -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
            rmdir "$c" 2>/dev/null || true
        done
    fi
    if [ -e "$dir/made-run-containerd" ]; then
        rmdir /run/containerd/s /run/containerd 2>/dev/null || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: $0 start|stop [DIR]" >&2; exit 2
    ;;
esac
