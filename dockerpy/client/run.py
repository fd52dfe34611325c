# -*- test-case-name: dockerpy.test.test_client_run -*-
"""``docker create``, ``docker run`` and ``docker start``: turning flags
into a container config, and the attached session (hijacked attach stream,
stdin pump, signal proxy, exit status) in the order the docker CLI uses:
create, attach, wait, start.

Exit statuses follow the docker CLI: 125 when the daemon refuses, 126 when
the command cannot be invoked, 127 when it is not found, else the
container's own status.
"""

from __future__ import annotations

import os
import re
import signal
import threading

from dockerpy.client.command import Cli, Parser, StatusError, familiar_with_tag
from dockerpy.client.format import demux
from dockerpy.client.transport import APIError, Client, DaemonUnreachable, Hijacked

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~10 ms
if TYPE_CHECKING:  # of every bin/docker run
    from typing import Any

_USAGE = "[OPTIONS] IMAGE [COMMAND] [ARG...]"
_PROXIED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def _container_flags(p: Parser, run: bool) -> None:
    """The flags ``create`` and ``run`` share (the ones we implement)."""
    p.add("-a", "--attach", kind="list", help="Attach to STDIN, STDOUT or STDERR")
    p.add("--add-host", kind="list", help="Add a custom host-to-IP mapping (host:ip)")
    p.add("--cap-add", kind="list", help="Add Linux capabilities")
    p.add("--cap-drop", kind="list", help="Drop Linux capabilities")
    p.add("--cidfile", help="Write the container ID to the file")
    p.add("--dns", kind="list", help="Set custom DNS servers")
    p.add("--dns-option", kind="list", help="Set DNS options")
    p.add("--dns-search", kind="list", help="Set custom DNS search domains")
    p.add("--domainname", help="Container NIS domain name")
    p.add("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    p.add("-e", "--env", kind="list", help="Set environment variables")
    p.add("--env-file", kind="list", help="Read in a file of environment variables")
    p.add("--expose", kind="list", help="Expose a port or a range of ports")
    p.add("-h", "--hostname", help="Container host name")
    p.add("--init", kind="bool", help="Run an init inside the container")
    p.add("-i", "--interactive", kind="bool", help="Keep STDIN open even if not attached")
    p.add("-l", "--label", kind="list", help="Set meta data on a container")
    p.add("--label-file", kind="list", help="Read in a line delimited file of labels")
    p.add("--log-driver", help="Logging driver for the container")
    p.add("--log-opt", kind="list", help="Log driver options")
    p.add("-m", "--memory", help="Memory limit")
    p.add("--memory-reservation", help="Memory soft limit")
    p.add("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable "
                                "unlimited swap")
    p.add("--oom-kill-disable", kind="bool", help="Disable OOM Killer")
    p.add("--cpus", help="Number of CPUs")
    p.add("-c", "--cpu-shares", help="CPU shares (relative weight)")
    p.add("--cpu-period", help="Limit CPU CFS (Completely Fair Scheduler) period")
    p.add("--cpu-quota", help="Limit CPU CFS (Completely Fair Scheduler) quota")
    p.add("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    p.add("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    p.add("--pids-limit", help="Tune container pids limit (set -1 for unlimited)")
    p.add("--mount", kind="list", help="Attach a filesystem mount to the container")
    p.add("--name", help="Assign a name to the container")
    p.add("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    p.add("--ip6", help="IPv6 address (e.g., 2001:db8::33)")
    p.add("--link", kind="list", help="Add link to another container")
    p.add("--link-local-ip", kind="list", help="Container IPv4/IPv6 link-local addresses")
    p.add("--mac-address", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    p.add("--network", "--net", kind="list", help="Connect a container to a network")
    p.add("--network-alias", "--net-alias", kind="list",
          help="Add network-scoped alias for the container")
    p.add("--platform", help="Set platform if server is multi-platform capable")
    p.add("--privileged", kind="bool", help="Give extended privileges to this container")
    p.add("-p", "--publish", kind="list", help="Publish a container's port(s) to the host")
    p.add("-P", "--publish-all", kind="bool", help="Publish all exposed ports to random ports")
    p.add("--pull", default="missing", help='Pull image before running ("always", "missing", '
          '"never")')
    p.add("-q", "--quiet", kind="bool", help="Suppress the pull output")
    p.add("--read-only", kind="bool", help="Mount the container's root filesystem as read only")
    p.add("--restart", default="no", help="Restart policy to apply when a container exits")
    p.add("--rm", kind="bool", help="Automatically remove the container when it exits")
    p.add("--runtime", help="Runtime to use for this container")
    p.add("--security-opt", kind="list", help="Security Options")
    p.add("--shm-size", help="Size of /dev/shm")
    p.add("--stop-signal", help="Signal to stop the container")
    p.add("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    p.add("--tmpfs", kind="list", help="Mount a tmpfs directory")
    p.add("-t", "--tty", kind="bool", help="Allocate a pseudo-TTY")
    p.add("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    p.add("-v", "--volume", kind="list", help="Bind mount a volume")
    p.add("--volumes-from", kind="list", help="Mount volumes from the specified container(s)")
    p.add("-w", "--workdir", help="Working directory inside the container")
    if run:
        p.add("-d", "--detach", kind="bool", help="Run container in background and print "
              "container ID")
        p.add("--detach-keys", help="Override the key sequence for detaching a container")
        p.add("--sig-proxy", kind="bool", default=True, help="Proxy received signals to the "
              "process (default true)")
    p.positional("image", nargs="?")
    p.positional("cmd", nargs="...")


# ------------------------------------------------------------ config

_MEM = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.I)


def ram_in_bytes(value: str) -> int:
    """go-units ``RAMInBytes`` (binary multiples: ``512m`` = 512 MiB)."""
    m = _MEM.match(value.strip())
    if not m:
        raise StatusError(125, f'invalid argument "{value}" for "-m, --memory" flag: '
                               f"invalid size: '{value}'")
    mult = 1024 ** "bkmgtp".index((m.group(2) or "b").lower())
    return int(float(m.group(1)) * mult)


def _int_flag(value: str | None, flag: str) -> int:
    if value is None:
        return 0
    try:
        return int(value)
    except ValueError:
        raise StatusError(125, f'invalid argument "{value}" for "{flag}" flag: '
                               f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


def nano_cpus(value: str | None) -> int:
    """``--cpus 1.5`` as the docker CLI sends it (``NanoCpus``)."""
    if not value:
        return 0
    try:
        cpus = float(value)
    except ValueError:
        raise StatusError(125, f'invalid argument "{value}" for "--cpus" flag: failed to '
                               f"parse {value} as a rational number") from None
    return int(round(cpus * 1e9))


def security_opts(opts: list[str] | None) -> list[str]:
    """As the docker CLI: ``seccomp=FILE`` goes to the daemon as the
    file's JSON (``seccomp=unconfined`` as it is)."""
    out = []
    for opt in opts or []:
        key, sep, value = opt.partition("=")
        if key == "seccomp" and sep and value != "unconfined":
            import json

            try:
                with open(value, "rb") as f:
                    profile = json.loads(f.read())
            except OSError as e:
                raise StatusError(125, f"opening seccomp profile ({value}) failed: "
                                       f"{e.strerror}") from None
            except ValueError as e:
                raise StatusError(125, f"compacting json for seccomp profile ({value}) "
                                       f"failed: {e}") from None
            opt = "seccomp=" + json.dumps(profile, separators=(",", ":"))
        out.append(opt)
    return out


def resource_limits(ns) -> dict:
    """The HostConfig members of the resource flags."""
    swap = ns.memory_swap
    return {
        "Memory": ram_in_bytes(ns.memory) if ns.memory else 0,
        "MemoryReservation": ram_in_bytes(ns.memory_reservation) if ns.memory_reservation
        else 0,
        "MemorySwap": (-1 if swap == "-1" else ram_in_bytes(swap)) if swap else 0,
        "OomKillDisable": bool(ns.oom_kill_disable),
        "NanoCpus": nano_cpus(ns.cpus),
        "CpuShares": _int_flag(ns.cpu_shares, "-c, --cpu-shares"),
        "CpuPeriod": _int_flag(ns.cpu_period, "--cpu-period"),
        "CpuQuota": _int_flag(ns.cpu_quota, "--cpu-quota"),
        "CpusetCpus": ns.cpuset_cpus or "",
        "CpusetMems": ns.cpuset_mems or "",
        "PidsLimit": _int_flag(ns.pids_limit, "--pids-limit") or None,
    }


def read_kv_file(path: str, environ: dict[str, str] | None) -> list[str]:
    """Docker's env/label files: ``#`` comments, blank lines, and bare names
    taken from the environment (env files only)."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise StatusError(125, f"open {path}: {(e.strerror or '').lower()}")
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        if "=" in line or environ is None:
            out.append(line)
        elif line in environ:
            out.append(f"{line}={environ[line]}")
    return out


def parse_ports(specs: list[str], expose: list[str]) -> tuple[dict, dict]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` and ``--expose``.

    :return: (ExposedPorts, PortBindings).
    """
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in expose:
        port, _, proto = spec.partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    for spec in specs:
        spec, _, proto = spec.partition("/")
        proto = proto or "tcp"
        if spec.startswith("["):
            ip, _, rest = spec[1:].partition("]:")
            parts = [ip] + rest.split(":")
        else:
            parts = spec.split(":")
        if len(parts) == 1:
            ip, host, container = "", "", parts[0]
        elif len(parts) == 2:
            ip, (host, container) = "", parts
        elif len(parts) == 3:
            ip, host, container = parts
        else:
            raise StatusError(125, f'invalid argument "{spec}" for "-p, --publish" flag: '
                                   f"invalid port format")
        key = f"{container}/{proto}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host})
    return exposed, bindings


def build_config(cli: Cli, ns: Any, detach: bool) -> tuple[dict[str, Any], str | None]:
    """The ``POST /containers/create`` body for the parsed flags.

    :return: (body, name).
    """
    env: list[str] = []
    for path in ns.env_file:
        env.extend(read_kv_file(path, cli.environ))
    for item in ns.env:
        if "=" in item:
            env.append(item)
        elif item in cli.environ:
            env.append(f"{item}={cli.environ[item]}")
    labels: dict[str, str] = {}
    for path in ns.label_file:
        for item in read_kv_file(path, None):
            k, _, v = item.partition("=")
            labels[k] = v
    for item in ns.label:
        k, _, v = item.partition("=")
        labels[k] = v

    attach = {s.lower() for s in ns.attach}
    for stream in attach:
        if stream not in ("stdin", "stdout", "stderr"):
            raise StatusError(125, f"invalid argument \"{stream}\" for \"-a, --attach\" flag: "
                                   "valid streams are STDIN, STDOUT and STDERR")
    if detach:
        if attach:
            raise StatusError(125, "Conflicting options: -a and -d")
        attach_stdin = attach_stdout = attach_stderr = False
    elif attach:
        attach_stdin = "stdin" in attach
        attach_stdout = "stdout" in attach
        attach_stderr = "stderr" in attach
    else:
        attach_stdin = ns.interactive
        attach_stdout = attach_stderr = True

    entrypoint = None
    if ns.entrypoint is not None:
        entrypoint = [ns.entrypoint] if ns.entrypoint else [""]
    exposed, bindings = parse_ports(ns.publish, ns.expose)
    binds, volumes = [], {}
    for v in ns.volume:
        if ":" in v and not v.startswith(":"):
            binds.append(v)
        else:
            volumes[v] = {}
    from dockerpy.client.volumes import parse_mount_flag

    mounts = [parse_mount_flag(m) for m in ns.mount]
    tmpfs = {}
    for t in ns.tmpfs:
        path, _, opts = t.partition(":")
        tmpfs[path] = opts
    restart_name, _, retries = (ns.restart or "no").partition(":")
    log_config: dict[str, Any] = {"Type": ns.log_driver or "", "Config": {}}
    for opt in ns.log_opt:
        k, _, v = opt.partition("=")
        log_config["Config"][k] = v
    from dockerpy.client.networks import network_config

    network, endpoints = network_config(ns, getattr(ns, "command_name", "run"))

    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": ns.cidfile or "",
        "LogConfig": log_config,
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": int(retries or 0)},
        "AutoRemove": bool(getattr(ns, "rm", False)),
        "VolumesFrom": ns.volumes_from or None,
        "CapAdd": ns.cap_add or None,
        "CapDrop": ns.cap_drop or None,
        "Dns": ns.dns,
        "DnsOptions": ns.dns_option,
        "DnsSearch": ns.dns_search,
        "ExtraHosts": ns.add_host or None,
        "Links": ns.link or None,
        "Privileged": ns.privileged,
        "PublishAllPorts": ns.publish_all,
        "ReadonlyRootfs": ns.read_only,
        "SecurityOpt": security_opts(ns.security_opt) or None,
        "ShmSize": ram_in_bytes(ns.shm_size) if ns.shm_size else 0,
        "Init": True if ns.init else None,
        **resource_limits(ns),
    }
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if mounts:
        host_config["Mounts"] = mounts
    if ns.runtime:
        host_config["Runtime"] = ns.runtime
    if ns.tty:
        try:
            size = os.get_terminal_size(cli.stdout.fileno())
            host_config["ConsoleSize"] = [size.lines, size.columns]
        except (AttributeError, OSError, ValueError):
            pass
    host_config = {k: v for k, v in host_config.items() if v is not None or k in (
        "Binds", "VolumesFrom", "CapAdd", "CapDrop", "ExtraHosts", "SecurityOpt")}

    body: dict[str, Any] = {
        "Hostname": ns.hostname or "",
        "Domainname": ns.domainname or "",
        "User": ns.user or "",
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "ExposedPorts": exposed or None,
        "Tty": ns.tty,
        "OpenStdin": ns.interactive,
        "StdinOnce": ns.interactive and attach_stdin,
        "Env": env or None,
        "Cmd": ns.cmd or None,
        "Image": ns.image,
        "Volumes": volumes,
        "WorkingDir": ns.workdir or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
        "HostConfig": host_config,
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    }
    if body["ExposedPorts"] is None:
        del body["ExposedPorts"]
    if ns.stop_signal:
        body["StopSignal"] = ns.stop_signal
    if ns.stop_timeout is not None:
        body["StopTimeout"] = ns.stop_timeout
    return body, ns.name


def _parse(cli: Cli, name: str, argv: list[str], run: bool) -> Any:
    desc = "Create and run a new container from an image" if run else "Create a new container"
    p = Parser(name, _USAGE, desc, min_args=1, interspersed=False)
    _container_flags(p, run)
    ns = p.parse(cli, argv)
    ns.command_name = name
    p.check_args(0 if ns.image is None else 1)
    if ns.pull not in ("always", "missing", "never"):
        raise StatusError(125, f'invalid pull option: \'{ns.pull}\': must be one of '
                               f'"always", "missing" or "never"')
    return ns


def _daemon_error(name: str, message: str, status: int = 125) -> StatusError:
    return StatusError(status, f"docker: {message}\n\n"
                               f"Run 'docker {name} --help' for more information")


def _status_for(message: str) -> int:
    """Docker's ``toStatusError``: 127 not found, 126 cannot invoke, else 125."""
    if ("executable file not found" in message or "no such file or directory" in message
            or "system cannot find the file specified" in message):
        return 127
    if "permission denied" in message or "is a directory" in message:
        return 126
    return 125


def create_container(cli: Cli, name: str, ns: Any, detach: bool) -> str:
    """POST /containers/create; print warnings; return the id.

    :raises StatusError: with the run/create wording and status 125.
    """
    body, cname = build_config(cli, ns, detach)
    query = {"name": cname, "platform": ns.platform}
    if ns.pull == "always":
        cli.err("dockerpy: pulling images is not supported yet; using the local image")
    try:
        result = cli.client.post_json("/containers/create", query, body) or {}
    except APIError as e:
        if e.status == 404 and "No such image" in e.message and ns.pull != "never":
            cli.err(f"Unable to find image '{familiar_with_tag(ns.image)}' locally")
        raise _daemon_error(name, str(e))
    for warning in result.get("Warnings") or []:
        cli.err(f"WARNING: {warning}")
    cid = result.get("Id", "")
    if ns.cidfile:
        try:
            with open(ns.cidfile, "x") as f:
                f.write(cid)
        except OSError as e:
            raise _daemon_error(name, f"failed to create the container ID file: {e}")
    return cid


def create(cli: Cli, name: str, argv: list[str]) -> int:
    ns = _parse(cli, name, argv, run=False)
    cli.out(create_container(cli, name, ns, detach=True))
    return 0


# ------------------------------------------------------------ attached session

class _Waiter:
    """``POST /wait`` sent before start, its reply read on a thread."""

    def __init__(self, client: Client, cid: str, condition: str):
        self.status: int | None = None
        self.error: str | None = None
        self._client = client
        self._pending = client.begin("POST", f"/containers/{cid}/wait",
                                     {"condition": condition})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            result = self._client.finish(self._pending).json() or {}
        except APIError as e:
            self.error = str(e)
            return
        except Exception as e:  # a dropped connection must not hang run
            self.error = f"error waiting for container: {e}"
            return
        if result.get("Error"):
            self.error = f"Error waiting for container: {result['Error'].get('Message')}"
            self.status = 125
            return
        self.status = int(result.get("StatusCode", 0))

    def result(self) -> int:
        self._thread.join()
        if self.error:
            raise StatusError(125, self.error)
        return self.status if self.status is not None else 125


def _pump_stdin(cli: Cli, stream: Hijacked) -> None:
    """Copy our stdin up, then half-close.  Reads the file descriptor itself
    when there is one: a thread blocked inside a buffered reader's lock
    aborts the interpreter at exit (this thread may still be reading)."""
    try:
        fd = cli.stdin.fileno()
    except (AttributeError, OSError, ValueError):
        fd = None
    read = (lambda n: os.read(fd, n)) if fd is not None else (
        getattr(cli.stdin, "read1", None) or cli.stdin.read)
    try:
        while True:
            data = read(65536)
            if not data:
                break
            stream.write(data)
    except OSError:
        pass
    finally:
        try:
            stream.close_write()
        except OSError:
            pass


class _SignalProxy:
    """Forward the signals we receive to the container (``--sig-proxy``)."""

    def __init__(self, client: Client, cid: str):
        self._client = client
        self._cid = cid
        self._old: dict[int, Any] = {}

    def __enter__(self) -> "_SignalProxy":
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in _PROXIED_SIGNALS:
            signum = getattr(signal, name)
            self._old[signum] = signal.signal(signum, self._forward)
        return self

    def _forward(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=self._kill, args=(name,), daemon=True).start()

    def _kill(self, name: str) -> None:
        try:
            self._client.send("POST", f"/containers/{self._cid}/kill", {"signal": name})
        except (APIError, DaemonUnreachable, OSError):
            pass

    def __exit__(self, *exc: Any) -> None:
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


def _stream_output(cli: Cli, stream: Hijacked, tty: bool) -> None:
    if tty:
        while True:
            data = stream.read(65536)
            if not data:
                return
            cli.stdout.write(data)
            cli.stdout.flush()
    demux(stream.read, cli.stdout, cli.stderr)


def attach_and_start(cli: Cli, name: str, cid: str, *, stdin: bool, stdout: bool,
                     stderr: bool, tty: bool, wait_condition: str | None,
                     sig_proxy: bool, start_error_status: bool,
                     detach_keys: str | None = None) -> int:
    """Attach, send wait, start, stream until the output ends, and return
    the container's exit status.

    With a terminal on both ends, as the docker CLI: our terminal is raw
    while attached (and restored on every exit), the container's follows
    our size (SIGWINCH), and the detach keys end the attach, leaving the
    container running (status 0).

    :param wait_condition: ``next-exit``/``removed``, or ``None`` to skip.
    :param start_error_status: map start failures to 125/126/127 (run)
        rather than 1 (start).
    """
    from dockerpy.client.detachkeys import detach_keys as parse_keys

    client = cli.client
    stream = None
    try:
        keys = parse_keys(detach_keys)
    except ValueError:
        raise StatusError(125, f"Invalid detach keys ({detach_keys}) provided") from None
    if stdin or stdout or stderr:
        stream = client.hijack(f"/containers/{cid}/attach", {
            "stream": True, "stdin": True if stdin else None,
            "stdout": True if stdout else None, "stderr": True if stderr else None,
            "detachKeys": detach_keys or None})
    waiter = _Waiter(client, cid, wait_condition) if wait_condition else None
    try:
        client.send("POST", f"/containers/{cid}/start")
    except APIError as e:
        if stream is not None:
            stream.close()
        if start_error_status:
            raise _daemon_error(name, str(e), _status_for(e.message))
        raise StatusError(1, f"{e}\nError: failed to start containers: {cid}")
    detached = False
    if stream is not None:
        from dockerpy.client.interactive import stream_attached

        detached = stream_attached(cli, cid, stream, tty=tty, stdin=stdin,
                                   sig_proxy=sig_proxy, keys=keys)
    if waiter is None or detached:
        return 0
    return waiter.result()


def run(cli: Cli, name: str, argv: list[str]) -> int:
    ns = _parse(cli, name, argv, run=True)
    cid = create_container(cli, name, ns, detach=ns.detach)
    if ns.detach:
        # The docker CLI prints the id before starting, so it shows even when
        # start fails.
        cli.out(cid)
        try:
            cli.client.send("POST", f"/containers/{cid}/start")
        except APIError as e:
            raise _daemon_error(name, str(e), _status_for(e.message))
        return 0
    attach = {s.lower() for s in ns.attach}
    if attach:
        stdin, stdout, stderr = "stdin" in attach, "stdout" in attach, "stderr" in attach
    else:
        stdin, stdout, stderr = ns.interactive, True, True
    return attach_and_start(
        cli, name, cid, stdin=stdin, stdout=stdout, stderr=stderr, tty=ns.tty,
        wait_condition="removed" if ns.rm else "next-exit", sig_proxy=ns.sig_proxy,
        start_error_status=True, detach_keys=ns.detach_keys)


def start(cli: Cli, name: str, argv: list[str]) -> int:
    p = Parser(name, "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped "
               "containers", min_args=1)
    p.add("-a", "--attach", kind="bool", help="Attach STDOUT/STDERR and forward signals")
    p.add("--detach-keys", help="Override the key sequence for detaching a container")
    p.add("-i", "--interactive", kind="bool", help="Attach container's STDIN")
    p.positional("containers", nargs="*")
    ns = p.parse(cli, argv)
    p.check_args(len(ns.containers))
    if ns.attach or ns.interactive:
        if len(ns.containers) > 1:
            raise StatusError(1, "you cannot start and attach multiple containers at once")
        target = ns.containers[0]
        info = cli.client.get_json(f"/containers/{target}/json") or {}
        config = info.get("Config") or {}
        cid = info.get("Id", target)
        auto_remove = (info.get("HostConfig") or {}).get("AutoRemove", False)
        return attach_and_start(
            cli, name, cid, stdin=ns.interactive and config.get("OpenStdin", False),
            stdout=True, stderr=True, tty=config.get("Tty", False),
            wait_condition="removed" if auto_remove else "next-exit",
            sig_proxy=True, start_error_status=False, detach_keys=ns.detach_keys)
    failed = []
    for target in ns.containers:
        try:
            cli.client.send("POST", f"/containers/{target}/start")
        except APIError as e:
            cli.err(str(e))
            failed.append(target)
            continue
        cli.out(target)
    if failed:
        raise StatusError(1, f"Error: failed to start containers: {', '.join(failed)}")
    return 0
