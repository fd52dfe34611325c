# -*- test-case-name: dockerpy.test.test_container_service -*-
"""Container use-cases: create, start, stop, kill, wait, remove, ...

The one owner of container state.  It combines the image store (what to
run), the storage driver (the root file system), the OCI runtime (the
process) and the record store (what survives a restart).  File-system work
goes through ``in_thread``; processes through the runtime.  Every failure
path undoes what it made.
"""

from __future__ import annotations

import collections
import os
import secrets
import shutil
import signal as signal_mod
import threading
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger

from dockerpy import atomic, errors, syscalls
from dockerpy.containers import etcfiles, names
from dockerpy.containers.logs import JSONFileWriter
from dockerpy.containers.monitor import ContainerProcess
from dockerpy.containers.record import ContainerRecord, RecordStore, State
from dockerpy.timeutil import rfc3339
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)

DEFAULT_STOP_TIMEOUT = 10
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Paths the runtime needs as mount points; they live in an init layer (one
# per image, shared by its containers) below each read-write layer, so that
# `docker diff` and commits never show them (as with Docker's "-init" layer).
_INIT_LAYER_DIRS = {"dev": 0o755, "dev/pts": 0o755, "dev/shm": 0o1777, "proc": 0o555,
                    "sys": 0o555, "etc": 0o755}
_INIT_LAYER_FILES = ("etc/hostname", "etc/hosts", "etc/resolv.conf", "dev/console")


def parse_signal(value: str | int | None, default: int = signal_mod.SIGTERM) -> int:
    """``"SIGTERM"``, ``"TERM"``, ``"15"``, ``15`` -> 15 (Docker's accepted forms)."""
    if value is None or value == "":
        return default
    if isinstance(value, int):
        sig = value
    else:
        text = value.strip().upper()
        if text.isdigit():
            sig = int(text)
        else:
            if not text.startswith("SIG"):
                text = "SIG" + text
            try:
                sig = int(getattr(signal_mod.Signals, text))
            except AttributeError:
                raise errors.InvalidParameter(f"Invalid signal: {value}") from None
    if not 0 < sig < 65:
        raise errors.InvalidParameter(f"Invalid signal: {value}")
    return sig


def _init_layer_tar(out) -> None:
    import tarfile

    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, mode in _INIT_LAYER_DIRS.items():
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)
        for name in _INIT_LAYER_FILES:
            info = tarfile.TarInfo(name)
            info.mode = 0o755 if name == "dev/console" else 0o644
            tar.addfile(info)
        info = tarfile.TarInfo("etc/mtab")
        info.type, info.linkname = tarfile.SYMTYPE, "/proc/mounts"
        tar.addfile(info)


class Attachment:
    """One client's view of a container's stdio (attach, or `docker run`).

    Output is delivered through ``on_output(stream, data)``; ``on_end()`` is
    called once when the container's process ends (or at once for a container
    that already exited).  Stdin written before the process exists is kept
    and delivered when it starts.
    """

    def __init__(self, service: "ContainerService", cid: str, stdin: bool, stdout: bool,
                 stderr: bool, on_output: Callable[[str, bytes], None],
                 on_end: Callable[[], None]):
        self._service, self.cid = service, cid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self._on_output, self._on_end = on_output, on_end
        self._proc: ContainerProcess | None = None
        self._pending_stdin: list[bytes] = []
        self._stdin_closed = False
        self._unsubscribe: Callable[[], None] | None = None
        self.ended = False

    def connect(self, proc: ContainerProcess) -> None:
        self._proc = proc
        self._unsubscribe = proc.subscribe(self._deliver, self.end)
        if self.stdin:
            for data in self._pending_stdin:
                proc.write_stdin(data)
            self._pending_stdin = []
            if self._stdin_closed:
                proc.close_stdin()

    def _deliver(self, stream: str, data: bytes) -> None:
        if (stream == "stdout" and self.stdout) or (stream == "stderr" and self.stderr):
            self._on_output(stream, data)

    def write_stdin(self, data: bytes) -> None:
        if not self.stdin:
            return
        if self._proc is None:
            self._pending_stdin.append(data)
        else:
            self._proc.write_stdin(data)

    def close_stdin(self) -> None:
        """The client closed its stdin: the container's stdin gets EOF (StdinOnce)."""
        if not self.stdin:
            return
        self._stdin_closed = True
        if self._proc is not None:
            self._proc.close_stdin()

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._on_end()

    def hold(self) -> None:
        """This client cannot keep up: hold the container's output."""
        if self._proc is not None:
            self._proc.hold(self)

    def release(self) -> None:
        if self._proc is not None:
            self._proc.release(self)

    def detach(self) -> None:
        """The client went away: stop delivering, never touch the container."""
        self._service._forget_attachment(self)
        self.release()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.ended = True


