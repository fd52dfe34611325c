# -*- test-case-name: dockerpy.test.test_image_store -*-
"""Tests for dockerpy.images.store: ids, import, load, save, tags, removal.

The same suite runs against the in-memory fake driver and, as root, the real
vfs driver.  Archives are built here with ``tarfile`` the way Docker writes
them (docker-archive with a v1 layout, Docker 25+'s combined layout, OCI).
"""

from __future__ import annotations

import bz2
import datetime
import gzip
import hashlib
import io
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import threading
from typing import IO

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from dockerpy.errors import Conflict, InvalidParameter, NotFound
from dockerpy.images.store import (EMPTY_LAYER_DIFF_ID, ImageStore, apply_changes,
                                   chain_ids, encode_image_config)
from dockerpy.interfaces import IStorageDriver
from dockerpy.test.fake_storage import FakeStorageDriver

try:
    import zstandard
except ImportError:  # pragma: no cover - zstandard comes with the registry code
    zstandard = None


def zstd(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data)

NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=datetime.timezone.utc)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def image_config(diff_ids: list[str], history: int | None = None, **extra) -> bytes:
    n = len(diff_ids) if history is None else history
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "created": "2023-01-01T00:00:00.5Z",
        "history": [{"created": "2023-01-01T00:00:00Z", "created_by": f"step {i}"}
                    for i in range(n)],
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config.update(extra)
    # Deliberately not our own encoding: loaded configs are kept byte for byte.
    return json.dumps(config, indent=1).encode()


