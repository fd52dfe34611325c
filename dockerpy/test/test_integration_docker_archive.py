# -*- test-case-name: dockerpy.test.test_integration_docker_archive -*-
"""Interoperability of image archives with real Docker, without Docker.

``data/docker-20.10-save.tar`` is what ``docker save`` of Docker 20.10.24
(Debian's docker.io) wrote for two images it made itself: a one-layer
``docker import`` (a static ``tini`` and a few small files) and a two-layer
``docker commit`` on top of it (a new file, a symlink, a file whiteout of
``/etc/group``, an opaque directory ``/opt/d``), tagged three times.  It is the
classic docker-archive layout: ``manifest.json``, ``<image id>.json``,
``<v1 id>/layer.tar`` (one of them a symlink to another) and
``repositories``.  ``data/docker-20.10-save.json`` holds what that Docker
reported after ``docker load`` of this archive into an empty daemon (image
inspect and history at API v1.41, ``GET /containers/{id}/archive`` of a
container of the top image, the output of running it) and the recipe.

These tests load the archive into a real dockerpy daemon through the API and
through the docker CLI and check every field against Docker's answer, then
check that dockerpy's own ``docker save`` of those images loads into a fresh
daemon with the same ids.  (The other direction, dockerpy's archive into
Docker 20.10, was checked by hand; Docker is no test dependency.)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

from twisted.trial import unittest

from dockerpy.test.daemon_fixture import Daemon, DaemonTestCase

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ARCHIVE = os.path.join(DATA, "docker-20.10-save.tar")
RECORD = os.path.join(DATA, "docker-20.10-save.json")

BASE = "dockerpy-archive/base:1.0"
TOP = "dockerpy-archive/top:1.0"

#: Inspect fields whose value is the image's, not the daemon's (GraphDriver
#: names local directories; Metadata.LastTagTime is when *that* daemon tagged).
IMAGE_FIELDS = ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os",
                "RootFS")

_TYPES = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink",
          tarfile.LNKTYPE: "hardlink"}


def _record() -> dict:
    with open(RECORD) as f:
        return json.load(f)


def _archive_bytes() -> bytes:
    with open(ARCHIVE, "rb") as f:
        return f.read()


def _members(data: bytes, type_bits: bool = True) -> list[dict]:
    """The entries of a ``GET /containers/{id}/archive`` tar, shaped as recorded.

    :param type_bits: keep the ``S_IFMT`` bits Docker's tar writer puts in
        the mode field (``fillGo18FileTypeBits``); without them only the
        permission bits are compared.
    """
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            mode = m.mode if type_bits else m.mode & 0o7777
            entry = {"name": m.name, "type": _TYPES.get(m.type, repr(m.type)),
                     "mode": oct(mode), "uid": m.uid, "gid": m.gid, "mtime": int(m.mtime)}
            if m.issym() or m.islnk():
                entry["linkname"] = m.linkname
            if m.isfile():
                entry["size"] = m.size
                if m.size < 100:
                    entry["content"] = tar.extractfile(m).read().decode()
            out.append(entry)
    return out


def _permission_bits_only(members: list[dict]) -> list[dict]:
    return [dict(m, mode=oct(int(m["mode"], 8) & 0o7777)) for m in members]


def _stream_lines(body: bytes) -> list[str]:
    return [json.loads(line)["stream"].rstrip("\n") for line in body.splitlines() if line.strip()]


class ArchiveDataTests(unittest.TestCase):
    """The committed archive is the one Docker wrote, in Docker 20.10's layout."""

    def test_archive_is_the_recorded_docker_save_output(self):
        self.assertEqual(hashlib.sha256(_archive_bytes()).hexdigest(),
                         _record()["archive_sha256"])

    def test_archive_has_classic_docker_archive_layout(self):
        record = _record()
        with tarfile.open(ARCHIVE) as tar:
            names = set(tar.getnames())
            manifest = json.load(tar.extractfile("manifest.json"))
            symlinked = [m.name for m in tar if m.issym() and m.name.endswith("/layer.tar")]
        self.assertIn("repositories", names)
        self.assertFalse(any(n.startswith("blobs/") for n in names),
                         "Docker 20.10 writes no OCI layout")
        self.assertEqual(len(symlinked), 1, "the shared base layer is a symlinked layer.tar")
        by_tags = {tuple(item["RepoTags"]): item for item in manifest}
        top = by_tags[(TOP, "dockerpy-archive/top:latest")]
        self.assertEqual(top["Config"],
                         record["images"][TOP]["inspect"]["Id"][7:] + ".json")
        self.assertEqual(len(top["Layers"]), 2)
        self.assertEqual(top["Parent"], record["images"][BASE]["inspect"]["Id"])


