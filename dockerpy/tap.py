# -*- test-case-name: dockerpy.test.test_tap -*-
"""``twistd docker``: options and the service tree of the daemon.

The only module that touches the global reactor (in ``makeService``); every
other part gets it injected.
"""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlsplit

from dockerpy import tlsdefer

# Before Twisted's endpoints and the reactor: an idle daemon without TLS
# never loads pyOpenSSL (see dockerpy.tlsdefer; makeService releases it).
tlsdefer.defer()

from twisted.application import service  # noqa: E402
from twisted.application.internet import StreamServerEndpointService  # noqa: E402
from twisted.internet import endpoints  # noqa: E402
from twisted.python import usage  # noqa: E402

from dockerpy import config as cfg  # noqa: E402


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = "Run the dockerpy daemon: the Docker Engine API on a unix socket."

    optFlags = [
        ["tls", None, "Use TLS; implied by --tlsverify"],
        ["tlsverify", None, "Use TLS and verify the remote (require client certificates)"],
        ["insecure-tcp-without-tls", None,
         "Serve plain TCP without TLS: anyone who reaches the port is root on this host"],
    ]
    optParameters = [
        ["data-root", None, cfg.DEFAULT_DATA_ROOT, "Root directory of persistent state"],
        ["exec-root", None, cfg.DEFAULT_EXEC_ROOT, "Root directory for execution state files"],
        ["storage-driver", "s", "overlay2", "Storage driver to use (overlay2, vfs)"],
        ["default-runtime", None, None, "Default OCI runtime for containers (crun, runc)"],
        ["config-file", None, None, "Daemon configuration file (daemon.json)"],
        ["log-level", "l", "info", "Set the logging level (debug, info, warn, error, fatal)"],
        ["tlscacert", None, None, "Trust certs signed only by this CA"],
        ["tlscert", None, None, "Path to TLS certificate file"],
        ["tlskey", None, None, "Path to TLS key file"],
        ["group", "G", "docker", "Group for the unix socket"],
        ["cgroup-parent", None, None, "Parent cgroup for all containers"],
        ["registry-certs-dir", None, "/etc/docker/certs.d",
         "Per-registry CAs and client certificates (<dir>/<host:port>/)"],
        ["bridge", "b", None, "Bridge of the default network (default dpy<daemon key>)"],
        ["bip", None, None, "Bridge IP and prefix, e.g. 172.30.0.1/16 (default: a free pool)"],
        ["iptables", None, "true",
         "Program NAT and published ports in our own nftables table (false: leave the "
         "host firewall alone)"],
    ]

    def __init__(self):
        super().__init__()
        self["hosts"] = []
        self["insecure-registries"] = []
        self["registry-mirrors"] = []

    def opt_insecure_registry(self, value: str) -> None:
        """Registry (host:port or CIDR) to use over plain HTTP; repeatable"""
        self["insecure-registries"].append(value)

    def opt_registry_mirror(self, value: str) -> None:
        """Registry mirror URL, tried first for every pull; repeatable"""
        self["registry-mirrors"].append(value)

    def opt_host(self, value: str) -> None:
        """Daemon socket(s) to connect to (unix:///path, tcp://addr:port); repeatable"""
        self["hosts"].append(value)

    opt_H = opt_host

    def postOptions(self) -> None:  # noqa: N802 (Twisted API)
        self.config = build_config(self)


_FLAG_FIELDS = {
    "data-root": "data_root", "exec-root": "exec_root", "storage-driver": "storage_driver",
    "default-runtime": "default_runtime", "log-level": "log_level", "tlscacert": "tlscacert",
    "tlscert": "tlscert", "tlskey": "tlskey", "group": "group", "cgroup-parent": "cgroup_parent",
    "bridge": "bridge", "bip": "bip", "iptables": "iptables",
}


_SHORT_FLAGS = {"s": "storage-driver", "l": "log-level", "G": "group", "b": "bridge"}


