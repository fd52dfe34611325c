# -*- test-case-name: dockerpy.test.test_daemon -*-
"""The engine as a Twisted service: builds the parts at start-up (storage
driver, image store, runtimes, containers), recovers from a crash, and
stops containers at shutdown.  The API service starts listening only once
the engine is ready, so no request ever sees a half-started daemon.
"""

from __future__ import annotations

import os
import platform
import time

from twisted.application import service
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from dockerpy.config import DaemonConfig
from dockerpy.logfilter import engine_log

log = Logger(observer=engine_log)


def _return_startup_memory() -> None:
    """Start-up (imports, runtime probes, loading records) leaves freed heap
    that glibc keeps; hand it back so an idle daemon stays small."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc


class DaemonService(service.Service):
    def __init__(self, reactor, conf: DaemonConfig):
        from dockerpy.logfilter import set_level

        self.reactor = reactor
        self.conf = conf
        set_level(conf.log_level)
        self.started_at = time.time()
        self._ready: list[defer.Deferred] = []
        self.is_ready = False
        self.driver = None
        self.images = None
        self.containers = None
        self.execs = None
        from dockerpy.events import EventBus

        self.events = EventBus(reactor)
        self.runtimes: dict = {}
        self.default_runtime = ""
        self.network = None

    # -- threads ----------------------------------------------------------

    def in_thread(self, f, *args, **kwargs) -> defer.Deferred:
        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), f, *args, **kwargs)

    def when_ready(self) -> defer.Deferred:
        if self.is_ready:
            return defer.succeed(self)
        d: defer.Deferred = defer.Deferred()
        self._ready.append(d)
        return d

    # -- lifecycle ----------------------------------------------------------

    def startService(self) -> None:  # noqa: N802
        super().startService()
        self.reactor.suggestThreadPoolSize(8)
        d = defer.ensureDeferred(self._start())

        def failed(f):
            log.failure("dockerpy failed to start", f)
            for w in self._ready:
                w.errback(f)
            self._ready = []
            if self.reactor.running:
                self.reactor.stop()

        d.addErrback(failed)

    async def _start(self) -> None:
        from dockerpy.containers.exec import ExecService
        from dockerpy.containers.record import RecordStore
        from dockerpy.containers.service import ContainerService
        from dockerpy.images.store import ImageStore
        from dockerpy.runtime.cgroups import cgroup_version
        from dockerpy.runtime.oci import become_subreaper, choose_default
        from dockerpy.storage import make_driver

        conf = self.conf
        # Containers then become our children once the runtime has started
        # them and exited (run --detach): no runtime process per container.
        if become_subreaper():
            from dockerpy.runtime import orphans

            orphans.install()
        else:
            log.warn("cannot become a child subreaper: each container keeps its runtime "
                     "process")
        for path in (conf.data_root, conf.exec_root):
            os.makedirs(path, mode=0o711, exist_ok=True)
        self.driver = await self.in_thread(make_driver, conf.storage_driver, conf.data_root)
        # Mounts left by a daemon that died are stale: nothing runs on them now.
        await self.in_thread(self.driver.cleanup)
        self.images = await self.in_thread(
            ImageStore, os.path.join(conf.data_root, "image"), self.driver)
        self.default_runtime, self.runtimes = await choose_default(
            self.reactor, conf.exec_root, conf.default_runtime)
        self.cgroup_version = cgroup_version()
        self.containers = ContainerService(
            self.reactor, self.in_thread, RecordStore(os.path.join(conf.data_root, "containers")),
            self.images, self.driver, self.runtimes, self.default_runtime, conf.exec_root,
            conf.cgroup_parent_path, events=self.events)
        from dockerpy.volumes.service import VolumeService

        self.volumes = VolumeService(
            self.in_thread, os.path.join(conf.data_root, "volumes"), clock=self.reactor.seconds,
            publish=lambda *event: self.reactor.callFromThread(self.events.publish, *event))
        # Volume mounts left by a daemon that died are stale, like layer mounts.
        await self.in_thread(self.volumes.cleanup)
        self.containers.volumes = self.volumes
        from dockerpy.network.service import NetworkService

        # Before restore: restore's cleanup of containers that were running
        # detaches them, and the network's start-up sweep removes what a
        # dead daemon left (netns, veths, its nft table).
        self.network = NetworkService(self.reactor, conf.data_root, conf.exec_root,
                                      conf.daemon_key, conf.bridge, conf.bip, conf.iptables,
                                      publish=self.events.publish)
        await self.network.start()
        self.containers.network = self.network
        self.execs = ExecService(self.reactor, self.in_thread, self.containers, self.events)
        await self.containers.restore()
        _return_startup_memory()
        self.is_ready = True
        log.info("dockerpy ready: storage {driver}, runtime {runtime}",
                 driver=conf.storage_driver, runtime=self.default_runtime)
        waiters, self._ready = self._ready, []
        for w in waiters:
            w.callback(self)

    def stopService(self):  # noqa: N802
        super().stopService()
        if self.containers is None:
            return None
        d = defer.ensureDeferred(self.containers.shutdown())

        def unmount(_):
            d = self.in_thread(self.driver.cleanup)
            if getattr(self, "volumes", None) is not None:
                d.addBoth(lambda _: self.in_thread(self.volumes.cleanup))
            return d

        def remove_cgroups(_):
            from dockerpy.runtime.cgroups import remove_cgroup_parent

            d = self.in_thread(remove_cgroup_parent, self.conf.cgroup_parent_path)
            d.addCallback(lambda busy: busy and log.warn(
                "cgroups still in use at shutdown: {busy}", busy=busy))
            return d

        def close_registry(_):
            from dockerpy.api.registry import close_registry_service

            return close_registry_service(self)

        def stop_network(_):
            if self.network is not None:
                return defer.ensureDeferred(self.network.stop())

        d.addBoth(stop_network)
        d.addBoth(unmount)
        d.addBoth(remove_cgroups)
        d.addBoth(close_registry)
        d.addErrback(lambda f: log.failure("shutdown cleanup failed", f))
        return d

    # -- API --------------------------------------------------------------

    def api_service(self, listeners) -> service.Service:
        return APIService(self, listeners)

    def host_info(self) -> dict:
        uname = platform.uname()
        return {"kernel": uname.release, "arch": uname.machine, "hostname": uname.node}


class APIService(service.Service):
    """Listens on every configured address once the daemon is ready."""

    def __init__(self, daemon: DaemonService, listeners):
        self.daemon = daemon
        self.listeners = listeners
        self.ports: list = []

    def startService(self) -> None:  # noqa: N802
        super().startService()
        from dockerpy.api.routes import make_engine_site

        site = make_engine_site(self.daemon)

        async def listen(_):
            import grp

            for host, endpoint, path, tls in self.listeners:
                factory = site
                if tls is not None:
                    from dockerpy.api.tls import tls_server_factory

                    factory = tls_server_factory(tls, site)
                port = await endpoint.listen(factory)
                self.ports.append(port)
                if path:
                    try:
                        os.chown(path, 0, grp.getgrnam(self.daemon.conf.group).gr_gid)
                    except (KeyError, OSError):
                        pass
                log.info("API listening on {host}", host=host)

        d = self.daemon.when_ready()
        d.addCallback(lambda r: defer.ensureDeferred(listen(r)))

        def failed(f):
            log.failure("cannot listen", f)
            if self.daemon.reactor.running:
                self.daemon.reactor.stop()

        d.addErrback(failed)

    def stopService(self):  # noqa: N802
        super().stopService()
        ds = [defer.maybeDeferred(p.stopListening) for p in self.ports]
        self.ports = []
        return defer.DeferredList(ds)