class DaemonTestBase(DaemonTestCase):
    need_cli = False

    def setUp(self):
        self.record = _record()

    def start_daemon(self) -> Daemon:
        return super().start_daemon(cli=self.need_cli, busybox=False)

    def api_load(self, daemon: Daemon, data: bytes) -> list[str]:
        status, _, body = daemon.request("POST", "/images/load", data,
                                         {"Content-Type": "application/x-tar"})
        self.assertEqual(status, 200, body)
        return _stream_lines(body)

    def assertImagesAsDocker(self, daemon: Daemon, refs=(BASE, TOP)) -> None:
        """Inspect (at Docker 20.10's API version) and history are Docker's."""
        for ref in refs:
            expected = self.record["images"][ref]
            status, got = daemon.json("GET", f"/v1.41/images/{ref}/json")
            self.assertEqual(status, 200, got)
            for field in IMAGE_FIELDS:
                self.assertEqual(got.get(field), expected["inspect"][field], f"{ref} {field}")
            status, history = daemon.json("GET", f"/v1.41/images/{ref}/history")
            self.assertEqual(status, 200, history)
            # Size: see SizeTests.
            strip = [{k: v for k, v in h.items() if k != "Size"} for h in history]
            self.assertEqual(strip, [{k: v for k, v in h.items() if k != "Size"}
                                     for h in expected["history"]], ref)


