# -*- test-case-name: dockerpy.test.test_registry_client -*-
"""bin/docker's registry commands without a daemon: config.json credentials,
the X-Registry-Auth header built from them, and progress printing."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile

from twisted.trial import unittest

from dockerpy.client.command import Cli, StatusError
from dockerpy.client import registry


class _Lines:
    def __init__(self, messages):
        self.messages = messages

    def json_lines(self):
        return iter(self.messages)


class RegistryClientTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.out = io.BytesIO()
        self.cli = Cli("unix:///nonexistent", None, io.BytesIO(), self.out, io.BytesIO(),
                       {"DOCKER_CONFIG": self.tmp})

    def decode(self, header: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(header))

    def test_auth_header_uses_matching_config_entry(self):
        with open(os.path.join(self.tmp, "config.json"), "w") as f:
            json.dump({"auths": {"127.0.0.1:5000": {
                "auth": base64.b64encode(b"alice:pw:x").decode()}}}, f)
        self.assertEqual(self.decode(registry.auth_header(self.cli, "127.0.0.1:5000")),
                         {"username": "alice", "password": "pw:x",
                          "serveraddress": "127.0.0.1:5000"})
        self.assertEqual(self.decode(registry.auth_header(self.cli, "other:5000")), {})

    def test_docker_hub_names_share_the_index_key(self):
        self.assertEqual(registry.registry_of("busybox"), "docker.io")
        self.assertEqual(registry.registry_of("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000")
        for name in ("docker.io", "https://index.docker.io/v1/", "registry-1.docker.io"):
            self.assertEqual(registry._server_key(name), registry.INDEX_SERVER)

    def test_progress_prints_status_lines_and_skips_bars(self):
        registry.print_progress(self.cli, _Lines([
            {"status": "Pulling from test/x", "id": "1"},
            {"status": "Downloading", "progressDetail": {"current": 5, "total": 9}, "id": "ab"},
            {"status": "Pull complete", "progressDetail": {}, "id": "ab"},
            {"progressDetail": {}, "aux": {"Tag": "1"}}]))
        self.assertEqual(self.out.getvalue(), b"1: Pulling from test/x\nab: Pull complete\n")

    def test_error_in_stream_ends_the_command(self):
        e = self.assertRaises(StatusError, registry.print_progress, self.cli, _Lines([
            {"status": "x"}, {"errorDetail": {"message": "boom"}, "error": "boom"}]))
        self.assertEqual((e.status, e.message), (1, "boom"))
