"""The API over TCP with mutual TLS (``--tlsverify``), as dockerd serves it,
driven by the real docker CLI: a client certificate signed by the CA is
required, and attach (a hijacked TLS connection) carries stdin and output."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess

from dockerpy.test.daemon_fixture import DOCKER_CLI, DaemonTestCase


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_pki(directory: str) -> dict[str, str]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write(path, data):
        with open(path, "wb") as f:
            f.write(data)
        return path

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM,
                                 serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("dockerpy test CA"))
          .issuer_name(name("dockerpy test CA")).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": write(os.path.join(directory, "ca.pem"),
                       ca.public_bytes(serialization.Encoding.PEM))}
    for role, serial, usage, san in (
            ("server", 2, ExtendedKeyUsageOID.SERVER_AUTH,
             [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            ("client", 3, ExtendedKeyUsageOID.CLIENT_AUTH, None)):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(f"dockerpy {role}"))
                   .issuer_name(ca.subject).public_key(key.public_key())
                   .serial_number(serial).not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        out[role + "_cert"] = write(os.path.join(directory, f"{role}-cert.pem"),
                                    cert.public_bytes(serialization.Encoding.PEM))
        out[role + "_key"] = write(os.path.join(directory, f"{role}-key.pem"), key_pem(key))
    return out


class MutualTLSTests(DaemonTestCase):
    def setUp(self):
        pki_dir = os.path.abspath(self.mktemp())
        os.makedirs(pki_dir)
        self.pki = make_pki(pki_dir)
        self.port = _free_port()
        self.daemon = self.start_daemon(cli=True, extra_args=[
            "-H", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
            "--tlscacert", self.pki["ca"], "--tlscert", self.pki["server_cert"],
            "--tlskey", self.pki["server_key"]])

    def tls_cli(self, *args, client_cert=True, input=None):
        flags = ["-H", f"tcp://127.0.0.1:{self.port}", "--tlsverify",
                 "--tlscacert", self.pki["ca"]]
        if client_cert:
            flags += ["--tlscert", self.pki["client_cert"], "--tlskey", self.pki["client_key"]]
        env = dict(self.daemon.env)
        env.pop("DOCKER_HOST")
        return subprocess.run([DOCKER_CLI, *flags, *args], input=input, capture_output=True,
                              env=env, timeout=60)

    def test_client_with_certificate_is_served(self):
        r = self.tls_cli("version", "--format", "{{.Server.APIVersion}}")
        self.assertEqual((r.returncode, r.stdout), (0, b"1.47\n"), r.stderr)

    def test_client_without_certificate_is_refused(self):
        r = self.tls_cli("version", client_cert=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertNotIn(b"1.47", r.stdout)

    def test_run_over_tls_carries_output_and_exit_code(self):
        r = self.tls_cli("run", "--rm", "busybox", "sh", "-c", "echo over tls; exit 6")
        self.assertEqual((r.returncode, r.stdout), (6, b"over tls\n"), r.stderr)

    def test_run_with_stdin_over_tls(self):
        r = self.tls_cli("run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z", input=b"quiet\n")
        self.assertEqual((r.returncode, r.stdout), (0, b"QUIET\n"), r.stderr)
