"""Exec sessions and pause/unpause with the fake runtime (no root, no processes)."""

from __future__ import annotations

import os

from twisted.internet import defer

from dockerpy import errors
from dockerpy.containers.exec import ExecService, merge_env
from dockerpy.events import EventBus
from dockerpy.runtime.oci import StartError
from dockerpy.test.test_container_service import ServiceTestBase


class ExecTestBase(ServiceTestBase):
    def setUp(self):
        super().setUp()
        self.events = EventBus(self.reactor)
        self.svc._events = self.events
        self.execs = ExecService(self.reactor, lambda f, *a: defer.maybeDeferred(f, *a),
                                 self.svc, self.events)

    def running(self, **body):
        rec = self.create(**body)
        self.run_(self.svc.start(rec.id))
        return rec

    def start_exec(self, session, **kwargs):
        out: list[tuple[str, bytes]] = []
        ended: list[bool] = []
        self.run_(self.execs.start(session.id, on_output=lambda s, d: out.append((s, d)),
                                   on_end=lambda: ended.append(True), **kwargs))
        cid, spec, proc = self.runtime.execs[-1]
        return spec, proc, out, ended


class ExecCreateTests(ExecTestBase):
    def test_create_in_a_stopped_container_is_a_conflict(self):
        rec = self.create()
        e = self.assertRaises(errors.Conflict, self.execs.create, rec.id, {"Cmd": ["ls"]})
        self.assertEqual(e.message, f"Container {rec.id} is not running")

    def test_create_in_a_paused_container_is_a_conflict(self):
        rec = self.running()
        self.run_(self.svc.pause(rec.id))
        e = self.assertRaises(errors.Conflict, self.execs.create, rec.id, {"Cmd": ["ls"]})
        self.assertEqual(e.message,
                         f"Container {rec.id} is paused, unpause the container before exec")

    def test_create_needs_a_command(self):
        rec = self.running()
        e = self.assertRaises(errors.InvalidParameter, self.execs.create, rec.id, {"Cmd": []})
        self.assertEqual(e.message, "No exec command specified")

    def test_unknown_exec_is_not_found(self):
        e = self.assertRaises(errors.NotFound, self.execs.get, "nope")
        self.assertEqual(e.message, "No such exec instance: nope")

    def test_inspect_before_start(self):
        rec = self.running()
        s = self.execs.create(rec.name, {"Cmd": ["echo", "hi"], "Tty": True, "User": "nobody",
                                         "AttachStdout": True})
        view = s.inspect()
        self.assertEqual(view["ContainerID"], rec.id)
        self.assertFalse(view["Running"])
        self.assertIsNone(view["ExitCode"])
        self.assertEqual(view["ProcessConfig"], {
            "tty": True, "entrypoint": "echo", "arguments": ["hi"], "privileged": False,
            "user": "nobody"})
        self.assertTrue(view["OpenStdout"])
        self.assertFalse(view["OpenStdin"])