def tar_of(members: list[tuple[str, bytes | str]]) -> bytes:
    """An archive; a ``str`` content makes a symlink to that target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def v1_archive(config: bytes, layers: list[bytes], tags: list[str] | None,
               gzip_layers: bool = False) -> bytes:
    """A pre-25 docker-archive: ``<id>.json`` and ``<v1id>/layer.tar``; the
    last layer is a symlink to the first when they are equal."""
    image_hex = sha(config)[7:]
    members: list[tuple[str, bytes | str]] = [(image_hex + ".json", config)]
    paths = []
    first = None
    for i, data in enumerate(layers):
        v1 = hashlib.sha256(b"v1-%d" % i).hexdigest()
        path = f"{v1}/layer.tar"
        if first is not None and data == layers[0]:
            members.append((path, f"../{first}"))
        else:
            members.append((path, gzip.compress(data, mtime=0) if gzip_layers else data))
        first = first or path
        paths.append(path)
    manifest = [{"Config": image_hex + ".json", "RepoTags": tags, "Layers": paths}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return tar_of(members)


def oci_archive(config: bytes, layers: list[bytes], name: str | None,
                corrupt_layer: bool = False) -> bytes:
    """An OCI image layout with gzip-compressed layer blobs."""
    members: list[tuple[str, bytes | str]] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]
    descs = []
    for data in layers:
        blob = gzip.compress(data, mtime=0)
        digest = sha(blob)
        if corrupt_layer:
            blob = blob[:-1] + bytes([blob[-1] ^ 1])
        members.append(("blobs/sha256/" + digest[7:], blob))
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": digest, "size": len(blob)})
    members.append(("blobs/sha256/" + sha(config)[7:], config))
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(config), "size": len(config)},
        "layers": descs}).encode()
    members.append(("blobs/sha256/" + sha(manifest)[7:], manifest))
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(manifest), "size": len(manifest)}
    if name:
        desc["annotations"] = {"io.containerd.image.name": name,
                               "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}
    members.append(("index.json", json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()))
    return tar_of(members)


def never_used(image_id: str) -> None:
    return None


BASE = layer_tar({"bin/sh": b"#!shell", "etc/passwd": b"root:x:0:0::/root:/bin/sh\n"})
TOP = layer_tar({"app/run": b"run"})


class StoreTestsMixin:
    """The store's behaviour; subclasses provide ``make_driver``."""

    def make_driver(self, home: str):
        raise NotImplementedError

    def write_in_layer(self, driver, layer_id: str, path: str, data: bytes) -> None:
        raise NotImplementedError

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dockerpy-image-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.driver = self.make_driver(os.path.join(self.dir, "storage"))
        self.store = ImageStore(os.path.join(self.dir, "image"), self.driver)

    def reopen(self) -> ImageStore:
        return ImageStore(os.path.join(self.dir, "image"), self.driver)

    def layer_dirs(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.dir, "image", "layers", "sha256")))

    def import_base(self, ref: str | None = "busybox:latest", data: bytes = BASE):
        return self.store.import_tar(io.BytesIO(data), ref, [], "", NOW)

    def load(self, archive: bytes) -> list[str]:
        return self.store.load(io.BytesIO(archive))

    def load_two_layer(self, tags=("app:1",)):
        config = image_config([sha(BASE), sha(TOP)])
        lines = self.load(v1_archive(config, [BASE, TOP], list(tags)))
        return self.store.resolve(sha(config)), lines

    # -- import ---------------------------------------------------------------

    def test_import_ids_follow_docker(self) -> None:
        image = self.import_base()
        self.assertEqual(image.id, sha(image.raw_config))
        self.assertEqual(image.diff_ids, (sha(BASE),))
        self.assertEqual(image.layers, (sha(BASE),))
        config = json.loads(image.raw_config)
        self.assertEqual(config["rootfs"], {"type": "layers", "diff_ids": [sha(BASE)]})
        self.assertEqual(config["os"], "linux")
        self.assertEqual(config["created"], "2024-05-06T07:08:09.123Z")
        self.assertEqual(config["history"], [{"created": "2024-05-06T07:08:09.123Z",
                                              "comment": "Imported from -"}])
        self.assertEqual(config["comment"], "Imported from -")
        self.assertIn("docker_version", config)
        self.assertIsNone(config["config"]["Cmd"])
        self.assertEqual(image.repo_tags, ("busybox:latest",))

    def test_import_layer_directory_and_random_cache_id(self) -> None:
        image = self.import_base()
        layer_dir = os.path.join(self.dir, "image", "layers", "sha256", image.layers[0][7:])
        with open(os.path.join(layer_dir, "diff")) as f:
            self.assertEqual(f.read(), sha(BASE))
        with open(os.path.join(layer_dir, "cache-id")) as f:
            cache_id = f.read()
        self.assertNotEqual(cache_id, image.layers[0][7:])
        self.assertEqual(self.store.top_layer(image), cache_id)
        self.assertTrue(self.driver.exists(cache_id))
        self.assertFalse(os.path.exists(os.path.join(layer_dir, "parent")))
        self.assertEqual(self.layer_dirs(), [image.layers[0][7:]])

    def test_import_detects_compression(self) -> None:
        plain = self.import_base(None)
        for compress in (lambda d: gzip.compress(d, mtime=0), bz2.compress, lzma.compress):
            image = self.store.import_tar(io.BytesIO(compress(BASE)), None, [], "", NOW)
            self.assertEqual(image.diff_ids, plain.diff_ids)

    def test_import_of_zstd_stream(self) -> None:
        plain = self.import_base(None)
        # Two frames, as parallel compressors write them, make one layer.
        half = len(BASE) // 2
        image = self.store.import_tar(io.BytesIO(zstd(BASE[:half]) + zstd(BASE[half:])),
                                      None, [], "", NOW)
        self.assertEqual(image.diff_ids, plain.diff_ids)

    def test_import_of_zstd_with_trailing_garbage_leaves_nothing(self) -> None:
        e = self.assertRaises(InvalidParameter, self.store.import_tar,
                              io.BytesIO(zstd(BASE) + b"junk"), None, [], "", NOW)
        self.assertIn("zstd", str(e))
        self.assertEqual(self.store.images(), [])
        self.assertEqual(self.layer_dirs(), [])

    def test_import_applies_changes(self) -> None:
        image = self.store.import_tar(
            io.BytesIO(BASE), "x", [
                'CMD ["sh", "-c", "echo hi"]', "ENV A=b C=\"d e\"", "ENV P $A/x",
                "WORKDIR /srv", "WORKDIR app", "EXPOSE 80 53/udp", "LABEL k=v",
                "VOLUME /data", "USER nobody", "STOPSIGNAL SIGINT",
                "ENTRYPOINT /bin/entry"], "my message", NOW)
        config = image.config["config"]
        self.assertEqual(config["Cmd"], ["sh", "-c", "echo hi"])
        self.assertEqual(config["Env"], ["A=b", "C=d e", "P=b/x"])
        self.assertEqual(config["WorkingDir"], "/srv/app")
        self.assertEqual(config["ExposedPorts"], {"80/tcp": {}, "53/udp": {}})
        self.assertEqual(config["Labels"], {"k": "v"})
        self.assertEqual(config["Volumes"], {"/data": {}})
        self.assertEqual(config["User"], "nobody")
        self.assertEqual(config["StopSignal"], "SIGINT")
        self.assertEqual(config["Entrypoint"], ["/bin/sh", "-c", "/bin/entry"])
        self.assertEqual(image.config["comment"], "my message")

    def test_import_bad_change_leaves_nothing(self) -> None:
        e = self.assertRaises(InvalidParameter, self.store.import_tar,
                              io.BytesIO(BASE), None, ["RUN echo"], "", NOW)
        self.assertEqual(str(e), "run is not a valid change command")
        self.assertEqual(self.store.images(), [])
        self.assertEqual(self.layer_dirs(), [])

    def test_import_same_content_shares_the_layer(self) -> None:
        a = self.import_base("a")
        b = self.store.import_tar(io.BytesIO(BASE), "b", [], "other", NOW)
        self.assertNotEqual(a.id, b.id)
        self.assertEqual(a.layers, b.layers)
        self.assertEqual(len(self.layer_dirs()), 1)

    def test_import_of_garbage_leaves_nothing(self) -> None:
        self.assertRaises(InvalidParameter, self.store.import_tar,
                          io.BytesIO(b"\x01not a tar" * 200), None, [], "", NOW)
        self.assertEqual(self.store.images(), [])
        self.assertEqual(self.layer_dirs(), [])

    def test_concurrent_imports_of_the_same_layer(self) -> None:
        results: list = []

        def work(n: int) -> None:
            results.append(self.store.import_tar(io.BytesIO(BASE), f"t{n}", [], str(n), NOW))

        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len(results), 4)
        self.assertEqual(len({i.id for i in self.store.images()}), 4)
        self.assertEqual(self.layer_dirs(), [sha(BASE)[7:]])
        self.assertEqual(len({self.store.top_layer(i) for i in results}), 1)
        self.assertTrue(self.driver.exists(self.store.top_layer(results[0])))

    # -- ids --------------------------------------------------------------------

    def test_chain_ids_are_dockers(self) -> None:
        image, _ = self.load_two_layer()
        first = sha(BASE)
        second = "sha256:" + hashlib.sha256(f"{first} {sha(TOP)}".encode()).hexdigest()
        self.assertEqual(image.layers, (first, second))
        self.assertEqual(chain_ids([sha(BASE), sha(TOP)]), [first, second])
        with open(os.path.join(self.dir, "image", "layers", "sha256", second[7:],
                               "parent")) as f:
            self.assertEqual(f.read(), first)

    # -- load -------------------------------------------------------------------

    def test_load_v1_archive_with_gzip_layers_and_symlink(self) -> None:
        config = image_config([sha(BASE), sha(TOP), sha(BASE)])
        lines = self.load(v1_archive(config, [BASE, TOP, BASE], ["busybox:1"], gzip_layers=True))
        self.assertEqual(lines, ["Loaded image: busybox:1"])
        image = self.store.resolve("busybox:1")
        self.assertEqual(image.id, sha(config))
        self.assertEqual(image.raw_config, config)
        self.assertEqual(len(image.layers), 3)

    def test_load_untagged_prints_image_id(self) -> None:
        config = image_config([sha(BASE)])
        self.assertEqual(self.load(v1_archive(config, [BASE], None)),
                         [f"Loaded image ID: {sha(config)}"])

    def test_load_retag_reports_the_old_image(self) -> None:
        old = self.import_base("app:1")
        _, lines = self.load_two_layer()
        self.assertEqual(lines, [
            f"The image app:1 already exists, renaming the old one with ID {old.id} "
            "to empty string", "Loaded image: app:1"])
        self.assertEqual(self.store.resolve(old.id).repo_tags, ())

    def test_load_diff_id_mismatch_stores_nothing(self) -> None:
        config = image_config([sha(BASE), sha(b"something else")])
        e = self.assertRaises(InvalidParameter, self.load,
                              v1_archive(config, [BASE, TOP], ["x:1"]))
        self.assertEqual(str(e), f'invalid diffID for layer 1: expected "{sha(b"something else")}"'
                                 f', got "{sha(TOP)}"')
        self.assertEqual(self.store.images(), [])
        self.assertEqual(self.layer_dirs(), [])
        self.assertEqual(os.listdir(os.path.join(self.dir, "image", "tmp")), [])

    def test_load_keeps_existing_layers_on_failure(self) -> None:
        self.import_base()
        config = image_config([sha(BASE), sha(b"other")])
        self.assertRaises(InvalidParameter, self.load, v1_archive(config, [BASE, TOP], None))
        self.assertEqual(self.layer_dirs(), [sha(BASE)[7:]])

    def test_load_layer_count_mismatch(self) -> None:
        config = image_config([sha(BASE)])
        archive = v1_archive(config, [BASE, TOP], None)
        e = self.assertRaises(InvalidParameter, self.load, archive)
        self.assertEqual(str(e), "invalid manifest, layers length mismatch: expected 2, got 1")

    def test_load_rejects_path_traversal(self) -> None:
        archive = tar_of([("../evil", b"x"), ("manifest.json", b"[]")])
        e = self.assertRaises(InvalidParameter, self.load, archive)
        self.assertIn("outside the archive", str(e))

    def test_load_rejects_symlink_escape(self) -> None:
        config = image_config([sha(BASE)])
        archive = tar_of([("c.json", config), ("l/layer.tar", "../../../etc/passwd"),
                          ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": None,
                                                         "Layers": ["l/layer.tar"]}]).encode())])
        self.assertRaises(InvalidParameter, self.load, archive)

    def test_load_rejects_non_archive(self) -> None:
        self.assertRaises(InvalidParameter, self.load, b"not a tar at all" * 100)

    def test_load_oci_layout(self) -> None:
        config = image_config([sha(BASE), sha(TOP)])
        lines = self.load(oci_archive(config, [BASE, TOP], "docker.io/library/oci:2"))
        self.assertEqual(lines, ["Loaded image: oci:2"])
        self.assertEqual(self.store.resolve("oci:2").id, sha(config))

    def test_load_oci_blob_digest_mismatch(self) -> None:
        config = image_config([sha(BASE)])
        e = self.assertRaises(InvalidParameter, self.load,
                              oci_archive(config, [BASE], "x:1", corrupt_layer=True))
        self.assertIn("digest mismatch", str(e))
        self.assertEqual(self.layer_dirs(), [])

    def test_load_compressed_archive(self) -> None:
        config = image_config([sha(BASE)])
        lines = self.load(gzip.compress(v1_archive(config, [BASE], ["z:1"])))
        self.assertEqual(lines, ["Loaded image: z:1"])

    def test_load_zstd_layers_and_save_gives_the_tars_back(self) -> None:
        config = image_config([sha(BASE), sha(TOP)])
        archive = tar_of([("c.json", config), ("a/layer.tar", zstd(BASE)),
                          ("b/layer.tar", zstd(TOP)),
                          ("manifest.json", json.dumps([{
                              "Config": "c.json", "RepoTags": ["zst:1"],
                              "Layers": ["a/layer.tar", "b/layer.tar"]}]).encode())])
        self.assertEqual(self.load(archive), ["Loaded image: zst:1"])
        image = self.store.resolve("zst:1")
        self.assertEqual(image.id, sha(config))
        top = self.store.layer(image.layers[1])
        self.assertEqual(self.store.layer_blob(top)[1], "zstd")
        self.assertEqual(self.store.layer_tar_size(top), len(TOP))
        buf = io.BytesIO()
        self.store.save(["zst:1"], buf)
        files = self.read_archive(buf.getvalue())
        self.assertEqual(files["blobs/sha256/" + sha(BASE)[7:]], BASE)
        self.assertEqual(files["blobs/sha256/" + sha(TOP)[7:]], TOP)

    # -- add_image (pull) ---------------------------------------------------------

    def blob_file(self, data: bytes) -> str:
        fd, path = tempfile.mkstemp(dir=self.dir)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return path

    def test_add_image_links_a_downloaded_blob_instead_of_copying_it(self) -> None:
        blob = gzip.compress(BASE, mtime=0)
        path = self.blob_file(blob)

        class Download(io.BytesIO):
            """Like a registry download: names the file holding the blob."""

        def opener() -> IO[bytes]:
            stream = Download(blob)
            stream.path = path
            return stream

        config = image_config([sha(BASE)])
        image = self.store.add_image(config, [opener], ref="pulled:1")
        layer = self.store.layer(image.layers[0])
        kept, kind = self.store.layer_blob(layer)
        self.assertEqual(kind, "gzip")
        self.assertTrue(os.path.samefile(kept, path))
        self.assertEqual(os.path.basename(kept), "layer.tar.gz")
        with self.store.open_layer_tar(layer) as f:
            self.assertEqual(f.read(), BASE)
        self.assertEqual(self.store.layer_tar_size(layer), len(BASE))
        buf = io.BytesIO()
        self.store.save(["pulled:1"], buf)
        self.assertEqual(self.read_archive(buf.getvalue())["blobs/sha256/" + sha(BASE)[7:]],
                         BASE)

    def test_add_image_reports_each_layer_in_chain_order(self) -> None:
        layers = [BASE, TOP, layer_tar({"third": b"3"})]
        done: list[int] = []
        self.store.add_image(image_config([sha(d) for d in layers]),
                             [lambda d=d: io.BytesIO(d) for d in layers],
                             on_layer=done.append)
        self.assertEqual(done, [0, 1, 2])

    # -- save -------------------------------------------------------------------

    def read_archive(self, data: bytes) -> dict[str, bytes]:
        out = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                if m.isreg():
                    out[m.name] = tar.extractfile(m).read()
        return out

    def test_save_layout_is_dockers(self) -> None:
        image, _ = self.load_two_layer()
        buf = io.BytesIO()
        self.store.save(["app:1"], buf)
        files = self.read_archive(buf.getvalue())
        for name, data in files.items():
            if name.startswith("blobs/sha256/"):
                self.assertEqual(sha(data)[7:], name.rsplit("/", 1)[1])
        manifest = json.loads(files["manifest.json"])
        self.assertEqual(manifest, [{
            "Config": "blobs/sha256/" + image.id[7:], "RepoTags": ["app:1"],
            "Layers": ["blobs/sha256/" + sha(BASE)[7:], "blobs/sha256/" + sha(TOP)[7:]]}])
        self.assertEqual(files["blobs/sha256/" + sha(TOP)[7:]], TOP)
        self.assertEqual(json.loads(files["repositories"]), {"app": {"1": sha(TOP)[7:]}})
        self.assertEqual(json.loads(files["oci-layout"]), {"imageLayoutVersion": "1.0.0"})
        index = json.loads(files["index.json"])
        [desc] = index["manifests"]
        self.assertEqual(desc["annotations"], {
            "io.containerd.image.name": "docker.io/library/app:1",
            "org.opencontainers.image.ref.name": "1"})
        oci = json.loads(files["blobs/sha256/" + desc["digest"][7:]])
        self.assertEqual(oci["config"]["digest"], image.id)
        self.assertEqual([l["digest"] for l in oci["layers"]], [sha(BASE), sha(TOP)])

    def test_save_then_load_keeps_ids(self) -> None:
        base = self.import_base()
        buf = io.BytesIO()
        self.store.save(["busybox"], buf)
        other = self.make_driver(os.path.join(self.dir, "storage2"))
        fresh = ImageStore(os.path.join(self.dir, "image2"), other)
        self.assertEqual(fresh.load(io.BytesIO(buf.getvalue())), ["Loaded image: busybox:latest"])
        self.assertEqual(fresh.resolve("busybox").id, base.id)
        # The OCI half alone loads too.
        files = self.read_archive(buf.getvalue())
        oci_only = tar_of([(n, d) for n, d in files.items()
                           if n != "manifest.json" and n != "repositories"])
        third = ImageStore(os.path.join(self.dir, "image3"),
                           self.make_driver(os.path.join(self.dir, "storage3")))
        self.assertEqual(third.load(io.BytesIO(oci_only)), ["Loaded image: busybox:latest"])
        self.assertEqual(third.resolve("busybox").id, base.id)

    def test_save_unknown_name(self) -> None:
        e = self.assertRaises(NotFound, self.store.save, ["nope:1"], io.BytesIO())
        self.assertEqual(str(e), "No such image: nope:1")

    # -- resolve ------------------------------------------------------------------

    def test_resolve_forms(self) -> None:
        image = self.import_base()
        hex_id = image.id[7:]
        for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest",
                    image.id, hex_id, hex_id[:12], hex_id[:1], "sha256:" + hex_id[:5]):
            self.assertEqual(self.store.resolve(ref).id, image.id, ref)

    def test_resolve_missing_and_ambiguous(self) -> None:
        # 17 images: two of them must share their first hex digit.
        first: dict[str, str] = {}
        for i in range(17):
            image = self.store.import_tar(io.BytesIO(layer_tar({"f": b"%d" % i})), None, [],
                                          "", NOW)
            first.setdefault(image.id[7], image.id)
            if first[image.id[7]] != image.id:
                ambiguous = image.id[7]
        e = self.assertRaises(NotFound, self.store.resolve, ambiguous)
        self.assertEqual(str(e), f"No such image: {ambiguous}:latest")
        self.assertRaises(NotFound, self.store.resolve, "sha256:" + ambiguous)
        e = self.assertRaises(NotFound, self.store.resolve, "nothing")
        self.assertEqual(str(e), "No such image: nothing:latest")
        self.assertRaises(InvalidParameter, self.store.resolve, "Upper")

    # -- tag --------------------------------------------------------------------

    def test_tag_adds_reference_and_last_tag_time(self) -> None:
        image = self.import_base()
        self.assertEqual(self.store.tag("busybox", "localhost:5000/bb", "v1", NOW),
                         "localhost:5000/bb:v1")
        tagged = self.store.resolve("localhost:5000/bb:v1")
        self.assertEqual(tagged.id, image.id)
        self.assertEqual(tagged.repo_tags, ("busybox:latest", "localhost:5000/bb:v1"))
        self.assertEqual(self.store.inspect(tagged)["Metadata"]["LastTagTime"],
                         "2024-05-06T07:08:09.123Z")
        with open(os.path.join(self.dir, "image", "repositories.json")) as f:
            self.assertEqual(json.load(f), {"Repositories": {
                "busybox": {"busybox:latest": image.id},
                "localhost:5000/bb": {"localhost:5000/bb:v1": image.id}}})

    def test_tag_persists(self) -> None:
        image = self.import_base()
        self.store.tag(image.id, "again", None)
        self.assertEqual(self.reopen().resolve("again:latest").id, image.id)

    # -- remove -----------------------------------------------------------------

    def test_remove_name_untags_only_while_other_tags_remain(self) -> None:
        image = self.import_base()
        self.store.tag("busybox", "busybox", "2")
        self.assertEqual(self.store.remove("busybox", False, False, never_used),
                         [{"Untagged": "busybox:latest"}])
        self.assertEqual(self.store.resolve(image.id).repo_tags, ("busybox:2",))

    def test_remove_last_tag_deletes_image_and_layers(self) -> None:
        image = self.import_base()
        cache_id = self.store.top_layer(image)
        self.assertEqual(self.store.remove("busybox", False, False, never_used), [
            {"Untagged": "busybox:latest"}, {"Deleted": image.id},
            {"Deleted": image.layers[0]}])
        self.assertEqual(self.store.images(), [])
        self.assertEqual(self.layer_dirs(), [])
        self.assertFalse(self.driver.exists(cache_id))
        self.assertEqual(os.listdir(os.path.join(self.dir, "image", "blobs", "sha256")), [])

    def test_remove_id_with_several_repositories_needs_force(self) -> None:
        image = self.import_base()
        self.store.tag("busybox", "other", None)
        e = self.assertRaises(Conflict, self.store.remove, image.id[7:19], False, False,
                              never_used)
        self.assertEqual(str(e), f"conflict: unable to delete {image.id[7:19]} (must be forced)"
                                 " - image is referenced in multiple repositories")
        records = self.store.remove(image.id[7:19], True, False, never_used)
        self.assertEqual(records[:3], [{"Untagged": "busybox:latest"},
                                       {"Untagged": "other:latest"}, {"Deleted": image.id}])

    def test_remove_image_of_stopped_container(self) -> None:
        image = self.import_base()
        used = lambda i: "c0ffee000000111122223333" if i == image.id else None
        e = self.assertRaises(Conflict, self.store.remove, image.id, False, False, used)
        self.assertEqual(str(e), f"conflict: unable to delete {image.id[7:19]} (must be "
                                 "forced) - image is being used by stopped container c0ffee000000")
        e = self.assertRaises(Conflict, self.store.remove, "busybox", False, False, used)
        self.assertEqual(str(e), 'conflict: unable to remove repository reference "busybox" '
                                 f"(must force) - container c0ffee000000 is using its referenced "
                                 f"image {image.id[7:19]}")
        self.assertEqual(self.store.remove(image.id, True, False, used)[-2:][0],
                         {"Deleted": image.id})

    def test_remove_image_of_running_container_cannot_be_forced(self) -> None:
        image = self.import_base()
        used = lambda i: ("abcdef1234567890", True)
        e = self.assertRaises(Conflict, self.store.remove, image.id, True, False, used)
        self.assertEqual(str(e), f"conflict: unable to delete {image.id[7:19]} (cannot be "
                                 "forced) - image is being used by running container abcdef123456")
        self.assertEqual(self.store.remove("busybox", True, False, used),
                         [{"Untagged": "busybox:latest"}])
        self.assertEqual(self.store.resolve(image.id).repo_tags, ())

    def test_shared_layers_go_with_the_last_image(self) -> None:
        a = self.import_base("a")
        b, _ = self.load_two_layer(("b:1",))
        self.store.remove("a", False, False, never_used)
        self.assertEqual(len(self.layer_dirs()), 2)
        records = self.store.remove("b:1", False, False, never_used)
        self.assertEqual(records[2:], [{"Deleted": b.layers[1]}, {"Deleted": a.layers[0]}])
        self.assertEqual(self.layer_dirs(), [])

    # -- commit / children / history -------------------------------------------

    def container_layer(self, image):
        layer_id = "ctr" + os.urandom(4).hex()
        self.driver.create(layer_id, self.store.top_layer(image))
        self.addCleanup(self.driver.remove, layer_id)
        return layer_id

    def test_commit_adds_a_layer_on_the_parent(self) -> None:
        base = self.import_base()
        layer_id = self.container_layer(base)
        self.write_in_layer(self.driver, layer_id, "hello.txt", b"hello")
        child = self.store.commit(layer_id, base, {"Cmd": ["sh"]}, {"Cmd": ["touch", "x"]},
                                  "me", "a comment", "touch x", "mine:1", NOW,
                                  container_id="c" * 64)
        self.assertEqual(len(child.layers), 2)
        self.assertEqual(child.parent, base.id)
        self.assertEqual(child.config["container"], "c" * 64)
        self.assertEqual(child.config["history"][-1], {
            "created": "2024-05-06T07:08:09.123Z", "author": "me", "created_by": "touch x",
            "comment": "a comment"})
        with open(os.path.join(self.dir, "image", "layers", "sha256", child.layers[1][7:],
                               "layer.tar"), "rb") as f:
            self.assertEqual(sha(f.read()), child.diff_ids[1])
        with tarfile.open(os.path.join(self.dir, "image", "layers", "sha256",
                                       child.layers[1][7:], "layer.tar")) as tar:
            self.assertIn("hello.txt", [n.lstrip("./") for n in tar.getnames()])
        self.assertEqual([c.id for c in self.store.children(base.id)], [child.id])
        history = self.store.history(child)
        self.assertEqual([h["Id"] for h in history], [child.id, base.id])
        self.assertEqual(history[0]["Tags"], ["mine:1"])
        self.assertEqual(history[0]["CreatedBy"], "touch x")
        self.assertEqual(history[1]["Comment"], "Imported from -")
        self.assertEqual(history[0]["Size"], 5)
        self.assertEqual(self.store.inspect(child)["Comment"], "a comment")
        e = self.assertRaises(Conflict, self.store.remove, base.id, True, False, never_used)
        self.assertIn("image has dependent child images", str(e))
        # Saved and loaded elsewhere the child keeps its id and its parent link.
        buf = io.BytesIO()
        self.store.save(["busybox", "mine:1"], buf)
        fresh = ImageStore(os.path.join(self.dir, "image2"),
                           self.make_driver(os.path.join(self.dir, "storage2")))
        fresh.load(io.BytesIO(buf.getvalue()))
        self.assertEqual(fresh.resolve("mine:1").id, child.id)
        self.assertEqual(fresh.resolve("mine:1").parent, base.id)

    def test_commit_without_changes_adds_an_empty_layer_entry(self) -> None:
        base = self.import_base()
        layer_id = self.container_layer(base)
        synced = self.fsynced_paths()
        child = self.store.commit(layer_id, base, {}, {}, "", "", "", None, NOW)
        self.assertEqual(child.layers, base.layers)
        self.assertTrue(child.config["history"][-1]["empty_layer"])
        self.assertEqual(self.store.history(child)[0]["Size"], 0)
        # The empty tar is thrown away: it is not made durable first.
        self.assertEqual([p for p in synced if p.endswith("layer.tar")], [])
        self.write_in_layer(self.driver, layer_id, "f", b"x")
        self.store.commit(layer_id, base, {}, {}, "", "", "", None, NOW)
        self.assertEqual(len([p for p in synced if p.endswith("layer.tar")]), 1)

    def fsynced_paths(self) -> list[str]:
        """From now on, the paths this process fsyncs (os.fsync patched)."""
        seen: list[str] = []
        real = os.fsync

        def fsync(fd):
            seen.append(os.readlink(f"/proc/self/fd/{fd}"))
            return real(fd)
        self.patch(os, "fsync", fsync)
        return seen

    # -- prune -------------------------------------------------------------------

    def test_prune_dangling_then_all(self) -> None:
        kept = self.import_base("keep")
        dangling = self.store.import_tar(io.BytesIO(TOP), None, [], "", NOW)
        used = self.store.import_tar(io.BytesIO(layer_tar({"u": b"1"})), "used", [], "", NOW)
        in_use = lambda i: ("c" * 12, False) if i == used.id else None
        report = self.store.prune(False, in_use)
        self.assertEqual(report["ImagesDeleted"], [{"Deleted": dangling.id},
                                                   {"Deleted": dangling.layers[0]}])
        self.assertEqual(report["SpaceReclaimed"], 3)
        report = self.store.prune(True, in_use)
        self.assertEqual(report["ImagesDeleted"][:2], [{"Untagged": "keep:latest"},
                                                       {"Deleted": kept.id}])
        self.assertEqual([i.id for i in self.store.images()], [used.id])

    def test_prune_label_filter(self) -> None:
        self.store.import_tar(io.BytesIO(BASE), None, ["LABEL a=1"], "", NOW)
        other = self.store.import_tar(io.BytesIO(TOP), None, ["LABEL a=2"], "", NOW)
        report = self.store.prune(False, never_used, ["a=1"])
        self.assertEqual(len(report["ImagesDeleted"]), 2)
        self.assertEqual([i.id for i in self.store.images()], [other.id])

    def test_prune_negated_label_filter_keeps_only_what_all_of_them_match(self) -> None:
        # moby's matchLabels: label! spares an image only when every listed
        # label matches it (as our container and network prune do).
        self.store.import_tar(io.BytesIO(BASE), None, ["LABEL a=1"], "", NOW)
        both = self.store.import_tar(io.BytesIO(TOP), None, ["LABEL a=1 b=x"], "", NOW)
        self.store.import_tar(io.BytesIO(layer_tar({"n": b"1"})), None, [], "", NOW)
        self.store.prune(False, never_used, [], ["a=1", "b"])
        self.assertEqual([i.id for i in self.store.images()], [both.id])

    # -- views -------------------------------------------------------------------

    def test_inspect_and_summary_shapes(self) -> None:
        image = self.store.import_tar(io.BytesIO(BASE), "busybox", ["LABEL x=y"], "", NOW)
        info = self.store.inspect(image)
        self.assertEqual(info["Id"], image.id)
        self.assertEqual(info["RepoTags"], ["busybox:latest"])
        self.assertEqual(info["RootFS"], {"Type": "layers", "Layers": [sha(BASE)]})
        self.assertEqual(info["Size"], image.size)
        self.assertEqual(info["GraphDriver"]["Name"], self.driver.name)
        self.assertEqual(info["Os"], "linux")
        self.assertEqual(info["Comment"], "Imported from -")
        self.assertEqual(info["Created"], "2024-05-06T07:08:09.123Z")
        summary = self.store.summary(image)
        self.assertEqual(summary["Created"], int(NOW.timestamp()))
        self.assertEqual(summary["Labels"], {"x": "y"})
        self.assertEqual((summary["Containers"], summary["SharedSize"]), (-1, -1))

    # -- persistence and recovery -------------------------------------------------

    def test_reopen_restores_everything(self) -> None:
        image, _ = self.load_two_layer()
        again = self.reopen()
        restored = again.resolve("app:1")
        self.assertEqual((restored.id, restored.layers, restored.size),
                         (image.id, image.layers, image.size))

    def test_start_up_removes_half_made_layers(self) -> None:
        layers = os.path.join(self.dir, "image", "layers", "sha256")
        half = os.path.join(layers, ".tmp-crashed")
        os.mkdir(half)
        with open(os.path.join(half, "cache-id"), "w") as f:
            f.write("orphan")
        self.driver.create("orphan", None)
        spool = os.path.join(self.dir, "image", "tmp", "load-x")
        os.mkdir(spool)
        self.reopen()
        self.assertFalse(self.driver.exists("orphan"))
        self.assertEqual(os.listdir(layers), [])
        self.assertEqual(os.listdir(os.path.join(self.dir, "image", "tmp")), [])

    def test_start_up_collects_unreferenced_layers(self) -> None:
        image = self.import_base()
        os.unlink(os.path.join(self.dir, "image", "blobs", "sha256", image.id[7:]))
        store = self.reopen()
        self.assertEqual(store.images(), [])
        self.assertEqual(self.layer_dirs(), [])
        self.assertFalse(self.driver.exists(self.store.top_layer(image)))

    def test_start_up_drops_config_with_missing_layer(self) -> None:
        image = self.import_base()
        shutil.rmtree(os.path.join(self.dir, "image", "layers", "sha256", image.layers[0][7:]))
        store = self.reopen()
        self.assertEqual(store.images(), [])
        self.assertRaises(NotFound, store.resolve, "busybox")

    def test_acquired_layers_outlive_a_forced_removal(self) -> None:
        image = self.import_base()
        top = self.store.acquire_layer("container1", image)
        self.assertEqual(top, self.store.top_layer(image))
        self.store.remove(image.id, True, False, lambda i: ("container1", False))
        self.assertTrue(self.driver.exists(top))
        self.assertTrue(self.reopen() is not None and self.driver.exists(top))
        self.store.release_layer("container1")
        self.assertFalse(self.driver.exists(top))


