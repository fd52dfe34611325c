"""Hostile input against a real daemon: clear 4xx answers, nothing leaked.

Every test ends with the fixture's leak check (mounts, runtime state) and
checks itself that the storage driver holds no layer the images and
containers do not account for.
"""

from __future__ import annotations

import io
import json
import os
import socket
import tarfile

from dockerpy.test.daemon_fixture import DaemonTestCase, settled_listdir


def _tar(entries) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
    return buf.getvalue()


class HostileInputTests(DaemonTestCase):
    def setUp(self):
        self.daemon = self.start_daemon()
        self.layers_before = self._driver_layers()

    def _driver_layers(self) -> set[str]:
        home = os.path.join(self.daemon.data_root, "storage", "overlay2")
        # An image's init layer outlives its containers (kept for the next
        # one, removed with the image): not a leak.
        return {n for n in settled_listdir(home) if n != "l" and not n.endswith("-init")} \
            if os.path.isdir(home) else set()

    def assertNoNewLayers(self):
        self.assertEqual(self._driver_layers(), self.layers_before)

    def assertError(self, status, expected_status, data, fragment):
        self.assertEqual(status, expected_status, data)
        body = json.loads(data)
        self.assertIn(fragment, body["message"])

    def test_bad_json_is_400(self):
        status, _, data = self.daemon.request("POST", "/containers/create", b"{not json",
                                              {"Content-Type": "application/json"})
        self.assertError(status, 400, data, "invalid JSON")
        self.assertNoNewLayers()

    def test_wrong_types_are_400_and_unknown_fields_ignored_like_docker(self):
        status, _, data = self.daemon.request(
            "POST", "/containers/create", {"Image": "busybox", "Cmd": 5})
        self.assertError(status, 400, data, "Cmd")
        status, _, data = self.daemon.request(
            "POST", "/containers/create?name=extra",
            {"Image": "busybox", "Cmd": ["true"], "NoSuchField": {"x": 1}})
        self.assertEqual(status, 201, data)
        self.assertEqual(self.daemon.json("DELETE", "/containers/extra")[0], 204)
        self.assertNoNewLayers()

    def test_missing_image_and_container_are_404(self):
        status, _, data = self.daemon.request(
            "POST", "/containers/create", {"Image": "nosuch:1", "Cmd": ["true"]})
        self.assertError(status, 404, data, "No such image: nosuch:1")
        for method, path in (("GET", "/containers/nosuch/json"),
                             ("POST", "/containers/nosuch/start"),
                             ("DELETE", "/containers/nosuch"),
                             ("GET", "/containers/nosuch/logs?stdout=1")):
            status, _, data = self.daemon.request(method, path)
            self.assertError(status, 404, data, "No such container: nosuch")
        status, _, data = self.daemon.request("GET", "/images/nosuch:2/json")
        self.assertError(status, 404, data, "No such image: nosuch:2")
        self.assertNoNewLayers()

    def test_huge_headers_are_refused(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.daemon.sock)
        s.settimeout(10)
        try:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (2 << 20)
                      + b"\r\n\r\n")
        except (ConnectionResetError, BrokenPipeError):
            pass
        reply = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
        finally:
            s.close()
        self.assertTrue(reply.startswith(b"HTTP/1.1 431 "), reply[:100])
        # and the daemon still answers
        self.assertEqual(self.daemon.request("GET", "/_ping")[0], 200)

    def test_import_with_path_traversal_is_400_and_stores_nothing(self):
        images_before = self.daemon.json("GET", "/images/json")[1]
        for entries in ([("../evil", "file", b"x")],
                        [("link", "hardlink", "../../etc/passwd")],
                        [("f", "file", b"x"), ("g", "hardlink", "/etc/passwd")]):
            status, _, data = self.daemon.request(
                "POST", "/images/create?fromSrc=-&repo=evil&tag=1", _tar(entries),
                {"Content-Type": "application/x-tar"})
            self.assertEqual(status, 400, (entries, data))
            self.assertTrue(json.loads(data)["message"], data)
        self.assertFalse(os.path.exists("/evil"))
        self.assertFalse(os.path.exists("/etc/evil"))
        self.assertEqual(self.daemon.json("GET", "/images/json")[1], images_before)
        self.assertNoNewLayers()

    def test_import_writing_through_a_symlink_stays_inside_the_layer(self):
        # Docker unpacks in a chroot: `a -> /` then `a/etc/evil` lands in the
        # layer's own /etc.  We get the same result without a chroot.
        status, _, data = self.daemon.request(
            "POST", "/images/create?fromSrc=-&repo=sneaky&tag=1",
            _tar([("a", "symlink", "/"), ("a/etc/evil", "file", b"x")]),
            {"Content-Type": "application/x-tar"})
        self.assertEqual(status, 200, data)
        self.assertFalse(os.path.exists("/etc/evil"))
        self.assertEqual(self.daemon.request("DELETE", "/images/sneaky:1")[0], 200)
        self.assertNoNewLayers()

    def test_load_with_path_traversal_is_400(self):
        archive = _tar([("../manifest.json", "file", b"[]")])
        status, _, data = self.daemon.request("POST", "/images/load", archive,
                                              {"Content-Type": "application/x-tar"})
        self.assertEqual(status, 400, data)
        self.assertNoNewLayers()

    def test_copy_into_container_cannot_escape_its_root(self):
        status, _, data = self.daemon.request(
            "POST", "/containers/create?name=target", {"Image": "busybox", "Cmd": ["true"]})
        self.assertEqual(status, 201, data)
        # the container's /escape is a symlink to / ; writing through it must stay inside
        status, _, data = self.daemon.request(
            "PUT", "/containers/target/archive?path=/",
            _tar([("escape", "symlink", "/"), ("escape/tmp/dockerpy-escaped", "file", b"x")]),
            {"Content-Type": "application/x-tar"})
        self.assertFalse(os.path.exists("/tmp/dockerpy-escaped"))
        status, _, data = self.daemon.request(
            "PUT", "/containers/target/archive?path=/tmp",
            _tar([("../../../../tmp/dockerpy-escaped2", "file", b"x")]),
            {"Content-Type": "application/x-tar"})
        self.assertFalse(os.path.exists("/tmp/dockerpy-escaped2"))
        self.assertIn(status, (200, 400), data)
        self.assertEqual(self.daemon.mounts(), [], "cp must not leave the rootfs mounted")
        self.assertEqual(self.daemon.json("DELETE", "/containers/target")[0], 204)
        self.assertNoNewLayers()

    def test_invalid_names_and_signals_are_400(self):
        status, _, data = self.daemon.request(
            "POST", "/containers/create?name=bad%20name", {"Image": "busybox", "Cmd": ["true"]})
        self.assertError(status, 400, data, "Invalid container name")
        status, _, data = self.daemon.request(
            "POST", "/containers/create?name=sig", {"Image": "busybox", "Cmd": ["sleep", "100"]})
        self.assertEqual(status, 201)
        self.assertEqual(self.daemon.request("POST", "/containers/sig/start")[0], 204)
        status, _, data = self.daemon.request("POST", "/containers/sig/kill?signal=NOPE")
        self.assertError(status, 400, data, "Invalid signal: NOPE")
        self.assertEqual(self.daemon.request("DELETE", "/containers/sig?force=1")[0], 204)
        self.assertNoNewLayers()


