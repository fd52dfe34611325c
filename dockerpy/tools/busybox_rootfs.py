# -*- test-case-name: dockerpy.test.test_busybox_rootfs -*-
"""Make a busybox root file system from Debian's busybox-static, offline.

``python -m dockerpy.tools.busybox_rootfs > busybox.tar`` writes a tarball
that ``docker import`` turns into a base image shaped like Docker Hub's
busybox: ``/bin/busybox`` with one hard link per applet, a minimal
``/etc/passwd`` and ``/etc/group``, and the usual empty directories.
"""

import io
import shutil
import subprocess
import sys
import tarfile

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "sys:x:3:3:sys:/dev:/bin/false\n"
    "sync:x:4:100:sync:/bin:/bin/sync\n"
    "mail:x:8:8:mail:/var/spool/mail:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "operator:x:37:37:Operator:/var:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
GROUP = (
    "root:x:0:\ndaemon:x:1:\nbin:x:2:\nsys:x:3:\nadm:x:4:\ntty:x:5:\ndisk:x:6:\n"
    "wheel:x:10:root\nmail:x:12:\nwww-data:x:33:\noperator:x:37:\nusers:x:100:\n"
    "nogroup:x:65533:\nnobody:x:65534:\n"
)
DIRS = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555,
    "root": 0o700, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/sbin": 0o755,
    "var": 0o755, "var/spool": 0o755, "var/spool/mail": 0o755, "var/www": 0o755,
}


def find_busybox() -> str:
    for path in BUSYBOX_CANDIDATES:
        if shutil.which(path):
            return path
    raise RuntimeError(
        "busybox-static is not installed (apt-get install busybox-static)")


def applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True).stdout
    return sorted(a for a in out.decode().split() if a and a != "busybox")


def write_rootfs_tar(out, busybox: str | None = None, mtime: int = 0) -> None:
    """Write the root file system as an uncompressed tar to the binary file ``out``."""
    busybox = busybox or find_busybox()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in sorted(DIRS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, mtime
            tar.addfile(info)
        with open(busybox, "rb") as f:
            data = f.read()
        info = tarfile.TarInfo("bin/busybox")
        info.mode, info.size, info.mtime = 0o755, len(data), mtime
        tar.addfile(info, io.BytesIO(data))
        for applet in applets(busybox):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode, info.mtime = (
                tarfile.LNKTYPE, "bin/busybox", 0o755, mtime)
            tar.addfile(info)
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.mtime = 0o644, len(data), mtime
            tar.addfile(info, io.BytesIO(data))


def rootfs_tar_bytes() -> bytes:
    buf = io.BytesIO()
    write_rootfs_tar(buf)
    return buf.getvalue()


def main() -> None:
    write_rootfs_tar(sys.stdout.buffer)


if __name__ == "__main__":
    main()
