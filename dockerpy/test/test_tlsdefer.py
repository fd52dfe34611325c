"""pyOpenSSL stays out of a daemon without TLS and comes back whole when a
registry or a TLS listener needs it (``dockerpy.tlsdefer``).

Each case runs in a fresh interpreter, because trial's own process imported
OpenSSL long ago (where deferring is, rightly, a no-op).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from twisted.trial import unittest

from dockerpy import tlsdefer

_MAKE_SERVICE = """
    import json, sys, tempfile
    from dockerpy import tap
    root = tempfile.mkdtemp()
    opts = tap.Options()
    opts.parseOptions(["-H", f"unix://{root}/s.sock", "--data-root", root + "/data",
                       "--exec-root", root + "/exec"] + EXTRA)
    tap.makeService(opts)
    import klein, dockerpy.api.routes  # what the API service imports when it starts
    loaded = sorted(m for m in ("OpenSSL", "cryptography", "service_identity")
                    if sys.modules.get(m) is not None)
"""


def _run(extra: list[str], then: str) -> dict:
    """Make a daemon's service tree (``extra`` daemon options) in a new
    interpreter, then run ``then``, which prints one JSON object."""
    code = f"EXTRA = {extra!r}\n" + textwrap.dedent(_MAKE_SERVICE) + textwrap.dedent(then)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True,
                         check=False, timeout=120)
    if out.returncode != 0:
        raise AssertionError(out.stderr.decode())
    return json.loads(out.stdout.decode().splitlines()[-1])




class DeferTests(unittest.TestCase):
    def test_a_daemon_without_tls_never_imports_openssl(self):
        result = _run([], """
    print(json.dumps({"loaded": loaded}))
    """)
        self.assertEqual(result["loaded"], [])

    def test_openssl_can_be_imported_again_after_the_daemon_is_made(self):
        result = _run([], """
    import OpenSSL.SSL
    print(json.dumps({"loaded": loaded, "now": "OpenSSL" in sys.modules}))
    """)
        self.assertEqual(result, {"loaded": [], "now": True})

    def test_load_gives_twisted_its_tls_back(self):
        """After ``load`` the modules imported while OpenSSL was hidden speak
        TLS as if it had always been there: a ``listenSSL`` server (the
        reactor's ``posixbase``) answers a ``wrapClientTLS`` client
        (``endpoints``) that verifies its certificate."""
        from dockerpy.test.test_integration_tls import make_pki

        pki = make_pki(self.mktemp_dir())
        result = _run([], f"""
    PKI = {pki!r}
    """ + """
    from twisted.internet import endpoints, posixbase, protocol, reactor
    before = [endpoints.TLSMemoryBIOFactory is None, posixbase.tls is None]
    tlsdefer = sys.modules["dockerpy.tlsdefer"]
    tlsdefer.load()
    tlsdefer.load()  # idempotent
    from twisted.internet import ssl

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    class Echo(protocol.Protocol):
        def dataReceived(self, data):
            self.transport.write(data)

    class Client(protocol.Protocol):
        def connectionMade(self):
            self.transport.write(b"ping")

        def dataReceived(self, data):
            got.append(data)
            reactor.stop()

    got = []
    server = ssl.PrivateCertificate.loadPEM(read(PKI["server_cert"]) + read(PKI["server_key"]))
    port = reactor.listenSSL(0, protocol.Factory.forProtocol(Echo), server.options(),
                             interface="127.0.0.1")
    creator = ssl.optionsForClientTLS(
        "127.0.0.1", trustRoot=ssl.Certificate.loadPEM(read(PKI["ca"])))
    client = endpoints.wrapClientTLS(creator, endpoints.TCP4ClientEndpoint(
        reactor, "127.0.0.1", port.getHost().port))
    client.connect(protocol.Factory.forProtocol(Client)).addErrback(
        lambda f: (got.append(str(f.value).encode()), reactor.stop()))
    reactor.callLater(30, reactor.stop)
    reactor.run()
    print(json.dumps({"before": before, "got": b"".join(got).decode()}))
    """)
        self.assertEqual(result, {"before": [True, True], "got": "ping"})

    def mktemp_dir(self) -> str:
        path = self.mktemp()
        os.makedirs(path)
        return path

    def test_a_daemon_with_tls_loads_it_before_its_listener(self):
        from dockerpy.test.test_integration_tls import make_pki

        pki = make_pki(self.mktemp_dir())
        extra = ["-H", "tcp://127.0.0.1:0", "--tlsverify", "--tlscacert", pki["ca"],
                 "--tlscert", pki["server_cert"], "--tlskey", pki["server_key"]]
        result = _run(extra, """
    from twisted.internet import endpoints
    print(json.dumps({"loaded": loaded,
                      "endpoints": endpoints.TLSMemoryBIOFactory is not None}))
    """)
        self.assertEqual(result, {"loaded": ["OpenSSL", "cryptography", "service_identity"],
                                  "endpoints": True})

    def test_nothing_is_deferred_in_a_process_that_has_openssl(self):
        import OpenSSL  # noqa: F401 (trial's reactor imported it already)

        self.assertFalse(tlsdefer.defer())
        self.assertIsNotNone(sys.modules["OpenSSL"])
        tlsdefer.release()
        self.assertIsNotNone(sys.modules["OpenSSL"])