class ExecStartTests(ExecTestBase):
    def test_process_spec_has_container_env_with_exec_env_over_it(self):
        rec = self.running(Env=["A=1", "B=2"], WorkingDir="/srv")
        s = self.execs.create(rec.id, {"Cmd": ["env"], "Env": ["B=3", "C=4"]})
        spec, _, _, _ = self.start_exec(s)
        self.assertEqual(spec["args"], ["env"])
        self.assertIn("A=1", spec["env"])
        self.assertIn("B=3", spec["env"])
        self.assertNotIn("B=2", spec["env"])
        self.assertIn("C=4", spec["env"])
        self.assertEqual(spec["cwd"], "/srv")
        self.assertEqual(spec["user"]["uid"], 0)

    def test_user_is_resolved_in_the_container_root(self):
        rec = self.running()
        root = self.driver.mount(rec.layer_id)
        self.driver.unmount(rec.layer_id)
        os.makedirs(os.path.join(root, "etc"), exist_ok=True)
        with open(os.path.join(root, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65533::/:/bin/false\n")
        s = self.execs.create(rec.id, {"Cmd": ["id"], "User": "nobody", "WorkingDir": "/tmp"})
        spec, _, _, _ = self.start_exec(s)
        self.assertEqual((spec["user"]["uid"], spec["user"]["gid"]), (65534, 65533))
        self.assertEqual(spec["cwd"], "/tmp")
        # A non-root user keeps only the bounding set, as with Docker.
        self.assertNotIn("effective", spec["capabilities"])

    def test_privileged_exec_gets_every_capability(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["id"], "Privileged": True})
        spec, _, _, _ = self.start_exec(s)
        self.assertIn("CAP_SYS_ADMIN", spec["capabilities"]["bounding"])

    def test_container_capabilities_apply(self):
        rec = self.running(HostConfig={"CapAdd": ["NET_ADMIN"], "CapDrop": ["CHOWN"]})
        s = self.execs.create(rec.id, {"Cmd": ["id"]})
        spec, _, _, _ = self.start_exec(s)
        self.assertIn("CAP_NET_ADMIN", spec["capabilities"]["bounding"])
        self.assertNotIn("CAP_CHOWN", spec["capabilities"]["bounding"])

    def test_output_of_attached_streams_then_exit_code(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "AttachStdout": True})
        _, proc, out, ended = self.start_exec(s)
        self.assertTrue(s.inspect()["Running"])
        self.assertEqual(s.inspect()["Pid"], proc.pid)
        proc.output(1, b"out")
        proc.output(2, b"err")  # stderr not attached: dropped
        self.assertEqual(out, [("stdout", b"out")])
        self.assertEqual(ended, [])
        proc.exit(3)
        self.assertEqual(ended, [True])
        view = s.inspect()
        self.assertFalse(view["Running"])
        self.assertEqual(view["ExitCode"], 3)

    def test_exec_output_is_not_in_the_container_log(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "AttachStdout": True})
        _, proc, _, _ = self.start_exec(s)
        proc.output(1, b"exec-only\n")
        proc.exit(0)
        with open(self.records.log_path(rec.id), "rb") as f:
            self.assertNotIn(b"exec-only", f.read())

    def test_stdin_goes_to_the_process_and_eof_closes_it(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["cat"], "AttachStdin": True})
        _, proc, _, _ = self.start_exec(s)
        self.execs.write_stdin(s, b"abc")
        self.execs.close_stdin(s)
        self.assertEqual(proc.stdin, [b"abc"])
        self.assertTrue(proc.stdin_closed)

    def test_stdin_not_attached_is_ignored(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["cat"]})
        _, proc, _, _ = self.start_exec(s)
        self.execs.write_stdin(s, b"abc")
        self.assertEqual(proc.stdin, [])

    def test_second_start_is_a_conflict(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"]})
        self.start_exec(s)
        e = self.fail_(self.execs.start(s.id), errors.Conflict)
        self.assertIn("is already running", e.message)

    def test_start_after_the_container_stopped_is_a_conflict(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"]})
        self.runtime.running[rec.id].exit(0)
        e = self.fail_(self.execs.start(s.id), errors.Conflict)
        self.assertEqual(e.message, f"Container {rec.id} is not running")

    def test_failed_start_records_the_runtime_exit_code(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["nosuch"]})
        self.runtime.fail_exec = StartError("exec: \"nosuch\": executable file not found", 127)
        self.fail_(self.execs.start(s.id), StartError)
        self.assertEqual(s.inspect()["ExitCode"], 127)
        self.assertFalse(s.inspect()["Running"])

    def test_resize_of_an_ended_exec_is_a_conflict(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "Tty": True})
        self.assertRaises(errors.Conflict, self.execs.resize, s.id, 24, 80)

    def test_a_resize_while_the_start_prepares_reaches_the_terminal(self):
        # The race behind `docker exec -it` shells without a window size: the
        # CLI resizes right after the start, while the spec is made in a thread.
        from dockerpy.test.fake_runtime import FakeProcess

        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "Tty": True})
        held, real = [], self.svc.with_rootfs

        def with_rootfs(ref, fn):
            d = defer.Deferred()
            held.append((ref, fn, d))
            return d

        self.patch(self.svc, "with_rootfs", with_rootfs)
        sizes = []
        FakeProcess.resize = lambda proc, h, w: sizes.append((h, w))  # a terminal's
        self.addCleanup(delattr, FakeProcess, "resize")
        d = defer.ensureDeferred(self.execs.start(s.id))
        self.execs.resize(s.id, 25, 90)
        ref, fn, pending = held.pop()
        pending.callback(self.successResultOf(real(ref, fn)))
        self.successResultOf(d)
        _, spec, proc = self.runtime.execs[-1]
        self.assertEqual(spec["consoleSize"], {"height": 25, "width": 90})
        self.assertEqual(sizes, [(25, 90)])
        self.execs.resize(s.id, 30, 100)
        self.assertEqual(sizes, [(25, 90), (30, 100)])

    def test_console_size_of_create_or_start_sizes_the_terminal(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "Tty": True, "ConsoleSize": [40, 120]})
        spec, _, _, _ = self.start_exec(s)
        self.assertEqual(spec["consoleSize"], {"height": 40, "width": 120})
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "Tty": True})
        spec, _, _, _ = self.start_exec(s, size=(12, 34))
        self.assertEqual(spec["consoleSize"], {"height": 12, "width": 34})
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "ConsoleSize": [40, 120]})
        spec, _, _, _ = self.start_exec(s)
        self.assertNotIn("consoleSize", spec)  # no terminal, no size
        e = self.assertRaises(errors.InvalidParameter, self.execs.create, rec.id,
                              {"Cmd": ["sh"], "ConsoleSize": [1]})
        self.assertIn("ConsoleSize", e.message)

    def test_invalid_detach_keys_are_refused_at_create(self):
        rec = self.running()
        e = self.assertRaises(errors.InvalidParameter, self.execs.create, rec.id,
                              {"Cmd": ["sh"], "DetachKeys": "ctrl-"})
        self.assertEqual(e.message, "Invalid escape keys (ctrl-) provided")
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "DetachKeys": "ctrl-a,x"})
        self.assertEqual(s.inspect()["DetachKeys"], "ctrl-a,x")
        # As Go's JSON decoding: field names in any case (docker-py's "detachKeys").
        s = self.execs.create(rec.id, {"Cmd": ["sh"], "detachKeys": "ctrl-b,y"})
        self.assertEqual(s.detach_keys, "ctrl-b,y")

    def test_sessions_of_removed_containers_are_forgotten(self):
        rec = self.running()
        other = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh"]})
        self.run_(self.svc.remove(rec.id, force=True))
        self.execs.create(other.id, {"Cmd": ["sh"]})
        self.assertRaises(errors.NotFound, self.execs.get, s.id)

    def test_events_for_an_exec(self):
        rec = self.running()
        s = self.execs.create(rec.id, {"Cmd": ["sh", "-c", "exit 2"]})
        _, proc, _, _ = self.start_exec(s)
        proc.exit(2)
        actions = [e["Action"] for e in self.events.recent(0)]
        self.assertEqual(actions[-3:], ["exec_create: sh -c exit 2", "exec_start: sh -c exit 2",
                                        "exec_die"])
        self.assertEqual(self.events.recent(0)[-1]["Actor"]["Attributes"]["exitCode"], "2")

    def test_merge_env_keeps_order_and_overrides(self):
        self.assertEqual(merge_env(["A=1", "B=2"], ["B=3", "C"]), ["A=1", "B=3", "C"])


