# -*- test-case-name: dockerpy.test.test_integration_debootstrap -*-
"""A Debian base image made by ``contrib/mkimage-debootstrap.sh`` builds a
Dockerfile that uses bash, coreutils and dpkg from that base (issue 3).

Slow: the first run bootstraps Debian (minbase) from the package mirror
in this machine's apt sources, which takes minutes; the root file system
tar is then cached under /var/cache/dockerpy-test/ keyed by suite and
architecture, and later runs only import it (seconds).  Skipped when
debootstrap is not installed, or when there is no cached tar and the
mirror cannot be reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request

from dockerpy.test.daemon_fixture import DOCKER_CLI, REPO, DaemonTestCase

SCRIPT = os.path.join(REPO, "contrib", "mkimage-debootstrap.sh")

DOCKERFILE = """\
FROM debian-debootstrap:test
RUN dpkg -l | grep coreutils
RUN bash -c 'set -euo pipefail; words=(alpha beta gamma); \\
    echo "${#words[@]} ${words[1]} ${BASH_VERSINFO[0]}" > /bash.txt'
RUN ["/bin/bash", "-c", "dpkg-query -W -f='${Package}\\\\n' bash coreutils dpkg > /pkgs.txt"]
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN seq 3 | tac | paste -sd, > /coreutils.txt && stat -c %U:%a /etc/passwd >> /coreutils.txt
CMD ["/bin/bash", "-c", "cat /bash.txt /pkgs.txt /coreutils.txt"]
"""


def _debootstrap() -> str | None:
    return shutil.which("debootstrap") or (
        "/usr/sbin/debootstrap" if os.access("/usr/sbin/debootstrap", os.X_OK) else None)


class DebootstrapImageTests(DaemonTestCase):
    """Slow (minutes on the first run, then cached)."""

    def setUp(self) -> None:
        if _debootstrap() is None:
            self.skipTest("debootstrap is not installed (contrib/install.sh installs it)")
        out = subprocess.run(["sh", SCRIPT, "-p"], capture_output=True, text=True)
        if out.returncode != 0:
            self.skipTest(f"mkimage-debootstrap.sh cannot choose a mirror: {out.stderr.strip()}")
        self.suite, self.arch, mirror, self.tar = out.stdout.split("\n")[:4]
        if not os.path.exists(self.tar):
            url = f"{mirror.rstrip('/')}/dists/{self.suite}/Release"
            try:
                with urllib.request.urlopen(url, timeout=15) as resp:
                    resp.read(1)
            except (OSError, urllib.error.URLError) as e:
                self.skipTest(f"no cached {self.tar} and the Debian mirror is unreachable "
                              f"({url}: {e})")
        self.daemon = self.start_daemon(cli=True, busybox=False)

    def test_dockerfile_uses_bash_coreutils_and_dpkg_of_the_base(self) -> None:
        env = dict(self.daemon.env, DOCKER=DOCKER_CLI)
        made = subprocess.run(["sh", SCRIPT, "-t", "debian-debootstrap:test"], env=env,
                              capture_output=True, text=True, timeout=1500)
        self.assertEqual(made.returncode, 0, made.stderr)
        self.assertTrue(os.path.getsize(self.tar) > 10 * 1024 * 1024, self.tar)

        context = tempfile.mkdtemp(prefix="debootstrap-ctx-")
        self.addCleanup(shutil.rmtree, context, True)
        with open(os.path.join(context, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE)
        built = self.daemon.cli("build", "-t", "uses-debian", context, timeout=600)
        out = built.stdout.decode(errors="replace")
        self.assertEqual(built.returncode, 0, out + built.stderr.decode(errors="replace"))
        # `dpkg -l | grep coreutils` printed the package line in the step output.
        self.assertRegex(out, r"ii\s+coreutils\s")
        self.assertIn("Successfully tagged uses-debian:latest", out)

        ran = self.daemon.cli("run", "--rm", "uses-debian", check=True, timeout=120)
        lines = ran.stdout.decode().splitlines()
        self.assertEqual(lines[0].split()[:2], ["3", "beta"])
        self.assertGreaterEqual(int(lines[0].split()[2]), 4)
        self.assertEqual(sorted(lines[1:4]), ["bash", "coreutils", "dpkg"])
        self.assertEqual(lines[4:], ["3,2,1", "root:644"])

    test_dockerfile_uses_bash_coreutils_and_dpkg_of_the_base.timeout = 1800  # type: ignore