class RestartRecoveryTests(DaemonTestCase):
    def test_kill_9_then_restart_shows_container_exited_with_reason(self):
        d = self.start_daemon()
        status, body = d.json("POST", "/containers/create?name=survivor",
                              {"Image": "busybox", "Cmd": ["sleep", "1000"]})
        self.assertEqual(status, 201, body)
        self.assertEqual(d.request("POST", "/containers/survivor/start")[0], 204)
        pid = d.json("GET", "/containers/survivor/json")[1]["State"]["Pid"]
        self.assertTrue(os.path.exists(f"/proc/{pid}"))
        d.kill9()
        d.start()
        status, info = d.json("GET", "/containers/survivor/json")
        self.assertEqual(status, 200)
        self.assertEqual(info["State"]["Status"], "exited")
        self.assertFalse(info["State"]["Running"])
        self.assertIn("daemon", info["State"]["Error"])
        self.assertEqual(d.mounts(), [], "the restart cleaned the stale overlay mount")
        # the orphaned process was killed by the cleanup
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}") or \
                    open(f"/proc/{pid}/stat").read().split()[2] == "Z":
                break
            import time
            time.sleep(0.05)
        else:
            self.fail("container process survived the daemon restart")
        # and it can be started again
        self.assertEqual(d.request("POST", "/containers/survivor/start")[0], 204)
        self.assertEqual(d.request("DELETE", "/containers/survivor?force=1")[0], 204)
