"""Container use-cases with a fake runtime, the in-memory storage driver and
a real image store (no root, no processes)."""

from __future__ import annotations

import datetime
import io
import json
import os
import tarfile

from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from dockerpy import errors
from dockerpy.containers.record import RecordStore
from dockerpy.containers.service import ContainerService, merge_config, parse_signal
from dockerpy.images.store import ImageStore
from dockerpy.interfaces import IRuntime
from dockerpy.test.fake_runtime import FakeRuntime
from dockerpy.test.fake_storage import FakeStorageDriver


def _rootfs_tar() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _sync(f, *args, **kwargs):
    return defer.maybeDeferred(f, *args, **kwargs)


class ServiceTestBase(unittest.TestCase):
    def setUp(self):
        base = self.mktemp()
        os.makedirs(base)
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_700_000_000)
        self.driver = FakeStorageDriver(os.path.join(base, "storage"))
        self.images = ImageStore(os.path.join(base, "image"), self.driver)
        self.image = self.images.import_tar(
            _rootfs_tar(), "busybox:latest", ['CMD ["sh"]'], "",
            datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
        self.runtime = FakeRuntime()
        self.records = RecordStore(os.path.join(base, "containers"))
        self.svc = ContainerService(self.reactor, _sync, self.records, self.images,
                                    self.driver, {"fake": self.runtime}, "fake",
                                    os.path.join(base, "exec"), "/dockerpy-test")

    def run_(self, coro):
        return self.successResultOf(defer.ensureDeferred(coro))

    def fail_(self, coro, exc):
        return self.failureResultOf(defer.ensureDeferred(coro), exc).value

    def create(self, **body):
        body.setdefault("Image", "busybox")
        name = body.pop("name", None)
        return self.run_(self.svc.create(body, name))


class CreateTests(ServiceTestBase):
    def test_fake_runtime_provides_the_interface(self):
        verifyObject(IRuntime, self.runtime)

    def test_create_merges_image_config_and_stores_a_record(self):
        rec = self.create(Env=["A=1"], Labels={"x": "y"}, name="web")
        self.assertEqual(rec.path, "sh")
        self.assertEqual(rec.name, "web")
        self.assertEqual(rec.state.status, "created")
        self.assertIn("A=1", rec.config["Env"])
        stored = json.load(open(os.path.join(self.records.dir(rec.id), "config.json")))
        self.assertEqual(stored["id"], rec.id)
        self.assertTrue(self.driver.exists(rec.layer_id))
        self.assertTrue(self.driver.exists(rec.init_layer_id))
        self.assertIs(self.svc.get("web"), rec)
        self.assertIs(self.svc.get(rec.id[:6]), rec)

    def test_containers_of_one_image_share_its_init_layer_while_the_image_exists(self):
        a = self.create(name="share1")
        b = self.create(name="share2")
        self.assertEqual(a.init_layer_id, b.init_layer_id)
        self.run_(self.svc.remove("share1"))
        self.run_(self.svc.remove("share2"))
        self.assertTrue(self.driver.exists(b.init_layer_id), "kept for the next container")
        self.images.remove("busybox:latest", False, False, lambda image_id: None)
        self.run_(self.svc.sweep_init_layers())
        self.assertFalse(self.driver.exists(b.init_layer_id), "removed with its image")

    def test_init_layer_of_a_removed_image_stays_while_a_container_uses_it(self):
        a = self.create(name="user1")
        self.images.remove("busybox:latest", True, False, lambda image_id: (a.id, False))
        self.run_(self.svc.sweep_init_layers())
        self.assertTrue(self.driver.exists(a.init_layer_id))
        self.run_(self.svc.remove("user1"))
        self.assertFalse(self.driver.exists(a.init_layer_id))

    def test_duplicate_name_is_a_conflict_and_leaves_nothing(self):
        self.create(name="dup")
        layers_before = set(self.driver.layers)
        e = self.fail_(self.svc.create({"Image": "busybox"}, "dup"), errors.Conflict)
        self.assertIn('The container name "/dup" is already in use', e.message)
        self.assertEqual(set(self.driver.layers), layers_before)

    def test_unknown_image_is_not_found_and_leaves_nothing(self):
        self.fail_(self.svc.create({"Image": "nope:1"}, "x1"), errors.NotFound)
        self.assertRaises(errors.NotFound, self.svc.get, "x1")
        self.assertEqual(self.records.load_all(), [])

    def test_entrypoint_given_drops_image_cmd(self):
        config = merge_config({"Entrypoint": ["echo"]}, {"Cmd": ["sh"], "Entrypoint": None})
        self.assertEqual((config["Entrypoint"], config["Cmd"]), (["echo"], []))
        config = merge_config({}, {"Cmd": ["sh"], "Entrypoint": ["/init"]})
        self.assertEqual((config["Entrypoint"], config["Cmd"]), (["/init"], ["sh"]))

    def test_signals_parse_like_docker(self):
        self.assertEqual([parse_signal(s) for s in ("SIGTERM", "TERM", "15", "kill")],
                         [15, 15, 15, 9])
        self.assertRaises(errors.InvalidParameter, parse_signal, "NOPE")
        self.assertRaises(errors.InvalidParameter, parse_signal, "99")


class LifecycleTests(ServiceTestBase):
    def test_start_output_goes_to_log_and_attached_clients(self):
        rec = self.create(name="c1")
        got = []
        ended = []
        self.svc.attach("c1", False, True, True, lambda s, d: got.append((s, d)),
                        lambda: ended.append(True))
        self.run_(self.svc.start("c1"))
        self.assertEqual(rec.state.status, "running")
        proc = self.runtime.running[rec.id]
        proc.output(1, b"hello\n")
        proc.output(2, b"oops\n")
        proc.exit(3)
        self.assertEqual(got, [("stdout", b"hello\n"), ("stderr", b"oops\n")])
        self.assertEqual(ended, [True])
        self.assertEqual((rec.state.status, rec.state.exit_code), ("exited", 3))
        lines = [json.loads(line) for line in open(self.records.log_path(rec.id))]
        self.assertEqual([(x["stream"], x["log"]) for x in lines],
                         [("stdout", "hello\n"), ("stderr", "oops\n")])
        self.assertFalse(self.driver.is_mounted(rec.layer_id))

    def test_stdin_written_before_start_reaches_the_process(self):
        rec = self.create(name="c2", OpenStdin=True, StdinOnce=True)
        att = self.svc.attach("c2", True, True, True, lambda s, d: None, lambda: None)
        att.write_stdin(b"early")
        att.close_stdin()
        self.run_(self.svc.start("c2"))
        proc = self.runtime.running[rec.id]
        self.assertEqual((proc.stdin, proc.stdin_closed), ([b"early"], True))

    def test_wait_next_exit_before_start_fires_on_exit(self):
        rec = self.create(name="c3")
        d = self.svc.wait("c3", "next-exit")
        self.run_(self.svc.start("c3"))
        self.assertNoResult(d)
        self.runtime.running[rec.id].exit(0)
        self.assertEqual(self.successResultOf(d), 0)

    def test_wait_not_running_during_exit_cleanup_gets_the_real_code(self):
        rec = self.create(name="c11")
        self.run_(self.svc.start("c11"))
        # the exit's cleanup (unmount in the thread pool) has not finished yet
        gate: defer.Deferred = defer.Deferred()
        real_in_thread = self.svc._in_thread
        self.svc._in_thread = lambda f, *a, **kw: gate.addCallback(
            lambda _: real_in_thread(f, *a, **kw))
        self.runtime.running[rec.id].exit(4)
        d = self.svc.wait("c11", "not-running")
        self.assertNoResult(d)
        self.svc._in_thread = real_in_thread
        gate.callback(None)
        self.assertEqual(self.successResultOf(d), 4)

    def test_start_twice_is_not_modified(self):
        self.create(name="c4")
        self.run_(self.svc.start("c4"))
        self.fail_(self.svc.start("c4"), errors.NotModified)

    def test_failed_start_records_error_and_cleans_up(self):
        rec = self.create(name="c5")
        self.runtime.fail_start = errors.InvalidParameter(
            'exec: "nope": executable file not found in $PATH')
        self.fail_(self.svc.start("c5"), errors.InvalidParameter)
        self.assertEqual(rec.state.exit_code, 127)
        self.assertIn("executable file not found", rec.state.error)
        self.assertFalse(self.svc.is_running(rec.id))
        self.assertFalse(self.driver.is_mounted(rec.layer_id))
        self.assertIn(rec.id, self.runtime.deleted)

    def test_stop_sends_stop_signal_then_kills_after_timeout(self):
        rec = self.create(name="c6", StopSignal="SIGUSR1")
        self.run_(self.svc.start("c6"))
        proc = self.runtime.running[rec.id]
        d = defer.ensureDeferred(self.svc.stop("c6", timeout=5))
        self.assertEqual(proc.signals, [10])
        self.assertNoResult(d)
        self.reactor.advance(5)
        self.assertEqual(proc.signals, [10, 9])
        self.successResultOf(d)
        self.assertEqual(rec.state.exit_code, 137)

    def test_remove_running_needs_force(self):
        rec = self.create(name="c7")
        self.run_(self.svc.start("c7"))
        self.fail_(self.svc.remove("c7"), errors.Conflict)
        removed = self.svc.wait("c7", "removed")
        self.run_(self.svc.remove("c7", force=True))
        self.successResultOf(removed)
        self.assertFalse(self.driver.exists(rec.layer_id))
        self.assertFalse(os.path.exists(self.records.dir(rec.id)))
        self.assertRaises(errors.NotFound, self.svc.get, "c7")

    def test_auto_remove_after_exit(self):
        rec = self.create(name="c8", HostConfig={"AutoRemove": True})
        removed = self.svc.wait("c8", "removed")
        self.run_(self.svc.start("c8"))
        self.runtime.running[rec.id].exit(0)
        self.assertEqual(self.successResultOf(removed), 0)
        self.assertRaises(errors.NotFound, self.svc.get, rec.id)

    def test_removed_record_is_renamed_away_and_a_crash_leftover_is_swept(self):
        rec = self.create(name="c8b")
        later: list[str] = []
        self.records.delete(rec.id, later=later)
        self.assertFalse(os.path.exists(self.records.dir(rec.id)))
        self.assertEqual(len(later), 1)
        self.assertTrue(os.path.exists(os.path.join(later[0], "config.json")))
        # The daemon died before deleting it: the next start sweeps it.
        self.assertEqual(RecordStore(self.records.root).load_all(), [])
        self.assertFalse(os.path.exists(later[0]))

    def test_kill_of_stopped_container_is_conflict(self):
        self.create(name="c9")
        e = self.fail_(self.svc.kill("c9"), errors.Conflict)
        self.assertIn("is not running", e.message)

    def test_restore_marks_running_containers_exited_with_reason(self):
        rec = self.create(name="c10")
        self.run_(self.svc.start("c10"))
        # a new service over the same records: the daemon restarted
        svc2 = ContainerService(self.reactor, _sync, self.records, self.images, self.driver,
                                {"fake": FakeRuntime()}, "fake", "/nonexistent", "/x")
        self.run_(svc2.restore())
        again = svc2.get("c10")
        self.assertEqual((again.state.status, again.state.exit_code), ("exited", 255))
        self.assertIn("daemon", again.state.error)
        self.assertEqual(rec.id, again.id)

    def test_restore_with_several_containers_stops_only_the_running_ones(self):
        running = self.create(name="r1")
        self.run_(self.svc.start("r1"))
        stopped = self.create(name="r2")
        also_running = self.create(name="r3")
        self.run_(self.svc.start("r3"))
        svc2 = ContainerService(self.reactor, _sync, self.records, self.images, self.driver,
                                {"fake": FakeRuntime()}, "fake", "/nonexistent", "/x")
        self.run_(svc2.restore())
        self.assertEqual([svc2.get(r.id).state.status for r in (running, stopped, also_running)],
                         ["exited", "created", "exited"])

    def test_rename_moves_the_name(self):
        self.create(name="old1")
        self.create(name="taken")
        self.assertRaises(errors.Conflict, self.svc.rename, "old1", "taken")
        self.svc.rename("old1", "new1")
        self.assertEqual(self.svc.get("new1").name, "new1")
        self.assertRaises(errors.NotFound, self.svc.get, "old1")