class FakeDriverStoreTests(StoreTestsMixin, SynchronousTestCase):
    def make_driver(self, home: str):
        return FakeStorageDriver(home)

    def write_in_layer(self, driver, layer_id: str, path: str, data: bytes) -> None:
        driver.write_file(layer_id, path, data)

    def test_fake_provides_the_interface(self) -> None:
        self.assertTrue(verifyObject(IStorageDriver, self.driver))

    def test_concurrent_import_losers_remove_their_driver_layers(self) -> None:
        self.test_concurrent_imports_of_the_same_layer()
        self.assertEqual(len(self.driver.layers), 1)

    def test_driver_failure_leaves_nothing(self) -> None:
        self.driver.fail_apply = True
        self.assertRaises(OSError, self.import_base)
        self.assertEqual(self.layer_dirs(), [])
        self.assertEqual(self.driver.layers, {})


class ParallelApplyTests(SynchronousTestCase):
    """Layers applied side by side (as on overlay2), registered in chain order."""

    LAYERS = [BASE, TOP, layer_tar({"third": b"3"})]

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="dockerpy-image-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.driver = FakeStorageDriver(os.path.join(self.dir, "storage"))
        self.driver.parallel_apply = True
        self.store = ImageStore(os.path.join(self.dir, "image"), self.driver)
        self.config = image_config([sha(d) for d in self.LAYERS])

    def openers(self, layers=None):
        return [lambda d=d: io.BytesIO(d) for d in (layers or self.LAYERS)]

    def assert_nothing_left(self) -> None:
        self.assertEqual(self.store.images(), [])
        self.assertEqual(os.listdir(os.path.join(self.dir, "image", "layers", "sha256")), [])
        self.assertEqual(self.driver.layers, {})
        self.assertEqual(self.store._making, {})

    def test_layers_are_read_at_the_same_time(self) -> None:
        second_opened = threading.Event()
        openers = self.openers()

        def first():
            # Would wait forever if layer 1 were only opened after layer 0 is done.
            self.assertTrue(second_opened.wait(60))
            return io.BytesIO(self.LAYERS[0])

        def second():
            second_opened.set()
            return io.BytesIO(self.LAYERS[1])

        done: list[int] = []
        image = self.store.add_image(self.config, [first, second, openers[2]],
                                     on_layer=done.append)
        self.assertEqual(done, [0, 1, 2])
        chains = chain_ids([sha(d) for d in self.LAYERS])
        self.assertEqual(image.layers, tuple(chains))
        self.assertEqual([self.store.layer(c).parent for c in chains],
                         [None, chains[0], chains[1]])
        caches = [self.store.layer(c).cache_id for c in chains]
        self.assertEqual([self.driver.layers[c].parent for c in caches],
                         [None, caches[0], caches[1]])

    def test_a_bad_layer_in_the_middle_leaves_nothing(self) -> None:
        other = layer_tar({"not": b"this"})
        layers = [BASE, other, layer_tar({"third": b"3"})]
        e = self.assertRaises(InvalidParameter, self.store.add_image, self.config,
                              self.openers(layers))
        self.assertEqual(str(e), f'invalid diffID for layer 1: expected "{sha(TOP)}", '
                                 f'got "{sha(other)}"')
        self.assert_nothing_left()

    def test_a_failing_opener_leaves_nothing(self) -> None:
        openers = self.openers()

        def broken():
            raise Conflict("gone")

        self.assertRaises(Conflict, self.store.add_image, self.config,
                          [openers[0], openers[1], broken])
        self.assert_nothing_left()

    def test_concurrent_adds_of_one_image_share_each_layer(self) -> None:
        claim = self.store._claim
        waiting = threading.Event()
        first_opened = threading.Event()

        def watched_claim(txn, chain):
            state = claim(txn, chain)
            if isinstance(state, threading.Event):
                waiting.set()
            return state

        self.store._claim = watched_claim
        openers = self.openers()

        def first():
            first_opened.set()
            # Hold layer 0 until the other add waits for it.
            self.assertTrue(waiting.wait(60))
            return io.BytesIO(self.LAYERS[0])

        results: list = []
        a = threading.Thread(target=lambda: results.append(
            self.store.add_image(self.config, [first] + openers[1:])))
        a.start()
        self.assertTrue(first_opened.wait(60))
        b = threading.Thread(target=lambda: results.append(
            self.store.add_image(self.config, openers)))
        b.start()
        a.join()
        b.join()
        self.assertEqual([i.id for i in results], [sha(self.config)] * 2)
        self.assertEqual(len(self.driver.layers), 3)
        self.assertEqual(self.driver.removed, [])

    def test_losing_a_race_rebuilds_the_layers_above(self) -> None:
        openers = self.openers()
        imported: list = []

        def first():
            # Something that takes no claim (docker import) makes layer 0 first.
            imported.append(self.store.import_tar(io.BytesIO(BASE), "base:1", [], "", NOW))
            return io.BytesIO(self.LAYERS[0])

        image = self.store.add_image(self.config, [first] + openers[1:])
        chains = chain_ids([sha(d) for d in self.LAYERS])
        self.assertEqual(image.layers, tuple(chains))
        base_cache = self.store.top_layer(imported[0])
        self.assertEqual(self.store.layer(chains[0]).cache_id, base_cache)
        top_caches = [self.store.layer(c).cache_id for c in chains[1:]]
        self.assertEqual(self.driver.layers[top_caches[0]].parent, base_cache)
        self.assertEqual(self.driver.layers[top_caches[1]].parent, top_caches[0])
        # Our copy of layer 0 and what was built on it are gone.
        self.assertEqual(len(self.driver.layers), 3)
        self.assertEqual(len(self.driver.removed), 3)