def _explicit_flags(argv: list[str]) -> set[str]:
    explicit = set()
    for arg in argv:
        if not arg.startswith("-"):
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if not arg.startswith("--") and name[:1] in _SHORT_FLAGS:
            name = _SHORT_FLAGS[name[:1]]
        if name in ("H", "host"):
            explicit.add("hosts")
        elif name == "insecure-registry":
            explicit.add("insecure_registries")
        elif name == "registry-mirror":
            explicit.add("registry_mirrors")
        elif name in _FLAG_FIELDS:
            explicit.add(_FLAG_FIELDS[name])
        elif name in ("tls", "tlsverify"):
            explicit.add(name)
    return explicit


def build_config(options: Options, argv: list[str] | None = None) -> cfg.DaemonConfig:
    from dockerpy import errors

    conf = cfg.DaemonConfig(
        hosts=list(options["hosts"]),
        data_root=os.path.abspath(options["data-root"]),
        exec_root=os.path.abspath(options["exec-root"]),
        storage_driver=options["storage-driver"],
        default_runtime=options["default-runtime"],
        log_level=options["log-level"],
        tls=bool(options["tls"]),
        tlsverify=bool(options["tlsverify"]),
        tlscacert=options["tlscacert"] and os.path.abspath(options["tlscacert"]),
        tlscert=options["tlscert"] and os.path.abspath(options["tlscert"]),
        tlskey=options["tlskey"] and os.path.abspath(options["tlskey"]),
        insecure_tcp=bool(options["insecure-tcp-without-tls"]),
        group=options["group"],
        cgroup_parent=options["cgroup-parent"],
        insecure_registries=list(options["insecure-registries"]),
        registry_mirrors=list(options["registry-mirrors"]),
        registry_certs_dir=os.path.abspath(options["registry-certs-dir"]),
        bridge=options["bridge"],
        bip=options["bip"],
        iptables=_parse_bool("iptables", options["iptables"]),
    )
    if options["config-file"]:
        try:
            cfg.merge(conf, cfg.load_daemon_json(options["config-file"]),
                      _explicit_flags(argv if argv is not None else sys.argv))
        except errors.DockerError as e:
            raise usage.UsageError(e.message) from None
    if not conf.hosts:
        conf.hosts = [cfg.DEFAULT_HOST]
    if not isinstance(conf.iptables, bool):  # from daemon.json
        conf.iptables = _parse_bool("iptables", str(conf.iptables))
    if conf.bridge and len(conf.bridge.encode()) > 15:
        raise usage.UsageError(f"invalid --bridge: {conf.bridge}: at most 15 bytes")
    if conf.bip:
        from dockerpy.network.ipam import parse_bip

        try:
            parse_bip(conf.bip)
        except errors.DockerError as e:
            raise usage.UsageError(e.message) from None
    from dockerpy.logfilter import parse_level

    try:
        parse_level(conf.log_level)
    except ValueError as e:
        raise usage.UsageError(str(e)) from None
    if conf.storage_driver not in ("overlay2", "vfs"):
        raise usage.UsageError(f"unknown storage driver: {conf.storage_driver}")
    if conf.default_runtime not in (None, "crun", "runc"):
        raise usage.UsageError(f"unknown runtime: {conf.default_runtime}")
    for host in conf.hosts:
        parse_host(host)  # validates
    if conf.tlsverify:
        conf.tls = True
    if conf.tls and not (conf.tlscert and conf.tlskey):
        raise usage.UsageError("--tls needs --tlscert and --tlskey")
    if conf.tlsverify and not conf.tlscacert:
        raise usage.UsageError("--tlsverify needs --tlscacert")
    for host in conf.hosts:
        if parse_host(host)[0] == "tcp" and not conf.tls and not conf.insecure_tcp:
            raise usage.UsageError(
                f"refusing to serve {host} without TLS: use --tlsverify with --tlscacert, "
                "--tlscert and --tlskey (or --insecure-tcp-without-tls if you really mean it)")
    return conf


def _parse_bool(name: str, value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "t", "yes"):
        return True
    if text in ("0", "false", "f", "no"):
        return False
    raise usage.UsageError(f"invalid boolean value {value!r} for --{name}")