class PauseTests(ExecTestBase):
    def test_pause_shows_in_state_and_unpause_restores_it(self):
        rec = self.running()
        self.run_(self.svc.pause(rec.name))
        self.assertEqual((rec.state.status, rec.state.paused, rec.state.running),
                         ("paused", True, True))
        self.assertIn(rec.id, self.runtime.paused)
        self.run_(self.svc.unpause(rec.name))
        self.assertEqual((rec.state.status, rec.state.paused), ("running", False))
        self.assertNotIn(rec.id, self.runtime.paused)
        actions = [e["Action"] for e in self.events.recent(0)]
        self.assertEqual(actions[-2:], ["pause", "unpause"])

    def test_pause_errors_are_dockers(self):
        rec = self.create()
        e = self.fail_(self.svc.pause(rec.id), errors.Conflict)
        self.assertEqual(e.message, f"Container {rec.id} is not running")
        e = self.fail_(self.svc.unpause(rec.id), errors.Conflict)
        self.assertEqual(e.message, f"Container {rec.id} is not paused")
        self.run_(self.svc.start(rec.id))
        self.run_(self.svc.pause(rec.id))
        e = self.fail_(self.svc.pause(rec.id), errors.Conflict)
        self.assertEqual(e.message, f"Container {rec.id} is already paused")

    def test_kill_of_a_paused_container_thaws_it(self):
        rec = self.running()
        self.run_(self.svc.pause(rec.id))
        self.run_(self.svc.kill(rec.id))
        self.assertNotIn(rec.id, self.runtime.paused)
        self.assertEqual(rec.state.status, "exited")
        self.assertFalse(rec.state.paused)
        self.assertEqual(rec.state.exit_code, 137)

    def test_stop_of_a_paused_container_kills_and_thaws_after_the_timeout(self):
        rec = self.running()
        self.runtime.running[rec.id].ignored.add(15)
        self.run_(self.svc.pause(rec.id))
        d = defer.ensureDeferred(self.svc.stop(rec.id, timeout=5))
        self.assertNoResult(d)
        self.reactor.advance(5)
        self.successResultOf(d)
        self.assertNotIn(rec.id, self.runtime.paused)
        self.assertEqual(rec.state.status, "exited")