try:
    from dockerpy.storage.vfs import VfsDriver
except ImportError:  # pragma: no cover - the vfs driver is written separately
    VfsDriver = None


class VfsDriverStoreTests(StoreTestsMixin, SynchronousTestCase):
    """The same behaviour on the real vfs driver (needs root for ownership)."""

    if VfsDriver is None:
        skip = "dockerpy.storage.vfs is not available"
    elif os.geteuid() != 0:
        skip = "the vfs driver keeps file ownership: needs root"

    def make_driver(self, home: str):
        return VfsDriver(home)

    def write_in_layer(self, driver, layer_id: str, path: str, data: bytes) -> None:
        root = driver.mount(layer_id)
        try:
            with open(os.path.join(root, path), "wb") as f:
                f.write(data)
        finally:
            driver.unmount(layer_id)


class ChangesTests(SynchronousTestCase):
    def test_entrypoint_resets_cmd_unless_cmd_given(self) -> None:
        config = apply_changes({"Cmd": ["old"]}, ['ENTRYPOINT ["/e"]'])
        self.assertIsNone(config["Cmd"])
        config = apply_changes(None, ['CMD ["c"]', 'ENTRYPOINT ["/e"]'])
        self.assertEqual((config["Cmd"], config["Entrypoint"]), (["c"], ["/e"]))

    def test_healthcheck(self) -> None:
        config = apply_changes(None, ["HEALTHCHECK --interval=5s --retries=2 CMD curl -f x"])
        self.assertEqual(config["Healthcheck"], {"Test": ["CMD-SHELL", "curl -f x"],
                                                 "Interval": 5_000_000_000, "Retries": 2})

    def test_expose_range(self) -> None:
        config = apply_changes(None, ["EXPOSE 8000-8002/tcp"])
        self.assertEqual(list(config["ExposedPorts"]), ["8000/tcp", "8001/tcp", "8002/tcp"])

    def test_config_key_order_is_gos(self) -> None:
        config = apply_changes(None, ["STOPSIGNAL 9", "EXPOSE 1"])
        raw = encode_image_config({"os": "linux", "config": config})
        self.assertTrue(raw.startswith(b'{"config":{"Hostname":""'), raw)
        self.assertLess(raw.index(b"ExposedPorts"), raw.index(b"Tty"))
        self.assertLess(raw.index(b"Labels"), raw.index(b"StopSignal"))

    def test_empty_tar_digest_constant(self) -> None:
        self.assertEqual(sha(b"\0" * 1024), EMPTY_LAYER_DIFF_ID)

    def test_healthcheck_exec_form_and_none(self) -> None:
        config = apply_changes(None, ['HEALTHCHECK  --timeout=1m30s  CMD ["curl", "x"]'])
        self.assertEqual(config["Healthcheck"], {"Test": ["CMD", "curl", "x"],
                                                 "Timeout": 90_000_000_000})
        self.assertEqual(apply_changes(None, ["HEALTHCHECK NONE"])["Healthcheck"],
                         {"Test": ["NONE"]})
        self.assertRaises(InvalidParameter, apply_changes, None, ["HEALTHCHECK RUN x"])
