"""Unit tests of the local volume driver and the volume service (in-memory
thread runner; real directories in a temp dir; mount(2) only for the
tmpfs-backed volume, which needs root)."""

from __future__ import annotations

import os
import shutil
import tempfile

from twisted.internet import defer
from twisted.trial import unittest

from dockerpy import errors
from dockerpy.volumes.local import LocalDriver, is_mountpoint, parse_mount_options
from dockerpy.volumes.service import ANONYMOUS_LABEL, VolumeService


def _now_thread(f, *args, **kwargs):
    return defer.maybeDeferred(f, *args, **kwargs)


class LocalDriverTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.driver = LocalDriver(os.path.join(self.root, "volumes"), clock=lambda: 0)

    def test_create_is_idempotent_and_recorded(self):
        vol = self.driver.create("v1", None, {"a": "b"})
        self.assertEqual(vol, {"CreatedAt": "1970-01-01T00:00:00Z", "Driver": "local",
                               "Labels": {"a": "b"}, "Name": "v1", "Options": None,
                               "Scope": "local",
                               "Mountpoint": os.path.join(self.root, "volumes", "v1", "_data")})
        self.assertEqual(self.driver.create("v1", None, None), vol)
        fresh = LocalDriver(os.path.join(self.root, "volumes"))
        self.assertEqual(fresh.list(), [vol])

    def test_bad_names_and_options(self):
        with self.assertRaises(errors.InvalidParameter):
            self.driver.create("../x", None, None)
        with self.assertRaises(errors.InvalidParameter) as cm:
            self.driver.create("vv", {"nope": "1"}, None)
        self.assertEqual(cm.exception.message, 'create vv: invalid option key: "nope"')
        self.assertEqual(os.listdir(os.path.join(self.root, "volumes")), [])

    def test_remove(self):
        self.driver.create("v1", None, None)
        self.driver.mount("v1", "c1")
        with self.assertRaises(errors.Conflict):
            self.driver.remove("v1")
        self.driver.unmount("v1", "c1")
        self.driver.remove("v1")
        self.assertEqual(self.driver.list(), [])
        with self.assertRaises(errors.NotFound):
            self.driver.remove("v1")

    def test_parse_mount_options(self):
        self.assertEqual(parse_mount_options("size=1m,ro,uid=1"), (1, "size=1m,uid=1"))
        self.assertEqual(parse_mount_options("bind"), (4096, ""))

    def test_tmpfs_backed_volume_mounted_while_used(self):
        if os.geteuid() != 0:
            raise unittest.SkipTest("mount(2) needs root")
        self.driver.create("tv", {"type": "tmpfs", "device": "tmpfs", "o": "size=64k"}, None)
        path = self.driver.mount("tv", "c1")
        self.addCleanup(self.driver.cleanup)
        self.driver.mount("tv", "c2")
        self.assertTrue(is_mountpoint(path))
        self.driver.unmount("tv", "c1")
        self.assertTrue(is_mountpoint(path), "still used by c2")
        self.driver.unmount("tv", "c2")
        self.assertFalse(is_mountpoint(path))


class VolumeServiceTests(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.root, True)
        self.svc = VolumeService(_now_thread, os.path.join(self.root, "volumes"),
                                 clock=lambda: 0)

    @defer.inlineCallbacks
    def test_setup_creates_volumes_and_counts_users(self):
        from dockerpy.volumes.mounts import parse_bind

        points = yield defer.ensureDeferred(self.svc.setup(
            "c1", [parse_bind("named:/n"), parse_bind("/anon")]))
        named, anon = points
        self.assertEqual(named["Name"], "named")
        self.assertTrue(anon["Anonymous"])
        self.assertEqual(len(anon["Name"]), 64)
        vol = yield defer.ensureDeferred(self.svc.inspect(anon["Name"]))
        self.assertEqual(vol["Labels"], {ANONYMOUS_LABEL: ""})
        with self.assertRaises(errors.Conflict) as cm:
            yield defer.ensureDeferred(self.svc.remove("named"))
        self.assertEqual(cm.exception.message, "remove named: volume is in use - [c1]")
        dangling = yield defer.ensureDeferred(self.svc.list({"dangling": ["true"]}))
        self.assertEqual(dangling, [])
        yield defer.ensureDeferred(self.svc.release("c1", points, remove_anonymous=True))
        names = [v["Name"] for v in (yield defer.ensureDeferred(self.svc.list({})))]
        self.assertEqual(names, ["named"], "anonymous removed, named kept")

    @defer.inlineCallbacks
    def test_prune_anonymous_only_unless_all(self):
        yield defer.ensureDeferred(self.svc.create("named"))
        anon = yield defer.ensureDeferred(self.svc.create(None, anonymous=True))
        unnamed = yield defer.ensureDeferred(self.svc.create(None))
        self.assertEqual(unnamed["Labels"], None, "only containers make anonymous volumes")
        result = yield defer.ensureDeferred(self.svc.prune({}))
        self.assertEqual(result, {"VolumesDeleted": [anon["Name"]], "SpaceReclaimed": 0})
        result = yield defer.ensureDeferred(self.svc.prune({"all": ["true"]}))
        self.assertEqual(sorted(result["VolumesDeleted"]), sorted(["named", unnamed["Name"]]))

    @defer.inlineCallbacks
    def test_label_filters_by_key_or_key_and_value_and_their_negation(self):
        yield defer.ensureDeferred(self.svc.create("va", labels={"tier": "db", "x": ""}))
        yield defer.ensureDeferred(self.svc.create("vb", labels={"tier": "web"}))
        yield defer.ensureDeferred(self.svc.create("vc"))

        def names(filters):
            d = defer.ensureDeferred(self.svc.list(filters))
            return d.addCallback(lambda vols: sorted(v["Name"] for v in vols))
        self.assertEqual((yield names({"label": ["tier"]})), ["va", "vb"])
        self.assertEqual((yield names({"label": ["tier=db", "x"]})), ["va"])
        self.assertEqual((yield names({"label!": ["tier=db"]})), ["vb", "vc"])
        # label! (prune's) spares only what has all the labels, as moby does.
        self.assertEqual((yield names({"label!": ["tier", "x"]})), ["vb", "vc"])
        self.assertEqual((yield names({"label!": ["tier=web", "x"]})), ["va", "vb", "vc"])
        self.assertEqual((yield names({"label": ["tier"], "label!": ["x"]})), ["vb"])

    @defer.inlineCallbacks
    def test_mount_bind_source_missing_is_refused_at_setup(self):
        from dockerpy.volumes.mounts import parse_mount

        point = parse_mount({"Type": "bind", "Source": self.root + "/nope", "Target": "/x"})
        with self.assertRaises(errors.InvalidParameter) as cm:
            yield defer.ensureDeferred(self.svc.setup("c1", [point]))
        self.assertIn("bind source path does not exist", cm.exception.message)

    def test_unknown_driver(self):
        with self.assertRaises(errors.NotFound) as cm:
            self.svc.driver("nfs")
        self.assertEqual(cm.exception.message,
                         'error looking up volume plugin nfs: plugin "nfs" not found')
