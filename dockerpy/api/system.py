# -*- test-case-name: dockerpy.test.test_api_system -*-
"""System routes: ``/_ping``, ``/version``, ``/info``, ``/system/df``."""

from __future__ import annotations

import os
import platform
import socket

from klein import Klein

import dockerpy
from dockerpy.api.app import MAX_API_VERSION, MIN_API_VERSION, version_string, write_json

_PING_HEADERS = {
    b"Api-Version": version_string(MAX_API_VERSION).encode(),
    b"Ostype": b"linux",
    b"Builder-Version": b"1",
    b"Docker-Experimental": b"false",
    b"Swarm": b"inactive",
    b"Cache-Control": b"no-cache, no-store, must-revalidate",
    b"Pragma": b"no-cache",
}


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _os_release() -> tuple[str, str]:
    name, version = "Linux", ""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                key, _, value = line.strip().partition("=")
                if key == "PRETTY_NAME":
                    name = value.strip('"')
                elif key == "VERSION_ID":
                    version = value.strip('"')
    except OSError:
        pass
    return name, version


def _mem_total() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def version_body() -> dict:
    uname = platform.uname()
    details = {"ApiVersion": version_string(MAX_API_VERSION),
               "MinAPIVersion": version_string(MIN_API_VERSION),
               "GitCommit": "", "GoVersion": "python" + platform.python_version(),
               "Os": "linux", "Arch": _arch(), "KernelVersion": uname.release,
               "Experimental": "false", "BuildTime": ""}
    return {
        "Platform": {"Name": "dockerpy"},
        "Components": [{"Name": "Engine", "Version": dockerpy.__version__, "Details": details}],
        "Version": dockerpy.__version__,
        "ApiVersion": details["ApiVersion"],
        "MinAPIVersion": details["MinAPIVersion"],
        "GitCommit": "",
        "GoVersion": details["GoVersion"],
        "Os": "linux",
        "Arch": _arch(),
        "KernelVersion": uname.release,
        "BuildTime": "",
    }


def install(app: Klein, daemon=None) -> None:
    @app.route("/_ping", methods=["GET", "HEAD"])
    def ping(request):
        for name, value in _PING_HEADERS.items():
            request.setHeader(name, value)
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/version", methods=["GET"])
    def version(request):
        return write_json(request, version_body())

    @app.route("/info", methods=["GET"])
    def info(request):
        return write_json(request, info_body(daemon))

    @app.route("/system/df", methods=["GET"])
    async def system_df(request):
        return write_json(request, await disk_usage(daemon, request))


async def disk_usage(daemon, request) -> dict:
    """``GET /system/df``: what images, containers (and, later, volumes and
    the build cache) use on disk, with Docker's shared-size accounting."""
    from collections import Counter

    from dockerpy.api.containers import list_view

    store, containers = daemon.images, daemon.containers
    images = store.images()
    layer_users = Counter(chain for image in images for chain in set(image.layers))
    layer_size = {chain: store.layer(chain).size for chain in layer_users}
    users = Counter(rec.image for rec in containers.all())
    image_list = []
    for image in images:
        summary = store.summary(image)
        summary["Containers"] = users.get(image.id, 0)
        summary["SharedSize"] = sum(layer_size[c] for c in set(image.layers)
                                    if layer_users[c] > 1)
        summary.pop("VirtualSize", None)
        image_list.append(summary)
    now = daemon.reactor.seconds()
    container_list = []
    for rec in containers.all():
        container_list.append(list_view(rec, daemon, now, await containers.size(rec)))
    from dockerpy.api.build import build_cache_usage, cache_of
    from dockerpy.api.images import _in_use

    build_cache = await daemon.in_thread(build_cache_usage, cache_of(daemon), store,
                                         _in_use(daemon))
    return {
        "LayersSize": sum(layer_size.values()),
        "Images": image_list,
        "Containers": container_list,
        "Volumes": await daemon.volumes.usage(),
        "BuildCache": build_cache,
        "BuilderSize": sum(b["Size"] for b in build_cache if not b["Shared"]),
    }


def info_body(daemon) -> dict:
    from dockerpy.runtime.cgroups import swap_accounting
    from dockerpy.timeutil import rfc3339
    import time

    containers = daemon.containers.all()
    running = sum(1 for c in containers if c.state.status == "running")
    paused = sum(1 for c in containers if c.state.status == "paused")
    os_name, os_version = _os_release()
    conf = daemon.conf
    return {
        "ID": daemon.conf.daemon_key,
        "Containers": len(containers),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(containers) - running - paused,
        "Images": len(daemon.images.images()),
        "Driver": daemon.driver.name,
        "DriverStatus": daemon.driver.status(),
        "Plugins": {"Volume": ["local"], "Network": ["host", "null"],
                    "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True, "SwapLimit": swap_accounting(), "CpuCfsPeriod": True,
        "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "BridgeNfIptables": False, "BridgeNfIp6tables": False, "Debug":
            conf.log_level == "debug",
        "NFd": len(os.listdir("/proc/self/fd")),
        "OomKillDisable": False, "NGoroutines": 1,
        "SystemTime": rfc3339(time.time()),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": daemon.cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": platform.release(),
        "OperatingSystem": os_name,
        "OSVersion": os_version,
        "OSType": "linux",
        "Architecture": platform.machine(),
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": None,
                           "AllowNondistributableArtifactsHostnames": None,
                           "InsecureRegistryCIDRs": ["127.0.0.0/8"] + [
                               r for r in conf.insecure_registries if "/" in r],
                           "IndexConfigs": {},
                           "Mirrors": None},
        "NCPU": os.cpu_count() or 1,
        "MemTotal": _mem_total(),
        "GenericResources": None,
        "DockerRootDir": conf.data_root,
        "HttpProxy": os.environ.get("HTTP_PROXY", ""),
        "HttpsProxy": os.environ.get("HTTPS_PROXY", ""),
        "NoProxy": os.environ.get("NO_PROXY", ""),
        "Name": socket.gethostname(),
        "Labels": [],
        "ExperimentalBuild": False,
        "ServerVersion": dockerpy.__version__,
        "Runtimes": {name: {"path": rt.path} for name, rt in daemon.runtimes.items()},
        "DefaultRuntime": daemon.default_runtime,
        "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                  "ControlAvailable": False, "Error": "", "RemoteManagers": None},
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": ["name=seccomp,profile=builtin"]
        + (["name=cgroupns"] if daemon.cgroup_version == "2" else []),
        "Warnings": None,
    }
