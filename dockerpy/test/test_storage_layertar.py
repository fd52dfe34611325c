"""Reading layer tars: FastTarInfo reads every header as tarfile does (no root)."""

from __future__ import annotations

import io
import random
import tarfile

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.storage.layertar import FastTarInfo

ATTRS = ("name", "mode", "uid", "gid", "size", "mtime", "chksum", "type", "linkname",
         "uname", "gname", "devmajor", "devminor", "offset", "offset_data", "pax_headers")


def sample_tar(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        def add(name, kind=tarfile.REGTYPE, data=b"", **fields):
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data)
            for k, v in fields.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("file", data=b"x" * 700, mode=0o644, uid=1000, gid=1000, mtime=1700000000,
            uname="user", gname="group")
        add("dir", tarfile.DIRTYPE, mode=0o755)
        add("dir/" + "n" * 150, data=b"long name")     # ustar prefix / gnu / pax path
        add("p" * 160 + "/f", data=b"long prefix")
        add("link", tarfile.SYMTYPE, linkname="file")
        add("longlink", tarfile.SYMTYPE, linkname="t" * 150)
        add("hard", tarfile.LNKTYPE, linkname="file")
        add("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)
        add("fifo", tarfile.FIFOTYPE)
        add("big-uid", data=b"b", uid=2 ** 22)
        add("old-dir/", tarfile.AREGTYPE)
        if fmt == tarfile.PAX_FORMAT:
            add("ünïcode", data=b"u")
            add("float-time", data=b"t", mtime=1.5)
            add("xattr", data=b"a", pax_headers={"SCHILY.xattr.user.k": "v"})
    return buf.getvalue()


def members(data: bytes, cls) -> list:
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r|", tarinfo=cls, errorlevel=2)
    except tarfile.TarError as e:
        return [("error", type(e).__name__, str(e))]
    with tar:
        out = []
        while True:
            try:
                m = tar.next()
            except tarfile.TarError as e:
                out.append(("error", type(e).__name__, str(e)))
                break
            if m is None:
                break
            out.append(tuple(getattr(m, a) for a in ATTRS))
        return out


class FastTarInfoTests(SynchronousTestCase):

    def test_reads_every_format_as_tarfile_does(self):
        for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
            try:
                data = sample_tar(fmt)
            except ValueError:
                continue
            self.assertEqual(members(data, FastTarInfo), members(data, tarfile.TarInfo), fmt)

    def test_damaged_headers_fail_or_read_as_with_tarfile(self):
        rng = random.Random(3)
        data = sample_tar(tarfile.PAX_FORMAT)
        for _ in range(300):
            damaged = bytearray(data)
            for _ in range(rng.choice([1, 2, 5])):
                at = rng.randrange(0, 4096)
                damaged[at] = rng.randrange(256)
            damaged = bytes(damaged)
            self.assertEqual(members(damaged, FastTarInfo), members(damaged, tarfile.TarInfo))
