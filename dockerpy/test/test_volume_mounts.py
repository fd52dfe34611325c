"""Unit tests of dockerpy.volumes.mounts: parsing Docker's mount syntaxes,
the Mounts JSON, and the mount points made inside a root (no root needed
except for the ownership checks, which run as whoever runs the tests)."""

from __future__ import annotations

import os
import tempfile

from twisted.trial import unittest

from dockerpy import errors
from dockerpy.volumes import mounts


class ParseTests(unittest.SynchronousTestCase):
    def test_bind_with_mode(self):
        mp = mounts.parse_bind("/host/dir/:/ctr:ro")
        self.assertEqual((mp["Type"], mp["Source"], mp["Destination"], mp["Mode"], mp["RW"],
                          mp["Propagation"], mp["CreateSource"]),
                         ("bind", "/host/dir", "/ctr", "ro", False, "rprivate", True))

    def test_bind_propagation_and_label_modes(self):
        mp = mounts.parse_bind("/h:/c:rshared,Z")
        self.assertEqual((mp["Propagation"], mp["RW"], mp["Mode"]), ("rshared", True, "rshared,Z"))

    def test_named_and_anonymous_volumes(self):
        named = mounts.parse_bind("data:/d")
        self.assertEqual((named["Type"], named["Name"], named["Mode"], named["Anonymous"]),
                         ("volume", "data", "z", False))
        anon = mounts.parse_bind("/only")
        self.assertEqual((anon["Type"], anon["Name"], anon["Anonymous"]), ("volume", "", True))
        self.assertFalse(mounts.parse_bind("v:/d:nocopy")["CopyData"])

    def test_bad_specs_are_refused_with_dockers_words(self):
        for raw in (":/x", "/x:rw", "a:b:c:d"):
            with self.assertRaises(errors.InvalidParameter) as cm:
                mounts.parse_bind(raw)
            self.assertIn(f"invalid volume specification: '{raw}'", cm.exception.message)
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.parse_bind("/h:/c:rx")
        self.assertEqual(cm.exception.message, "invalid mode: rx")
        with self.assertRaises(errors.InvalidParameter):
            mounts.parse_bind("/h:/")
        with self.assertRaises(errors.InvalidParameter):
            mounts.parse_bind("/h:relative")

    def test_mount_types(self):
        bind = mounts.parse_mount({"Type": "bind", "Source": "/s", "Target": "/t",
                                   "ReadOnly": True, "BindOptions": {"Propagation": "rslave"}})
        self.assertEqual((bind["RW"], bind["Propagation"], bind["Mode"], bind["CreateSource"]),
                         (False, "rslave", "", False))
        tmpfs = mounts.parse_mount({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {
            "SizeBytes": 1 << 20, "Mode": 0o1777}})
        self.assertEqual(tmpfs["Data"], "mode=1777,size=1m")
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.parse_mount({"Type": "volume", "Target": "/t", "ReadOnly": True})
        self.assertIn("must not set ReadOnly mode when using anonymous volumes",
                      cm.exception.message)
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.parse_mount({"Type": "nfs", "Target": "/t"})
        self.assertEqual(cm.exception.message,
                         'invalid mount config for type "nfs": mount type unknown')

    def test_plan_precedence_and_duplicates(self):
        shared = mounts.parse_bind("/from")
        shared.update(Name="anon1", Source="/vols/anon1/_data")
        points = mounts.plan(
            {"Volumes": {"/img": {}, "/from": {}, "/bound": {}}},
            {"Binds": ["/h:/bound"], "VolumesFrom": ["other:ro"], "Tmpfs": {"/t": "size=1m"}},
            lambda ref: [shared] if ref == "other" else [])
        by_dest = {p["Destination"]: p for p in points}
        self.assertEqual(sorted(by_dest), ["/bound", "/from", "/img", "/t"])
        self.assertEqual(by_dest["/bound"]["Type"], "bind")
        self.assertEqual((by_dest["/from"]["Name"], by_dest["/from"]["RW"]), ("anon1", False))
        self.assertTrue(by_dest["/img"]["Anonymous"])
        self.assertTrue(by_dest["/t"]["Hidden"])
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.plan({}, {"Binds": ["/a:/x"], "Mounts": [{"Type": "tmpfs", "Target": "/x"}]},
                        lambda ref: [])
        self.assertEqual(cm.exception.message, "Duplicate mount point: /x")

    def test_inspect_view_omits_hidden_and_empty_name_driver(self):
        points = [mounts.parse_bind("/h:/b"), mounts.plan({}, {"Tmpfs": {"/t": ""}},
                                                          lambda r: [])[0]]
        self.assertEqual(mounts.inspect_view(points), [
            {"Type": "bind", "Source": "/h", "Destination": "/b", "Mode": "", "RW": True,
             "Propagation": "rprivate"}])

    def test_tmpfs_options_merge_later_wins(self):
        self.assertEqual(mounts.merge_tmpfs_options(
            ["noexec", "nosuid", "nodev", "rprivate", "exec", "size=1m", "size=2m"]),
            ["nosuid", "nodev", "rprivate", "exec", "size=2m"])


class InRootTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, self.root, True)

    def test_symlink_destination_stays_inside_the_root(self):
        os.symlink("/etc", os.path.join(self.root, "target"))
        os.symlink("../../../../etc/passwd", os.path.join(self.root, "file"))
        self.assertEqual(mounts.mount_point_in_root(self.root, "/target", True), "/etc")
        self.assertTrue(os.path.isdir(os.path.join(self.root, "etc")))
        self.assertEqual(mounts.mount_point_in_root(self.root, "/file", False), "/etc/passwd")
        self.assertTrue(os.path.isfile(os.path.join(self.root, "etc", "passwd")))
        self.assertEqual(mounts.mount_point_in_root(self.root, "/new/deep", True), "/new/deep")

    def test_oci_mounts(self):
        src = tempfile.mkdtemp()
        self.addCleanup(os.rmdir, src)
        points = [mounts.parse_bind(f"{src}:/b:ro"),
                  mounts.parse_mount({"Type": "tmpfs", "Target": "/t",
                                      "TmpfsOptions": {"SizeBytes": 4096}})]
        self.assertEqual(mounts.oci_mounts(self.root, points, {}), [
            {"destination": "/b", "type": "bind", "source": src,
             "options": ["rbind", "ro", "rprivate"]},
            {"destination": "/t", "type": "tmpfs", "source": "tmpfs",
             "options": ["noexec", "nosuid", "nodev", "rprivate", "size=4k"]}])
        missing = mounts.parse_mount({"Type": "bind", "Source": src + "-gone", "Target": "/m"})
        with self.assertRaises(errors.InvalidParameter):
            mounts.oci_mounts(self.root, [missing], {})

    def test_copy_image_content_only_into_an_empty_volume(self):
        os.makedirs(os.path.join(self.root, "data", "sub"))
        with open(os.path.join(self.root, "data", "sub", "f"), "w") as f:
            f.write("x")
        os.chmod(os.path.join(self.root, "data", "sub", "f"), 0o640)
        os.symlink("sub/f", os.path.join(self.root, "data", "link"))
        vol = tempfile.mkdtemp()
        self.addCleanup(__import__("shutil").rmtree, vol, True)
        mounts.copy_image_content(self.root, "/data", vol)
        self.assertEqual(sorted(os.listdir(vol)), ["link", "sub"])
        self.assertEqual(os.readlink(os.path.join(vol, "link")), "sub/f")
        self.assertEqual(os.stat(os.path.join(vol, "sub", "f")).st_mode & 0o777, 0o640)
        os.unlink(os.path.join(vol, "link"))
        mounts.copy_image_content(self.root, "/data", vol)
        self.assertEqual(os.listdir(vol), ["sub"], "a volume with content is left alone")


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /srv rw shared:7 - tmpfs tmpfs rw
31 22 0:26 / /data rw master:9 - tmpfs tmpfs rw
32 22 0:27 / /priv rw - tmpfs tmpfs rw
33 22 0:28 / /with\\040space rw shared:8 - tmpfs tmpfs rw
"""


class PropagationCheckTests(unittest.SynchronousTestCase):
    """A bind's propagation needs a host mount that can propagate, as moby checks."""

    def setUp(self):
        fd, self.info = tempfile.mkstemp()
        self.addCleanup(os.unlink, self.info)
        with os.fdopen(fd, "w") as f:
            f.write(MOUNTINFO)

    def test_mount_of_finds_the_deepest_mount_and_its_tags(self):
        self.assertEqual(mounts.mount_of("/srv/a/b", self.info), ("/srv", {"shared"}))
        self.assertEqual(mounts.mount_of("/srvx", self.info), ("/", {"shared"}))
        self.assertEqual(mounts.mount_of("/with space/x", self.info),
                         ("/with space", {"shared"}))

    def test_shared_bind_on_a_private_mount_is_refused_with_dockers_words(self):
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.check_source_propagation("/priv/x", "rshared", self.info)
        self.assertEqual(cm.exception.message,
                         "path /priv/x is mounted on /priv but it is not a shared mount")
        with self.assertRaises(errors.InvalidParameter):
            mounts.check_source_propagation("/data/x", "shared", self.info)

    def test_slave_bind_needs_a_shared_or_slave_mount(self):
        mounts.check_source_propagation("/data/x", "rslave", self.info)
        mounts.check_source_propagation("/srv/x", "slave", self.info)
        with self.assertRaises(errors.InvalidParameter) as cm:
            mounts.check_source_propagation("/priv/x", "rslave", self.info)
        self.assertIn("not a shared or slave mount", cm.exception.message)

    def test_private_binds_are_not_checked(self):
        mounts.check_source_propagation("/priv/x", "rprivate", self.info)
        mounts.check_source_propagation("/priv/x", "", self.info)