class ContainerService:
    def __init__(self, reactor, in_thread, records: RecordStore, images, driver,
                 runtimes: dict[str, Any], default_runtime: str, exec_root: str,
                 cgroup_parent: str, events=None, volumes=None):
        self._reactor = reactor
        # dockerpy.volumes.service.VolumeService; None: no mounts (unit tests).
        self.volumes = volumes
        self._in_thread = in_thread
        self.records = records
        self.images = images
        self.driver = driver
        self.runtimes = runtimes
        self.default_runtime = default_runtime
        self.exec_root = exec_root
        bundles = os.path.join(exec_root, "containers")
        os.makedirs(bundles, mode=0o711, exist_ok=True)
        syscalls.spread_subdirectories(bundles)
        self.cgroup_parent = cgroup_parent
        self._events = events
        # dockerpy.network.service.NetworkService; None: no bridge (unit tests).
        self.network = None
        self._by_id: dict[str, ContainerRecord] = {}
        self._names: dict[str, str] = {}
        self._live: dict[str, ContainerProcess] = {}
        self._pending_attach: dict[str, list[Attachment]] = {}
        self._exit_waiters: dict[str, list[defer.Deferred]] = {}
        self._removed_waiters: dict[str, list[defer.Deferred]] = {}
        self._busy: dict[str, defer.DeferredLock] = {}
        self._removing: set[str] = set()
        # Containers between the stop and the start of a restart: attaching
        # (a log follower) waits for the next run instead of ending.
        self._restarting: set[str] = set()
        # Containers of one image share its init layer (the mount points the
        # runtime needs: /etc/hosts, /dev, ...): it is the same for all of
        # them, and making it costs more than the rest of a create.
        self._init_users: collections.Counter[str] = collections.Counter()
        self._init_lock = threading.Lock()

    # -- lookup -----------------------------------------------------------

    def runtime_of(self, rec: ContainerRecord):
        """The runtime the container was created for (``HostConfig.Runtime``,
        checked at create), else the default."""
        return self.runtimes[rec.host_config.get("Runtime") or self.default_runtime]

    def get(self, ref: str) -> ContainerRecord:
        """Find a container by full id, name (with or without ``/``) or unique id prefix."""
        if ref in self._by_id:
            return self._by_id[ref]
        name = ref.lstrip("/")
        if name in self._names:
            return self._by_id[self._names[name]]
        if ref and all(c in "0123456789abcdef" for c in ref):
            found = [cid for cid in self._by_id if cid.startswith(ref)]
            if len(found) == 1:
                return self._by_id[found[0]]
            if len(found) > 1:
                raise errors.InvalidParameter(
                    f"multiple IDs found with provided prefix: {ref}")
        raise errors.no_such_container(ref)

    def all(self) -> list[ContainerRecord]:
        return sorted(self._by_id.values(), key=lambda r: r.created, reverse=True)

    def is_running(self, cid: str) -> bool:
        return cid in self._live

    def is_restarting(self, cid: str) -> bool:
        """Whether ``cid`` is being restarted (stopped, about to start)."""
        return cid in self._restarting

    def _lock(self, cid: str) -> defer.DeferredLock:
        return self._busy.setdefault(cid, defer.DeferredLock())

    def _emit(self, action: str, rec: ContainerRecord, **extra: str) -> None:
        if self._events is not None:
            attrs = {"name": rec.name, "image": rec.image_name}
            attrs.update(rec.config.get("Labels") or {})
            attrs.update(extra)
            self._events.publish("container", action, rec.id, attrs)

    # -- create -----------------------------------------------------------

    async def create(self, body: dict, name: str | None = None) -> ContainerRecord:
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: container config must be an object")
        image_ref = body.get("Image")
        if not image_ref or not isinstance(image_ref, str):
            raise errors.InvalidParameter("no image specified" if not image_ref
                                          else "invalid image name")
        host_config = body.get("HostConfig") or {}
        if not isinstance(host_config, dict):
            raise errors.InvalidParameter("invalid JSON: HostConfig must be an object")
        from dockerpy.runtime import resources

        resources.validate(host_config)
        if host_config.get("Memory") and not host_config.get("MemorySwap"):
            # Docker's default, shown by inspect: as much swap as memory.
            host_config = dict(host_config, MemorySwap=2 * host_config["Memory"])
        if name:
            name = names.validate(name)
            if name in self._names:
                other = self._names[name]
                raise errors.Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{other}". You have to remove (or rename) that container to be able to '
                    f"reuse that name.")
        else:
            name = names.random_name(self._names)
        runtime_name = host_config.get("Runtime") or self.default_runtime
        if runtime_name not in self.runtimes:
            raise errors.InvalidParameter(f"unknown or invalid runtime name: {runtime_name}")
        network_mode = host_config.get("NetworkMode") or "default"
        from dockerpy.containers import networking

        networks = networking.plan(self.network, body, host_config,
                                   body.get("NetworkingConfig"), self.get)
        image = self.images.resolve(image_ref)
        config = merge_config(body, image.config.get("config") or {})
        config["Image"] = image_ref
        argv = (config.get("Entrypoint") or []) + (config.get("Cmd") or [])
        if not argv:
            raise errors.InvalidParameter("no command specified")
        points: list[dict] = []
        if self.volumes is not None:
            from dockerpy.volumes.mounts import plan

            points = plan(config, host_config, lambda ref: self.get(ref).mounts)
        cid = secrets.token_hex(32)
        if not config.get("Hostname"):
            config["Hostname"] = cid[:12]
        host_config = dict(host_config)
        host_config.setdefault("NetworkMode", network_mode)
        host_config["Runtime"] = runtime_name
        now = self._reactor.seconds()
        rec = ContainerRecord(
            id=cid, name=name, created=rfc3339(now), path=argv[0], args=argv[1:],
            config=config, host_config=host_config, image=image.id, image_name=image_ref,
            driver=self.driver.name, layer_id=cid,
            init_layer_id=(self.images.top_layer(image) or "0" * 64) + "-init",
            networks=networks)
        # Reserve the name and the init layer before yielding to the thread pool.
        self._names[name] = cid
        self._init_users[rec.init_layer_id] += 1
        try:
            if points:
                rec.mounts = await self.volumes.setup(cid, points)
            await self._in_thread(self._make_layers, rec, image)
        except BaseException:
            del self._names[name]
            self._init_users[rec.init_layer_id] -= 1
            if rec.mounts:
                await self.volumes.release(cid, rec.mounts, remove_anonymous=True)
            raise
        self._by_id[cid] = rec
        self._emit("create", rec)
        return rec

    def _make_layers(self, rec: ContainerRecord, image) -> None:
        import tempfile

        made = []
        # The hold keeps the image's layers while this container exists, even
        # if the image is removed with --force (as Docker does).
        parent = self.images.acquire_layer(rec.id, image)
        try:
            with self._init_lock:
                if not self.driver.exists(rec.init_layer_id):
                    self.driver.create(rec.init_layer_id, parent)
                    with tempfile.TemporaryFile() as tmp:
                        _init_layer_tar(tmp)
                        tmp.seek(0)
                        self.driver.apply_diff(rec.init_layer_id, tmp)
                self.driver.create(rec.layer_id, rec.init_layer_id)
            made.append(rec.layer_id)
            self.records.create(rec)
        except BaseException:
            for layer in reversed(made):
                self.driver.remove(layer)
            self.records.delete(rec.id)
            self.images.release_layer(rec.id)
            raise

    # -- attach -----------------------------------------------------------

    def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
               on_output: Callable[[str, bytes], None],
               on_end: Callable[[], None]) -> Attachment:
        rec = self.get(ref)
        att = Attachment(self, rec.id, stdin and bool(rec.config.get("OpenStdin")),
                         stdout, stderr, on_output, on_end)
        proc = self._live.get(rec.id)
        if proc is not None:
            att.connect(proc)
        elif rec.state.status in ("created",) or rec.id in self._restarting or (
                rec.id in self._busy and not rec.has_been_started):
            self._pending_attach.setdefault(rec.id, []).append(att)
        else:
            # Stopped: nothing will come; Docker ends the stream after any logs.
            self._reactor.callLater(0, att.end)
        return att

    def _forget_attachment(self, att: Attachment) -> None:
        pending = self._pending_attach.get(att.cid)
        if pending and att in pending:
            pending.remove(att)

    # -- start ------------------------------------------------------------

    async def start(self, ref: str) -> None:
        rec = self.get(ref)
        async with self._lock(rec.id):
            await self._start_locked(rec)

    async def _start_locked(self, rec: ContainerRecord) -> None:
        if rec.id in self._live:
            raise errors.NotModified("container already started")
        if rec.id in self._removing:
            raise errors.Conflict("container is marked for removal and cannot be started")
        runtime = self.runtime_of(rec)
        bundle = os.path.join(self.exec_root, "containers", rec.id)
        from dockerpy.network.service import uses_sandbox

        # Without a namespace of ours to make first, the mount and the bundle
        # take one trip to the thread pool.
        one_hop = self.network is None or not uses_sandbox(rec.host_config)
        rootfs = None if one_hop else await self._in_thread(self.driver.mount, rec.layer_id)
        writer = None
        try:
            shared = self._network_source(rec)
            if self.network is not None:
                await self.network.attach(rec.id, rec.name, rec.config, rec.host_config,
                                          rec.networks)
            if one_hop:
                await self._in_thread(self._mount_and_prepare, rec, bundle, shared)
            else:
                await self._in_thread(self._prepare_bundle, rec, rootfs, bundle, shared)
            writer = JSONFileWriter(self.records.log_path(rec.id), self._reactor)
            proc = ContainerProcess(writer)
            for att in self._pending_attach.pop(rec.id, []):
                att.connect(proc)
            # Registered before the spawn: a container that exits at once still
            # finds its bookkeeping in place.
            self._live[rec.id] = proc
            pid = await runtime.run(rec.id, bundle, proc,
                                    bool(rec.config.get("OpenStdin")),
                                    os.path.join(bundle, "pid"))
        except BaseException as e:
            self._live.pop(rec.id, None)
            if writer is not None:
                writer.close()
            await self._cleanup_after_run(rec, runtime, bundle, force=True)
            code = _start_error_code(str(e))
            rec.state = State(status="created" if not rec.has_been_started else "exited",
                              exit_code=code, error=_error_text(e),
                              started_at=rec.state.started_at,
                              finished_at=rec.state.finished_at)
            self.records.save(rec)
            if rec.host_config.get("AutoRemove"):
                # The docker CLI waits for condition=removed even when start fails.
                self._reactor.callLater(
                    0, lambda: defer.ensureDeferred(self._auto_remove(rec)))
            if isinstance(e, errors.DockerError):
                raise
            raise errors.SystemError_(_error_text(e)) from e
        rec.state = State(status="running", running=True, pid=pid or 0,
                          started_at=rfc3339(self._reactor.seconds()))
        rec.has_been_started = True
        self.records.save(rec, durable=False)
        self._emit("start", rec)
        proc.ended.addCallback(lambda code: defer.ensureDeferred(
            self._on_exit(rec, runtime, bundle, code)))

    def _mount_and_prepare(self, rec: ContainerRecord, bundle: str,
                           shared: ContainerRecord | None) -> None:
        self._prepare_bundle(rec, self.driver.mount(rec.layer_id), bundle, shared)

    def _network_source(self, rec: ContainerRecord) -> ContainerRecord | None:
        """For ``--network container:<ref>``: that container, which must run."""
        from dockerpy.containers.networking import container_mode_target

        target = container_mode_target(rec.host_config)
        if target is None:
            return None
        other = self.get(target)
        if not other.state.running or not other.state.pid:
            raise errors.Conflict(f"cannot join network of a non running container: {other.id}")
        return other

    def _link_hosts(self, rec: ContainerRecord) -> list[str]:
        from dockerpy.containers.networking import link_hosts

        def address_of(cid):
            ep = self.network.endpoint(cid) if self.network is not None else None
            return ep.address if ep is not None else None

        return link_hosts(rec.host_config.get("Links") or [], self.get, address_of)

    def _prepare_bundle(self, rec: ContainerRecord, rootfs: str, bundle: str,
                        shared: ContainerRecord | None = None) -> None:
        """Thread: resolve the user in the image, write /etc files and config.json.

        :param shared: the container whose network namespace (and /etc files)
            this one joins (``--network container:``).
        """
        from dockerpy.runtime.cgroups import default_cgroupns_mode, swap_accounting
        from dockerpy.runtime.resources import oci_resources
        from dockerpy.runtime.spec import SpecInput, build_spec, find_init
        from dockerpy.runtime.users import resolve_user

        cfg, hc = rec.config, rec.host_config
        uid, gid, groups = resolve_user(rootfs, cfg.get("User") or "")
        cdir = self.records.dir(rec.id)
        network = "host" if hc.get("NetworkMode") == "host" else None
        sandbox = self.network.sandbox(rec.id) if self.network is not None else None
        endpoint = sandbox.primary if sandbox is not None else None
        if sandbox is not None:
            network = sandbox.netns
        if shared is not None:
            network = f"/proc/{shared.state.pid}/ns/net"
            from dockerpy.containers.networking import shared_etc_mounts

            etc_mounts = shared_etc_mounts(self.records.dir(shared.id))
        else:
            etc_mounts = etcfiles.write(
                cdir, cfg.get("Hostname") or rec.id[:12], cfg.get("Domainname") or "",
                network == "host", (hc.get("ExtraHosts") or []) + self._link_hosts(rec),
                hc.get("Dns") or [], hc.get("DnsSearch") or [], hc.get("DnsOptions") or [],
                address=endpoint.address if endpoint else None,
                embedded_dns=bool(sandbox is not None and sandbox.dns))
        workdir = cfg.get("WorkingDir") or "/"
        if workdir != "/":
            _ensure_workdir(rootfs, workdir, uid, gid)
        if rec.mounts:
            from dockerpy.volumes.mounts import oci_mounts

            # Undone by _unmount_and_clear, which every failed start reaches.
            sources = self.volumes.mount_all(rec.id, rec.mounts)
            etc_mounts = etc_mounts + oci_mounts(rootfs, rec.mounts, sources)
        spec = build_spec(SpecInput(
            rootfs=rootfs,
            args=[rec.path] + list(rec.args),
            env=cfg.get("Env") or [],
            cwd=workdir,
            uid=uid, gid=gid, additional_gids=groups,
            hostname=((shared.config.get("Hostname") if shared is not None else None)
                      or cfg.get("Hostname") or rec.id[:12]),
            domainname=cfg.get("Domainname") or "",
            tty=bool(cfg.get("Tty")),
            open_stdin=bool(cfg.get("OpenStdin")),
            readonly_rootfs=bool(hc.get("ReadonlyRootfs")),
            network=network,
            mounts=etc_mounts,
            cgroups_path=f"{self.cgroup_parent}/{rec.id}",
            cgroupns=default_cgroupns_mode(),
            cap_add=hc.get("CapAdd") or [],
            cap_drop=hc.get("CapDrop") or [],
            privileged=bool(hc.get("Privileged")),
            shm_size=hc.get("ShmSize") or 64 * 1024 * 1024,
            init_path=find_init() if hc.get("Init") else None,
            resources=oci_resources(hc, swap_accounting()),
            security_opt=list(hc.get("SecurityOpt") or []),
        ))
        self.runtime_of(rec).prepare_spec(spec)
        size = hc.get("ConsoleSize") or [0, 0]
        if cfg.get("Tty") and len(size) == 2 and all(isinstance(n, int) and n > 0 for n in size):
            # The client's terminal size (docker run -it sends it): the runtime
            # makes the container's terminal that size, before any resize.
            spec["process"]["consoleSize"] = {"height": size[0], "width": size[1]}
        os.makedirs(bundle, exist_ok=True)
        try:
            os.unlink(os.path.join(bundle, "pid"))
        except FileNotFoundError:
            pass
        import json

        atomic.rewrite(os.path.join(bundle, "config.json"), json.dumps(spec).encode(), 0o600)

    async def _cleanup_after_run(self, rec, runtime, bundle: str, force: bool) -> None:
        """Forget the runtime's container, unmount, and leave the network.

        After an exit (``force`` false) the unmount runs while the runtime
        settles (forgets the stopped container): nothing runs in the rootfs
        any more, as the kernel ends every process of a pid namespace before
        its init can be reaped.  After a failed start the runtime's delete
        (which kills what it started) comes first."""
        unmounted = None if force else self._in_thread(self._unmount_and_clear, rec, bundle)
        await runtime.settled(rec.id)
        if force or os.path.exists(os.path.join(runtime.state_root, rec.id)):
            try:
                await runtime.delete(rec.id, True)
            except Exception:
                log.failure("runtime delete of {cid} failed", cid=rec.id)
        try:
            await (unmounted or self._in_thread(self._unmount_and_clear, rec, bundle))
        except Exception:
            log.failure("unmount of {cid} failed", cid=rec.id)
        if self.network is not None:
            try:
                await self.network.detach(rec.id)
            except Exception:
                log.failure("network cleanup of {cid} failed", cid=rec.id)

    def _unmount_and_clear(self, rec: ContainerRecord, bundle: str) -> None:
        if rec.mounts:
            self.volumes.unmount_all(rec.id, rec.mounts)
        if self.driver.is_mounted(rec.layer_id):
            self.driver.unmount(rec.layer_id)
        shutil.rmtree(bundle, ignore_errors=True)

    async def _on_exit(self, rec: ContainerRecord, runtime, bundle: str, code: int) -> None:
        # Under the container's lock, so a start right after the exit waits
        # for the unmount; the state says "running" until it says "exited",
        # so a wait(not-running) in between waits for this exit too.
        async with self._lock(rec.id):
            self._live.pop(rec.id, None)
            await self._cleanup_after_run(rec, runtime, bundle, force=False)
            rec.state = State(status="exited", exit_code=code, started_at=rec.state.started_at,
                              finished_at=rfc3339(self._reactor.seconds()),
                              oom_killed=runtime.oom_killed(rec.id))
            if not rec.host_config.get("AutoRemove"):
                # (--rm: its record is about to go; if the removal fails, a
                # restart finds it "running", dead, and records it exited.)
                self.records.save(rec, durable=False)
        self._emit("die", rec, exitCode=str(code))
        for d in self._exit_waiters.pop(rec.id, []):
            d.callback(code)
        if rec.host_config.get("AutoRemove"):
            await self._auto_remove(rec)

    async def _auto_remove(self, rec: ContainerRecord) -> None:
        if rec.id not in self._by_id or rec.id in self._removing or rec.id in self._live:
            return
        try:
            await self.remove(rec.id, force=False, volumes=True)
        except Exception:
            log.failure("auto-remove of {cid} failed", cid=rec.id)

    def when_exited(self, cid: str) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._exit_waiters.setdefault(cid, []).append(d)
        return d

    # -- stop, kill, restart, wait ------------------------------------------

    async def kill(self, ref: str, signal: str | int | None = None) -> None:
        rec = self.get(ref)
        sig = parse_signal(signal, signal_mod.SIGKILL)
        if rec.id not in self._live:
            raise errors.Conflict(f"Cannot kill container: {ref}: container {rec.id} is not "
                                  "running")
        runtime = self.runtime_of(rec)
        exited = self.when_exited(rec.id) if sig == signal_mod.SIGKILL else None
        paused = rec.state.paused
        await runtime.kill(rec.id, sig)
        if sig == signal_mod.SIGKILL and paused:
            await self._thaw(rec, runtime)
        self._emit("kill", rec, signal=str(sig))
        if exited is not None:
            await exited

    async def stop(self, ref: str, timeout: int | None = None,
                   signal: str | int | None = None) -> None:
        rec = self.get(ref)
        if rec.id not in self._live:
            raise errors.NotModified("container already stopped")
        sig = parse_signal(signal or rec.config.get("StopSignal"), signal_mod.SIGTERM)
        if timeout is None:
            timeout = rec.config.get("StopTimeout")
            if timeout is None:
                timeout = DEFAULT_STOP_TIMEOUT
        runtime = self.runtime_of(rec)
        exited = self.when_exited(rec.id)
        try:
            await runtime.kill(rec.id, sig)
        except Exception:
            pass  # it may have exited meanwhile; the wait below tells
        if timeout >= 0:
            timer = self._reactor.callLater(timeout, self._force_kill, rec, runtime)
            exited.addBoth(lambda r: (timer.cancel() if timer.active() else None, r)[1])
        await exited
        self._emit("stop", rec)

    def _force_kill(self, rec: ContainerRecord, runtime) -> None:
        if rec.id in self._live:
            d = runtime.kill(rec.id, signal_mod.SIGKILL)
            if rec.state.paused:
                d.addCallback(lambda _: defer.ensureDeferred(self._thaw(rec, runtime)))
            d.addErrback(lambda f: None)

    async def _thaw(self, rec: ContainerRecord, runtime) -> None:
        # A frozen process never acts on SIGKILL: thaw it so it dies (as Docker).
        try:
            await runtime.resume(rec.id)
        except errors.DockerError:
            pass

    async def pause(self, ref: str) -> None:
        """Freeze every process of the container (cgroup freezer)."""
        rec = self.get(ref)
        if rec.id not in self._live:
            raise errors.Conflict(f"Container {rec.id} is not running")
        if rec.state.paused:
            raise errors.Conflict(f"Container {rec.id} is already paused")
        runtime = self.runtime_of(rec)
        await runtime.pause(rec.id)
        rec.state.status, rec.state.paused = "paused", True
        self.records.save(rec)
        self._emit("pause", rec)

    def resize(self, ref: str, height: int, width: int) -> None:
        """``POST /containers/{id}/resize``: the window size of the container's
        terminal (nothing for a container without one)."""
        from dockerpy.runtime.console import resize

        rec = self.get(ref)
        proc = self._live.get(rec.id)
        if proc is None:
            raise errors.Conflict(f"Container {rec.id} is not running")
        try:
            resize(proc.transport, height, width)
        except OSError as e:
            raise errors.SystemError_(f"cannot resize container {rec.id}: {e}") from e

    async def unpause(self, ref: str) -> None:
        rec = self.get(ref)
        if rec.id not in self._live or not rec.state.paused:
            raise errors.Conflict(f"Container {rec.id} is not paused")
        runtime = self.runtime_of(rec)
        await runtime.resume(rec.id)
        rec.state.status, rec.state.paused = "running", False
        self.records.save(rec)
        self._emit("unpause", rec)

    async def restart(self, ref: str, timeout: int | None = None,
                      signal: str | int | None = None) -> None:
        rec = self.get(ref)
        self._restarting.add(rec.id)
        try:
            if rec.id in self._live:
                await self.stop(rec.id, timeout, signal)
            await self.start(rec.id)
        finally:
            self._restarting.discard(rec.id)
        self._emit("restart", rec)

    def wait(self, ref: str, condition: str = "not-running") -> defer.Deferred:
        """Deferred firing with the exit code, per Docker's wait conditions."""
        rec = self.get(ref)
        if condition not in ("not-running", "next-exit", "removed"):
            raise errors.InvalidParameter(f"invalid condition: {condition!r}")
        if condition == "removed":
            d: defer.Deferred = defer.Deferred()
            self._removed_waiters.setdefault(rec.id, []).append(d)
            return d
        if condition == "not-running" and not rec.state.running:
            return defer.succeed(rec.state.exit_code)
        return self.when_exited(rec.id)

    # -- remove, prune, rename ---------------------------------------------

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        rec = self.get(ref)
        if rec.id in self._removing:
            raise errors.Conflict(f"removal of container {ref} is already in progress")
        if rec.id in self._live:
            if not force:
                raise errors.Conflict(
                    f'cannot remove container "/{rec.name}": container is running: stop the '
                    "container before removing or force remove")
            self._removing.add(rec.id)
            try:
                await self.kill(rec.id, signal_mod.SIGKILL)
            except errors.Conflict:
                pass
        self._removing.add(rec.id)
        try:
            for att in self._pending_attach.pop(rec.id, []):
                att.end()
            self._init_users[rec.init_layer_id] -= 1
            doomed = await self._in_thread(self._remove_files, rec)
        finally:
            self._removing.discard(rec.id)
        if rec.mounts:
            await self.volumes.release(rec.id, rec.mounts, remove_anonymous=volumes)
        self._by_id.pop(rec.id, None)
        if self._names.get(rec.name) == rec.id:
            del self._names[rec.name]
        self._busy.pop(rec.id, None)
        await self.sweep_init_layers()
        self._emit("destroy", rec)
        for d in self._removed_waiters.pop(rec.id, []):
            d.callback(rec.state.exit_code)
        for d in self._exit_waiters.pop(rec.id, []):
            d.callback(rec.state.exit_code)
        # The files themselves go after the client heard that the container
        # is: they were renamed out of the way, so nothing can see them.
        self._in_thread(_delete_trees, doomed).addErrback(
            lambda f: log.failure("deleting the files of {cid}", f, cid=rec.id))

    def _remove_files(self, rec: ContainerRecord) -> list[str]:
        """:return: the renamed-away directories still to delete."""
        doomed: list[str] = []
        if self.driver.is_mounted(rec.layer_id):
            self.driver.unmount(rec.layer_id)
        self.driver.remove(rec.layer_id, later=doomed)
        self.records.delete(rec.id, later=doomed)
        self.images.release_layer(rec.id)
        return doomed

    async def sweep_init_layers(self) -> None:
        """Remove the init layers of images that are gone, once no container
        (made or being made) sits on them.  An unused init layer of an image
        that still exists is kept for its next container: making one costs
        more than the rest of a create.  Call after images are removed."""
        tops = {(self.images.top_layer(i) or "0" * 64) + "-init" for i in self.images.images()}
        doomed = [i for i, n in self._init_users.items() if n <= 0 and i not in tops]
        if doomed:
            await self._in_thread(self._remove_unused_init_layers, doomed)

    def _remove_unused_init_layers(self, init_layer_ids: list[str]) -> None:
        # The counts are raised on the reactor before any creation's thread
        # work, so re-checking under the lock keeps a layer a creation in
        # flight is about to use.
        with self._init_lock:
            for init_layer_id in init_layer_ids:
                if self._init_users[init_layer_id] <= 0:
                    del self._init_users[init_layer_id]
                    self.driver.remove(init_layer_id)

    async def prune(self, filters: dict[str, list[str]]) -> dict:
        from dockerpy.containers.filters import matches_prune

        deleted, reclaimed = [], 0
        now = self._reactor.seconds()
        for rec in list(self._by_id.values()):
            if rec.id in self._live or not matches_prune(rec, filters, now):
                continue
            try:
                size = await self._in_thread(self.driver.size, rec.layer_id)
                await self.remove(rec.id)
            except errors.DockerError:
                continue
            deleted.append(rec.id)
            reclaimed += size
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    def rename(self, ref: str, new_name: str) -> None:
        rec = self.get(ref)
        new_name = names.validate(new_name)
        if new_name == rec.name:
            raise errors.InvalidParameter("Renaming a container with the same name as its "
                                          "current name")
        if new_name in self._names:
            raise errors.Conflict(
                f'Conflict. The container name "/{new_name}" is already in use by container '
                f'"{self._names[new_name]}". You have to remove (or rename) that container to '
                "be able to reuse that name.")
        old = rec.name
        rec.name = new_name
        self._names[new_name] = rec.id
        del self._names[old]
        self.records.save(rec)
        sandbox = self.network.sandbox(rec.id) if self.network is not None else None
        if sandbox is not None:
            sandbox.name = new_name  # what the embedded DNS answers to
        self._emit("rename", rec, oldName="/" + old)

    # -- networks -----------------------------------------------------------

    async def connect_network(self, ref: str, net_ref: str, cfg: dict | None) -> None:
        """``POST /networks/{id}/connect``: a running container gets an
        endpoint now, a stopped one when it next starts."""
        from dockerpy.containers.networking import endpoint_settings, exclusive_mode_error

        rec = self.get(ref)
        net = self.network.check_endpoint_config(net_ref, cfg or {})
        mode = rec.host_config.get("NetworkMode") or "default"
        if mode in ("host", "none") or mode.startswith("container:") or \
                net.name in ("host", "none"):
            raise errors.Forbidden(exclusive_mode_error(
                "host" if "host" in (mode, net.name) else "none"))
        if net.name in rec.networks:
            raise errors.Forbidden(f"endpoint with name {rec.name} already exists in network "
                                   f"{net.name}")
        async with self._lock(rec.id):
            if rec.id in self._live:
                await self.network.connect(rec.id, net, cfg or {})
            rec.networks[net.name] = endpoint_settings(cfg or {}, net.id)
            self.records.save(rec)

    async def disconnect_network(self, ref: str, net_ref: str, force: bool = False) -> None:
        """``POST /networks/{id}/disconnect``."""
        rec = self.get(ref)
        net = self.network.find(net_ref)
        if net.name not in rec.networks:
            if force:
                return
            raise errors.Forbidden(f"container {rec.id} is not connected to network "
                                   f"{net.name}")
        async with self._lock(rec.id):
            if rec.id in self._live:
                await self.network.disconnect(rec.id, net)
            del rec.networks[net.name]
            self.records.save(rec)

    def network_users(self, net) -> list[ContainerRecord]:
        """Containers configured to use ``net`` (running or not)."""
        return [r for r in self._by_id.values()
                if (r.networks.get(net.name) or {}).get("NetworkID") == net.id]

    # -- inspection of the file system and processes ----------------------

    async def top(self, ref: str, ps_args: str | None) -> dict:
        from dockerpy.containers.top import ps_table

        rec = self.get(ref)
        if rec.id not in self._live:
            raise errors.Conflict(f"Container {rec.id} is not running")
        runtime = self.runtime_of(rec)
        pids = await runtime.pids(rec.id)
        return await ps_table(self._reactor, pids, ps_args or "-ef")

    async def changes(self, ref: str) -> list[dict]:
        rec = self.get(ref)
        changes = await self._in_thread(self.driver.changes, rec.layer_id)
        return [{"Path": p, "Kind": k} for p, k in changes]

    async def with_rootfs(self, ref: str, fn: Callable[[str], Any]) -> Any:
        """Run ``fn(rootfs)`` in a thread with the container's file system mounted."""
        rec = self.get(ref)

        def work():
            root = self.driver.mount(rec.layer_id)
            try:
                return fn(root)
            finally:
                self.driver.unmount(rec.layer_id)

        return await self._in_thread(work)

    async def size(self, rec: ContainerRecord) -> int:
        return await self._in_thread(self.driver.size, rec.layer_id)

    # -- daemon start and stop --------------------------------------------

    async def restore(self) -> None:
        """Load records; containers that were running when the daemon died are
        cleaned up and shown as exited, with the reason in State.Error."""
        recs = await self._in_thread(self.records.load_all)
        for rec in recs:
            self._by_id[rec.id] = rec
            self._names[rec.name] = rec.id
            self._init_users[rec.init_layer_id] += 1
            if rec.mounts and self.volumes is not None:
                self.volumes.add_references(rec.id, rec.mounts)
            if rec.state.running or rec.state.status in ("running", "paused", "restarting"):
                runtime = self.runtimes.get(rec.host_config.get("Runtime")) or \
                    self.runtimes[self.default_runtime]
                bundle = os.path.join(self.exec_root, "containers", rec.id)
                await self._cleanup_after_run(rec, runtime, bundle, force=True)
                rec.state = State(status="exited", exit_code=255,
                                  error="the daemon stopped while the container was running",
                                  started_at=rec.state.started_at,
                                  finished_at=rfc3339(self._reactor.seconds()))
                self.records.save(rec)
        # Unused init layers kept for their images' next containers.
        for image in self.images.images():
            init_layer_id = (self.images.top_layer(image) or "0" * 64) + "-init"
            if init_layer_id not in self._init_users and self.driver.exists(init_layer_id):
                self._init_users[init_layer_id] = 0
        for rec in list(self._by_id.values()):
            if rec.host_config.get("AutoRemove") and rec.state.status == "exited":
                try:
                    await self.remove(rec.id)
                except Exception:
                    log.failure("auto-remove of {cid} at start-up failed", cid=rec.id)

    async def shutdown(self, timeout: int = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop every running container (stop signal, then SIGKILL after timeout)."""
        running = list(self._live)
        results = [defer.ensureDeferred(self.stop(cid, min(
            timeout, self._by_id[cid].config.get("StopTimeout") or timeout)))
            for cid in running]
        await defer.DeferredList(results, consumeErrors=True)


def _delete_trees(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def _start_error_code(message: str) -> int:
    if "executable file not found" in message or "no such file or directory" in message:
        return 127
    if "permission denied" in message:
        return 126
    return 128


def _error_text(e: BaseException) -> str:
    if isinstance(e, errors.DockerError):
        return e.message
    return str(e) or e.__class__.__name__


def _ensure_workdir(rootfs: str, workdir: str, uid: int, gid: int) -> None:
    """Create the working directory inside the root, as Docker does, owned by the user."""
    from dockerpy.archive import resolve_in_root

    path = resolve_in_root(rootfs, workdir)
    if not os.path.isdir(path):
        os.makedirs(path, mode=0o755, exist_ok=True)
        os.chown(path, uid, gid)


def merge_config(body: dict, image_config: dict) -> dict:
    """The container's Config: the request's fields over the image's defaults,
    with Docker's rules for Cmd/Entrypoint, Env and Labels."""
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    for key in ("Cmd", "Entrypoint"):
        value = config.get(key)
        if isinstance(value, str):
            config[key] = [value] if key == "Entrypoint" else ["/bin/sh", "-c", value]
        elif value is not None and not (isinstance(value, list)
                                        and all(isinstance(v, str) for v in value)):
            raise errors.InvalidParameter(f"invalid JSON: {key} must be a list of strings")
    env = config.get("Env") or []
    if not isinstance(env, list) or not all(isinstance(e, str) for e in env):
        raise errors.InvalidParameter("invalid JSON: Env must be a list of strings")
    labels = config.get("Labels") or {}
    if not isinstance(labels, dict):
        raise errors.InvalidParameter("invalid JSON: Labels must be an object")
    # Entrypoint given (even empty) replaces the image's and drops its Cmd.
    if config.get("Entrypoint") is not None:
        if config.get("Cmd") is None:
            config["Cmd"] = []
        if config["Entrypoint"] == [""]:
            config["Entrypoint"] = []
    else:
        config["Entrypoint"] = image_config.get("Entrypoint")
        if not config.get("Cmd"):
            config["Cmd"] = image_config.get("Cmd")
    merged_env: dict[str, str] = {}
    for entry in (image_config.get("Env") or [DEFAULT_PATH]) + env:
        merged_env[entry.split("=", 1)[0]] = entry
    config["Env"] = list(merged_env.values())
    merged_labels = dict(image_config.get("Labels") or {})
    merged_labels.update(labels)
    config["Labels"] = merged_labels
    for key in ("WorkingDir", "User", "StopSignal"):
        if not config.get(key) and image_config.get(key):
            config[key] = image_config[key]
    if not config.get("Volumes") and image_config.get("Volumes"):
        config["Volumes"] = image_config["Volumes"]
    if not config.get("ExposedPorts") and image_config.get("ExposedPorts"):
        config["ExposedPorts"] = image_config["ExposedPorts"]
    for key, default in (("AttachStdin", False), ("AttachStdout", False),
                         ("AttachStderr", False), ("Tty", False), ("OpenStdin", False),
                         ("StdinOnce", False), ("Domainname", ""), ("User", ""),
                         ("WorkingDir", ""), ("OnBuild", None)):
        config.setdefault(key, default)
        if config[key] is None and default is not None:
            config[key] = default
    return config