class APILoadTests(DaemonTestBase):
    """``POST /images/load`` of Docker 20.10's archive."""

    def setUp(self):
        super().setUp()
        self.daemon = self.start_daemon()
        self.lines = self.api_load(self.daemon, _archive_bytes())

    def test_load_reports_every_tag_as_docker_does(self):
        self.assertEqual(self.lines, self.record["load_output"])

    def test_load_keeps_ids_tags_layers_config_and_history(self):
        self.assertImagesAsDocker(self.daemon)
        status, latest = self.daemon.json("GET", "/images/dockerpy-archive/top:latest/json")
        self.assertEqual(latest["Id"], self.record["images"][TOP]["inspect"]["Id"])

    def test_layers_are_applied_with_whiteouts_and_metadata(self):
        """What a container of the top image sees is what Docker's saw:
        the second layer's file and symlink, /etc/group whited out, the
        opaque /opt/d hiding the base's /opt/d/old, owners, modes, mtimes."""
        expected = self.record["container_archive"]["paths"]
        status, created = self.daemon.json("POST", "/containers/create",
                                           {"Image": TOP, "HostConfig": {"NetworkMode": "none"}})
        self.assertEqual(status, 201, created)
        cid = created["Id"]
        self.addCleanup(self.daemon.request, "DELETE", f"/containers/{cid}?v=1&force=1")
        for path in ("/f", "/link-to-f", "/opt/d", "/home/user", "/bin"):
            status, _, body = self.daemon.request("GET", f"/containers/{cid}/archive?path={path}")
            self.assertEqual(status, 200, body)
            # Mode type bits: see test_archive_modes_carry_file_type_bits.
            self.assertEqual(_members(body, type_bits=False),
                             _permission_bits_only(expected[path]["members"]), path)
        # /etc also holds the files each daemon makes for the container
        # (hostname, hosts, ...): compare only what the image decides.
        status, _, body = self.daemon.request("GET", f"/containers/{cid}/archive?path=/etc")
        self.assertEqual(status, 200, body)
        image_etc = [m for m in expected["/etc"]["members"] if m["name"] in ("etc/passwd",)]
        got = _members(body, type_bits=False)
        self.assertEqual([m for m in got if m["name"] == "etc/passwd"],
                         _permission_bits_only(image_etc))
        self.assertNotIn("etc/group", [m["name"] for m in got])
        for path in ("/etc/group", "/opt/d/old"):
            status, _, body = self.daemon.request("GET", f"/containers/{cid}/archive?path={path}")
            self.assertEqual(status, expected[path]["status"], body)
            self.assertEqual(status, 404)

    def test_missing_path_error_names_the_container_as_requested(self):
        """Docker's ``containerFileNotFound{path, name}`` carries the name or
        id the client used (Docker 20.10 said the full id here)."""
        status, created = self.daemon.json("POST", "/containers/create",
                                           {"Image": TOP, "HostConfig": {"NetworkMode": "none"}})
        self.assertEqual(status, 201, created)
        cid = created["Id"]
        self.addCleanup(self.daemon.request, "DELETE", f"/containers/{cid}?v=1&force=1")
        status, _, body = self.daemon.request("GET", f"/containers/{cid}/archive?path=/etc/group")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["message"],
                         f"Could not find the file /etc/group in container {cid}")


    def test_archive_modes_carry_file_type_bits(self):
        """Docker's tar headers (``docker cp``, ``GET .../archive``, layer
        diffs) hold ``S_IFREG``/``S_IFDIR``/``S_IFLNK`` in the mode field, as
        Go 1.8's archive/tar did: 0o100644, not 0o644."""
        status, created = self.daemon.json("POST", "/containers/create",
                                           {"Image": TOP, "HostConfig": {"NetworkMode": "none"}})
        self.assertEqual(status, 201, created)
        cid = created["Id"]
        self.addCleanup(self.daemon.request, "DELETE", f"/containers/{cid}?v=1&force=1")
        status, _, body = self.daemon.request("GET", f"/containers/{cid}/archive?path=/opt/d")
        self.assertEqual(status, 200, body)
        self.assertEqual([m["mode"] for m in _members(body)],
                         [m["mode"] for m in self.record["container_archive"]["paths"]["/opt/d"]
                          ["members"]])

    def test_image_runs_with_its_config(self):
        """Entrypoint + Cmd, User 1000:1000 and WorkingDir /opt/d from the
        committed config start the static tini of the base layer."""
        status, created = self.daemon.json("POST", "/containers/create",
                                           {"Image": TOP, "HostConfig": {"NetworkMode": "none"}})
        self.assertEqual(status, 201, created)
        cid = created["Id"]
        self.addCleanup(self.daemon.request, "DELETE", f"/containers/{cid}?v=1&force=1")
        status, _, body = self.daemon.request("POST", f"/containers/{cid}/start")
        self.assertEqual(status, 204, body)
        status, waited = self.daemon.json("POST", f"/containers/{cid}/wait")
        self.assertEqual(waited["StatusCode"], self.record["run"]["exit_code"])
        status, _, logs = self.daemon.request("GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
        self.assertEqual(logs, bytes.fromhex(self.record["run"]["logs_raw_hex"]))
        status, info = self.daemon.json("GET", f"/containers/{cid}/json")
        self.assertEqual((info["Path"], info["Args"]),
                         ("/sbin/tini", ["--", "/sbin/tini", "--version"]))
        self.assertEqual((info["Config"]["User"], info["Config"]["WorkingDir"]),
                         ("1000:1000", "/opt/d"))


class CLILoadTests(DaemonTestBase):
    """``docker load`` (the real CLI) of Docker 20.10's archive."""

    need_cli = True

    def setUp(self):
        super().setUp()
        self.daemon = self.start_daemon()

    def test_cli_load_prints_tags_and_keeps_ids(self):
        result = self.daemon.cli("load", "-i", ARCHIVE, check=True)
        self.assertEqual(result.stdout.decode().splitlines(), self.record["load_output"])
        self.assertImagesAsDocker(self.daemon)
        out = self.daemon.cli("image", "inspect", "-f", "{{.Id}} {{json .RootFS.Layers}}",
                              TOP, check=True).stdout.decode()
        inspect = self.record["images"][TOP]["inspect"]
        layers = json.dumps(inspect["RootFS"]["Layers"], separators=(",", ":"))
        self.assertEqual(out, f"{inspect['Id']} {layers}\n")

    def test_cli_run_of_loaded_image(self):
        self.daemon.cli("load", "-i", ARCHIVE, check=True)
        result = self.daemon.cli("run", "--rm", "--network", "none", TOP, check=True)
        self.assertEqual(result.stdout, b"tini version 0.19.0\n")
        self.assertEqual(self.daemon.cli("ps", "-aq", check=True).stdout, b"")


class SaveRoundTripTests(DaemonTestBase):
    """dockerpy's ``docker save`` of Docker's images loads back unchanged."""

    need_cli = True

    def test_save_then_load_into_fresh_daemon_keeps_ids(self):
        first = self.start_daemon()
        self.api_load(first, _archive_bytes())
        saved = first.cli("save", TOP, BASE, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(saved)) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))
            blobs = {m.name: tar.extractfile(m).read() for m in tar
                     if m.isfile() and m.name.startswith("blobs/sha256/")}
        # Every blob is named for its content: layers by diff id, configs by image id.
        for name, content in blobs.items():
            self.assertEqual(hashlib.sha256(content).hexdigest(), name.rsplit("/", 1)[1])
        self.assertEqual(sorted(tuple(item["RepoTags"]) for item in manifest),
                         [(BASE,), (TOP,)])

        second = self.start_daemon()
        lines = self.api_load(second, saved)
        self.assertEqual(lines, [f"Loaded image: {TOP}", f"Loaded image: {BASE}"])
        self.assertImagesAsDocker(second, refs=(BASE,))
        expected = self.record["images"][TOP]["inspect"]
        status, got = second.json("GET", f"/v1.41/images/{TOP}/json")
        self.assertEqual(status, 200, got)
        # Only the tags named to save travel: top:latest stays behind.
        self.assertEqual(got["RepoTags"], [TOP])
        for field in IMAGE_FIELDS:
            if field != "RepoTags":
                self.assertEqual(got.get(field), expected[field], field)


class SizeTests(DaemonTestBase):
    """Docker's overlay2 sizes a layer by ``directory.Size`` of its diff
    directory after applying it, which counts symlinks (their target's
    length): 10 bytes for ``/bin/tini -> /sbin/tini`` in the base layer, 1 for
    ``/link-to-f -> f`` in the top layer."""

    def test_image_and_layer_sizes_are_dockers(self):
        daemon = self.start_daemon()
        self.api_load(daemon, _archive_bytes())
        for ref in (BASE, TOP):
            expected = self.record["images"][ref]
            status, got = daemon.json("GET", f"/v1.41/images/{ref}/json")
            self.assertEqual((got["Size"], got["VirtualSize"]),
                             (expected["inspect"]["Size"], expected["inspect"]["VirtualSize"]),
                             ref)
            status, history = daemon.json("GET", f"/v1.41/images/{ref}/history")
            self.assertEqual([h["Size"] for h in history],
                             [h["Size"] for h in expected["history"]], ref)

