#!/bin/sh
# Install everything dockerpy needs on Debian 12, as root: the system packages
# (OCI runtimes, busybox-static for local base images, firewall tools) and the
# Python packages in a virtual environment at ./.venv.  Idempotent; uses only
# the Debian and PyPI package registries.
set -eu
cd "$(dirname "$0")/.."

PKGS="runc crun busybox-static tini nftables iptables iproute2 uidmap ca-certificates python3-venv docker-registry apache2-utils debootstrap"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing system packages:$missing" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
# Byte-compile the package: where Python does not write its caches itself
# (PYTHONDONTWRITEBYTECODE, as on this project's CI), every bin/docker run
# would compile the modules it imports again (~30 ms).
.venv/bin/python -m compileall -q dockerpy >/dev/null
# twistd finds plugins through the dropin cache; build it once now, as root,
# so the daemon never tries to rewrite it later.
.venv/bin/python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