def parse_host(host: str) -> tuple[str, str, int]:
    """``unix:///path`` -> ("unix", path, 0); ``tcp://addr:port`` -> ("tcp", addr, port)."""
    parts = urlsplit(host)
    if parts.scheme == "unix":
        path = parts.path or (parts.netloc and "/" + parts.netloc)
        if not path:
            raise usage.UsageError(f"invalid unix socket address: {host}")
        return "unix", path, 0
    if parts.scheme == "tcp":
        try:
            port = parts.port or 2376
        except ValueError:
            raise usage.UsageError(f"invalid TCP address: {host}") from None
        return "tcp", parts.hostname or "0.0.0.0", port
    raise usage.UsageError(f"invalid daemon address (want unix:// or tcp://): {host}")


def socket_is_live(path: str) -> bool:
    """Whether a daemon answers on the unix socket at ``path``."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(1.0)
    try:
        s.connect(path)
    except OSError:
        return False
    finally:
        s.close()
    return True


def unix_endpoint(reactor, path: str):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if socket_is_live(path):
        raise usage.UsageError(
            f"another daemon is already listening on unix://{path}: refusing to start")
    # A socket file nobody answers on is stale: the lock file (wantPID) lets
    # Twisted replace it, but a bare socket without a lock is removed here.
    if os.path.exists(path) and not os.path.exists(path + ".lock"):
        os.unlink(path)
    return endpoints.UNIXServerEndpoint(reactor, path, mode=0o660, wantPID=True)


def _read_pem(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise usage.UsageError(f"could not read {what} {path}: {e.strerror}") from None


def tls_options(conf: cfg.DaemonConfig):
    from twisted.internet import ssl

    cert = _read_pem(conf.tlscert, "TLS certificate")
    key = _read_pem(conf.tlskey, "TLS key")
    try:
        private = ssl.PrivateCertificate.loadPEM(cert + b"\n" + key)
    except Exception as e:
        raise usage.UsageError(f"invalid TLS certificate or key: {e}") from None
    if conf.tlsverify:
        ca = ssl.Certificate.loadPEM(_read_pem(conf.tlscacert, "TLS CA certificate"))
        # trustRoot makes OpenSSL require a client certificate signed by the CA
        # (VERIFY_PEER | VERIFY_FAIL_IF_NO_PEER_CERT), as dockerd's --tlsverify.
        return private.options(ca)
    return private.options()


def listen_endpoints(reactor, conf: cfg.DaemonConfig):
    """:return: list of (description, endpoint, unix_path or None, tls options or None).

    TLS is layered by the API service itself (``dockerpy.api.tls``) rather
    than by an SSL endpoint, because hijacked streams need TLS half-close.
    """
    out = []
    for host in conf.hosts:
        kind, addr, port = parse_host(host)
        if kind == "unix":
            out.append((host, unix_endpoint(reactor, addr), addr, None))
        else:
            out.append((host, endpoints.TCP4ServerEndpoint(reactor, port, interface=addr), None,
                        tls_options(conf) if conf.tls else None))
    return out


def makeService(options: Options, reactor=None) -> service.IService:  # noqa: N802
    if reactor is None:
        from twisted.internet import reactor  # the one place we take the global reactor
    from twisted.logger import Logger

    from dockerpy.daemon import DaemonService

    conf: cfg.DaemonConfig = options.config
    if conf.tls:
        tlsdefer.load()
    top = service.MultiService()
    daemon = DaemonService(reactor, conf)
    daemon.setServiceParent(top)
    listeners = listen_endpoints(reactor, conf)
    for host, _, _, _ in listeners:
        if host.startswith("tcp://") and not conf.tls:
            Logger().critical(
                "API listening on {host} WITHOUT TLS: anyone who can reach it controls this "
                "host as root", host=host)
    api = daemon.api_service(listeners)
    api.setServiceParent(top)
    # The reactor and the API are imported: whatever needs OpenSSL from
    # now on (a registry over HTTPS) calls tlsdefer.load().
    tlsdefer.release()
    return top


__all__ = ["Options", "makeService", "StreamServerEndpointService"]
