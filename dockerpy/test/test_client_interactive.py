"""bin/docker's terminal size following: one resize at once, one per
SIGWINCH, through the resize path it is given (no daemon)."""

from __future__ import annotations

import signal

from twisted.trial.unittest import SynchronousTestCase

from dockerpy.client.interactive import TtySizeMonitor


class _Client:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, dict]] = []
        self.fail = fail

    def send(self, method, path, query=None, body=None):
        self.sent.append((method, path, query))
        if self.fail:
            raise OSError("daemon went away")


class _Cli:
    def __init__(self, client: _Client) -> None:
        self.client = client


class TtySizeMonitorTests(SynchronousTestCase):
    def monitor(self, sizes, fail=False, path="/exec/e1/resize"):
        self.client = _Client(fail)
        return TtySizeMonitor(_Cli(self.client), path, get_size=lambda: sizes[-1],
                              spawn=lambda fn: fn())

    def test_resize_at_once_then_on_each_sigwinch_and_none_after(self):
        previous = signal.getsignal(signal.SIGWINCH)
        sizes = [(24, 80)]
        with self.monitor(sizes, path="/containers/c1/resize"):
            self.assertEqual(self.client.sent,
                             [("POST", "/containers/c1/resize", {"h": 24, "w": 80})])
            sizes.append((50, 132))
            signal.raise_signal(signal.SIGWINCH)
            self.assertEqual(self.client.sent[-1],
                             ("POST", "/containers/c1/resize", {"h": 50, "w": 132}))
        self.assertEqual(signal.getsignal(signal.SIGWINCH), previous)
        signal.raise_signal(signal.SIGWINCH)
        self.assertEqual(len(self.client.sent), 2)

    def test_no_terminal_no_resize(self):
        with self.monitor([None]):
            signal.raise_signal(signal.SIGWINCH)
        self.assertEqual(self.client.sent, [])

    def test_a_failed_resize_is_not_an_error(self):
        with self.monitor([(10, 20)], fail=True):
            signal.raise_signal(signal.SIGWINCH)
        self.assertEqual(len(self.client.sent), 2)


class AttachCommandTests(SynchronousTestCase):
    """``attach`` (dockerpy.client.interactive.attach) against the fake Engine API."""

    def setUp(self):
        from dockerpy.client.testing import FakeEngine

        self.engine = FakeEngine("1.47").start()
        self.addCleanup(self.engine.stop)

    def attach(self, *argv):
        import io

        from dockerpy.client.command import Cli, StatusError
        from dockerpy.client.interactive import attach

        out, err = io.BytesIO(), io.BytesIO()
        cli = Cli(self.engine.host, None, io.BytesIO(b""), out, err, {})
        try:
            rc = attach(cli, "attach", list(argv))
        except StatusError as e:
            rc = e.status
            err.write(str(e).encode())
        return rc, out.getvalue(), err.getvalue()

    def test_output_until_the_container_exits_then_its_status(self):
        from dockerpy.client.format import frame
        from dockerpy.client.testing import Hijack, Reply

        self.engine.route("GET", "/containers/web/json", Reply(200, {
            "Id": "c1", "State": {"Running": True},
            "Config": {"Tty": False, "OpenStdin": False}}))

        def session(rfile, write):
            write(frame(1, b"out\n") + frame(2, b"err\n"))
        self.engine.route("POST", "/containers/c1/attach", lambda req: Hijack(session))
        self.engine.route("POST", "/containers/c1/wait", Reply(200, {"StatusCode": 5}))
        rc, out, err = self.attach("--detach-keys", "ctrl-a,x", "web")
        self.assertEqual((rc, out, err), (5, b"out\n", b"err\n"))
        query = self.engine.calls("POST", "attach")[0].query
        self.assertEqual(query, {"stream": ["1"], "stdout": ["1"], "stderr": ["1"],
                                 "detachKeys": ["ctrl-a,x"]})

    def test_a_stopped_container_cannot_be_attached(self):
        from dockerpy.client.testing import Reply

        self.engine.route("GET", "/containers/web/json", Reply(200, {
            "Id": "c1", "State": {"Running": False}, "Config": {}}))
        rc, _, err = self.attach("web")
        self.assertEqual(rc, 1)
        self.assertIn(b"You cannot attach to a stopped container, start it first", err)


class DetachKeysPumpTests(SynchronousTestCase):
    """bin/docker's stdin pump on a terminal (``_pump_until_keys``)."""

    def test_the_attach_is_marked_detached_before_the_keys_are_sent(self):
        """The daemon ends the stream as soon as it has the keys; the main
        thread, seeing that end, must already find the attach detached, or
        it waits for the container to exit (the ``run -it`` hang)."""
        import os
        import threading
        import types

        from dockerpy.client.interactive import _pump_until_keys

        detached = threading.Event()
        sent: list[tuple[bytes, bool]] = []

        class Stream:
            def write(self, data: bytes) -> None:
                sent.append((data, detached.is_set()))

            def close_write(self) -> None:
                sent.append((b"EOF", detached.is_set()))

        read_end, write_end = os.pipe()
        self.addCleanup(os.close, read_end)
        os.write(write_end, b"ls\r")
        os.write(write_end, b"\x10\x11")
        os.close(write_end)
        stdin = types.SimpleNamespace(fileno=lambda: read_end)
        _pump_until_keys(types.SimpleNamespace(stdin=stdin), Stream(), b"\x10\x11", detached)
        self.assertTrue(detached.is_set())
        # Everything typed is sent (the daemon filters the keys), nothing
        # after them, and the keys leave with the attach already detached.
        self.assertEqual(b"".join(d for d, _ in sent), b"ls\r\x10\x11")
        self.assertTrue(sent[-1][1])
