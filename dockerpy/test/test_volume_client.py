"""Unit tests of bin/docker's volume pieces: the ``--mount`` syntax."""

from __future__ import annotations

from twisted.trial import unittest

from dockerpy.client.command import StatusError
from dockerpy.client.volumes import parse_mount_flag


class MountFlagTests(unittest.SynchronousTestCase):
    def test_bind_readonly_propagation(self):
        self.assertEqual(
            parse_mount_flag("type=bind,src=/h,dst=/c,readonly,bind-propagation=rslave"),
            {"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": True,
             "BindOptions": {"Propagation": "rslave"}})

    def test_volume_defaults_and_options(self):
        self.assertEqual(
            parse_mount_flag("source=v,target=/d,volume-nocopy,volume-opt=type=tmpfs"),
            {"Type": "volume", "Source": "v", "Target": "/d", "VolumeOptions": {
                "NoCopy": True, "DriverConfig": {"Options": {"type": "tmpfs"}}}})

    def test_tmpfs_size_and_mode(self):
        self.assertEqual(parse_mount_flag("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770"),
                         {"Type": "tmpfs", "Target": "/t",
                          "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1770}})

    def test_errors(self):
        for spec in ("type=bind,source=/h", "type=bind,bogus=1,target=/t", "target=/t,x"):
            with self.assertRaises(StatusError) as cm:
                parse_mount_flag(spec)
            self.assertEqual(cm.exception.status, 125)
            self.assertIn('for "--mount" flag', cm.exception.message)
