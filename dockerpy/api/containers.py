# -*- test-case-name: dockerpy.test.test_api_containers -*-
"""Container routes (``/containers/...``) and the JSON shapes Docker sends
for containers: inspect, list, wait, logs and the attach stream."""

from __future__ import annotations

import base64
import json
import os
import shlex
import tempfile

from klein import Klein
from twisted.internet import defer
from twisted.protocols.basic import FileSender

from dockerpy import errors
from dockerpy.api import stdcopy
from dockerpy.api.app import (api_version, parse_filters, query, query_bool, query_int,
                              read_json, write_json)
from dockerpy.api.hijack import AttachStream, hijack_request
from dockerpy.containers.exec import exec_ids
from dockerpy.containers.filters import matches_list
from dockerpy.containers.logs import read_log
# The client's formatting module is stdlib-only and checked against the docker CLI.
from dockerpy.client.format import human_duration
from dockerpy.timeutil import parse_rfc3339, parse_timestamp_arg
from dockerpy.volumes.mounts import inspect_view as mount_points_view

RAW_STREAM = b"application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = b"application/vnd.docker.multiplexed-stream"

_HOST_CONFIG_DEFAULTS = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no",
                                                                    "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [0, 0],
    "CapAdd": None, "CapDrop": None, "CgroupnsMode": "host", "Dns": [], "DnsOptions": [],
    "DnsSearch": [], "ExtraHosts": None, "GroupAdd": None, "IpcMode": "private", "Cgroup": "",
    "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": False,
    "PublishAllPorts": False, "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "",
    "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc", "Isolation": "",
    "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuPeriod": 0, "CpuQuota": 0,
    "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0, "CpusetCpus": "", "CpusetMems": "",
    "Devices": [], "DeviceCgroupRules": None, "DeviceRequests": None, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None,
    "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0,
    "IOMaximumBandwidth": 0, "MaskedPaths": None, "ReadonlyPaths": None,
}


def _status_text(rec, now: float) -> str:
    st = rec.state
    if st.status == "running":
        return "Up " + human_duration(now - parse_rfc3339(st.started_at))
    if st.status == "paused":
        return "Up " + human_duration(now - parse_rfc3339(st.started_at)) + " (Paused)"
    if st.status == "exited":
        if parse_rfc3339(st.finished_at) == 0:
            return "Created" if not rec.has_been_started else f"Exited ({st.exit_code})"
        return (f"Exited ({st.exit_code}) "
                f"{human_duration(now - parse_rfc3339(st.finished_at))} ago")
    if st.status == "created":
        return "Created"
    if st.status == "removing":
        return "Removal In Progress"
    return st.status.capitalize()


def _network_settings(rec, daemon=None) -> dict:
    if getattr(daemon, "network", None) is not None:
        return daemon.network.container_networks(rec.id, rec.host_config, rec.networks)
    mode = rec.host_config.get("NetworkMode") or "default"
    networks = {}
    if mode in ("host", "none"):
        networks[mode] = {
            "IPAMConfig": None, "Links": None, "Aliases": None, "MacAddress": "",
            "NetworkID": mode, "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DriverOpts": None, "DNSNames": None}
    return networks


def inspect_view(rec, daemon, version: tuple[int, int], size: int | None = None) -> dict:
    st = rec.state
    host_config = dict(_HOST_CONFIG_DEFAULTS)
    host_config.update(rec.host_config)
    cdir = daemon.containers.records.dir(rec.id)
    out = {
        "Id": rec.id,
        "Created": rec.created,
        "Path": rec.path,
        "Args": rec.args,
        "State": {
            "Status": st.status, "Running": st.running, "Paused": st.paused,
            "Restarting": st.restarting, "OOMKilled": st.oom_killed, "Dead": st.dead,
            "Pid": st.pid, "ExitCode": st.exit_code, "Error": st.error,
            "StartedAt": st.started_at, "FinishedAt": st.finished_at,
        },
        "Image": rec.image,
        "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
        "HostnamePath": os.path.join(cdir, "hostname"),
        "HostsPath": os.path.join(cdir, "hosts"),
        "LogPath": daemon.containers.records.log_path(rec.id),
        "Name": "/" + rec.name,
        "RestartCount": rec.restart_count,
        "Driver": rec.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids(getattr(daemon, "execs", None), rec.id),
        "HostConfig": host_config,
        "GraphDriver": {"Name": rec.driver, "Data": _graph_data(daemon, rec)},
        "Mounts": mount_points_view(rec.mounts),
        "Config": rec.config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": False,
            "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "Ports": {},
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
            "Networks": _network_settings(rec),
        },
    }
    if getattr(daemon, "network", None) is not None:
        out["NetworkSettings"].update(
            daemon.network.settings_view(rec.id, rec.config, rec.host_config, rec.networks))
    if size is not None:
        out["SizeRw"] = size
        out["SizeRootFs"] = _size_root_fs(daemon, rec, size)
    return out


def _size_root_fs(daemon, rec, size_rw: int) -> int:
    try:
        return size_rw + daemon.images.get(rec.image).size
    except errors.NotFound:  # the image was removed with --force
        return size_rw


def _graph_data(daemon, rec) -> dict | None:
    try:
        return daemon.driver.metadata(rec.layer_id)
    except Exception:
        return None


def _command_text(rec) -> str:
    return " ".join(shlex.quote(a) if " " in a or not a else a for a in [rec.path] + rec.args)


def list_view(rec, daemon, now: float, size: int | None) -> dict:
    mode = rec.host_config.get("NetworkMode") or "default"
    out = {
        "Id": rec.id,
        "Names": ["/" + rec.name],
        "Image": rec.image_name,
        "ImageID": rec.image,
        "Command": _command_text(rec),
        "Created": int(parse_rfc3339(rec.created)),
        "Ports": (daemon.network.list_ports(rec.id, rec.config)
                  if getattr(daemon, "network", None) is not None else []),
        "Labels": rec.config.get("Labels") or {},
        "State": rec.state.status,
        "Status": _status_text(rec, now),
        "HostConfig": {"NetworkMode": mode},
        "NetworkSettings": {"Networks": _network_settings(rec, daemon)},
        "Mounts": mount_points_view(rec.mounts),
    }
    if size is not None:
        out["SizeRw"] = size
        out["SizeRootFs"] = _size_root_fs(daemon, rec, size)
    return out


def _stream_type(rec, version) -> bytes:
    if rec.config.get("Tty") or version < (1, 42):
        return RAW_STREAM
    return MULTIPLEXED_STREAM


def _log_entries(rec, daemon, request, now: float):
    stdout = query_bool(request, "stdout")
    stderr = query_bool(request, "stderr")
    since = query(request, "since")
    until = query(request, "until")
    tail = query(request, "tail", "all")
    if tail in ("all", "", None):
        tail_n = None
    else:
        try:
            tail_n = int(tail)
        except ValueError:
            raise errors.InvalidParameter(f"invalid value for tail: {tail}") from None
        if tail_n < 0:
            tail_n = None
    return stdout, stderr, read_log(
        daemon.containers.records.log_path(rec.id), stdout, stderr,
        parse_timestamp_arg(since, now) if since and since != "0" else 0.0,
        parse_timestamp_arg(until, now) if until and until != "0" else None, tail_n)


def install(app: Klein, daemon=None) -> None:
    svc = lambda: daemon.containers  # noqa: E731 (built after start-up)

    @app.route("/containers/create", methods=["POST"])
    async def post_containers_create(request):
        body = read_json(request, required=True)
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: container config must be an object")
        rec = await svc().create(body, query(request, "name"))
        return write_json(request, {"Id": rec.id, "Warnings": []}, 201)

    @app.route("/containers/json", methods=["GET"])
    async def get_containers_json(request):
        show_all = query_bool(request, "all")
        limit = query_int(request, "limit", -1)
        want_size = query_bool(request, "size")
        filters = parse_filters(query(request, "filters"))
        now = daemon.reactor.seconds()
        images = daemon.images

        def image_matches(ref: str, image_id: str) -> bool:
            try:
                return images.resolve(ref).id == image_id
            except errors.NotFound:
                return False

        recs = [r for r in svc().all() if matches_list(r, filters, image_matches)]
        # Docker: before/since name containers and imply --all.
        if "before" in filters:
            pivot = svc().get(filters["before"][-1])
            recs = [r for r in recs if r.created < pivot.created]
        if "since" in filters:
            pivot = svc().get(filters["since"][-1])
            recs = [r for r in recs if r.created > pivot.created]
        if not show_all and limit in (-1, 0, None) and not {"status", "exited", "before",
                                                             "since"} & set(filters):
            recs = [r for r in recs if r.state.status in ("running", "paused", "restarting")]
        if limit and limit > 0:
            recs = recs[:limit]
        out = []
        for r in recs:
            size = await svc().size(r) if want_size else None
            out.append(list_view(r, daemon, now, size))
        return write_json(request, out)

    @app.route("/containers/<string:cid>/json", methods=["GET"])
    async def get_containers_inspect(request, cid):
        rec = svc().get(cid)
        size = await svc().size(rec) if query_bool(request, "size") else None
        return write_json(request, inspect_view(rec, daemon, api_version(request), size))

    @app.route("/containers/<string:cid>/start", methods=["POST"])
    async def post_containers_start(request, cid):
        return await _no_content(request, svc().start(cid))

    @app.route("/containers/<string:cid>/stop", methods=["POST"])
    async def post_containers_stop(request, cid):
        return await _no_content(request, svc().stop(cid, query_int(request, "t"),
                                                    query(request, "signal")))

    @app.route("/containers/<string:cid>/restart", methods=["POST"])
    async def post_containers_restart(request, cid):
        await svc().restart(cid, query_int(request, "t"), query(request, "signal"))
        request.setResponseCode(204)
        return b""

    @app.route("/containers/<string:cid>/kill", methods=["POST"])
    async def post_containers_kill(request, cid):
        await svc().kill(cid, query(request, "signal"))
        request.setResponseCode(204)
        return b""

    @app.route("/containers/<string:cid>/wait", methods=["POST"])
    async def post_containers_wait(request, cid):
        condition = query(request, "condition") or "not-running"
        d = svc().wait(cid, condition)
        # The docker CLI sends wait before start and needs the headers now.
        request.setResponseCode(200)
        request.setHeader(b"content-type", b"application/json")
        request.write(b"")
        code = await d
        return json.dumps({"StatusCode": code}).encode() + b"\n"

    @app.route("/containers/<string:cid>", methods=["DELETE"])
    async def delete_containers(request, cid):
        await svc().remove(cid, query_bool(request, "force"), query_bool(request, "v"))
        request.setResponseCode(204)
        return b""

    @app.route("/containers/prune", methods=["POST"])
    async def post_containers_prune(request):
        result = await svc().prune(parse_filters(query(request, "filters")))
        return write_json(request, result)

    @app.route("/containers/<string:cid>/rename", methods=["POST"])
    def post_containers_rename(request, cid):
        name = query(request, "name")
        if not name:
            raise errors.InvalidParameter("Neither old nor new names may be empty")
        svc().rename(cid, name)
        request.setResponseCode(204)
        return b""

    @app.route("/containers/<string:cid>/top", methods=["GET"])
    async def get_containers_top(request, cid):
        return write_json(request, await svc().top(cid, query(request, "ps_args")))

    @app.route("/containers/<string:cid>/changes", methods=["GET"])
    async def get_containers_changes(request, cid):
        changes = await svc().changes(cid)
        return write_json(request, changes or None)

    @app.route("/containers/<string:cid>/pause", methods=["POST"])
    async def post_containers_pause(request, cid):
        await svc().pause(cid)
        request.setResponseCode(204)
        return b""

    @app.route("/containers/<string:cid>/unpause", methods=["POST"])
    async def post_containers_unpause(request, cid):
        await svc().unpause(cid)
        request.setResponseCode(204)
        return b""

    @app.route("/containers/<string:cid>/resize", methods=["POST"])
    def post_containers_resize(request, cid):
        height, width = query_int(request, "h", 0), query_int(request, "w", 0)
        if height is None or width is None or height < 0 or width < 0:
            raise errors.InvalidParameter("invalid resize dimensions")
        svc().resize(cid, height, width)
        request.setResponseCode(200)
        return b""

    @app.route("/containers/<string:cid>/logs", methods=["GET"])
    async def get_containers_logs(request, cid):
        rec = svc().get(cid)
        now = daemon.reactor.seconds()
        stdout, stderr, entries = _log_entries(rec, daemon, request, now)
        if not (stdout or stderr):
            raise errors.InvalidParameter(
                "Bad parameters: you must choose at least one stream")
        timestamps = query_bool(request, "timestamps")
        tty = bool(rec.config.get("Tty"))
        request.setResponseCode(200)
        request.setHeader(b"content-type", _stream_type(rec, api_version(request)))

        write = request.write

        def emit(stream: str, data: bytes, ts: str | None) -> None:
            if timestamps:
                from dockerpy.timeutil import rfc3339
                data = (ts or rfc3339(daemon.reactor.seconds())).encode() + b" " + data
            write(data if tty else stdcopy.frame(stream, data))

        request.write(b"")
        for stream, data, ts in entries:
            emit(stream, data, ts)
        if not query_bool(request, "follow") or not svc().is_running(rec.id):
            return b""
        from dockerpy.api.hijack import BoundedOutput
        from dockerpy.containers.logs import follow

        # A follower that does not read gets its output dropped past a bound,
        # never buffered without end nor slowing the container.
        out = BoundedOutput(request)
        out.register()
        write = out.write
        try:
            await follow(svc(), daemon.reactor, rec.id, stdout, stderr,
                         lambda s, d: emit(s, d, None))
        finally:
            if request.channel is not None:  # else the client is gone
                out.unregister()
        return b""

    @app.route("/containers/<string:cid>/attach", methods=["POST"])
    def post_containers_attach(request, cid):
        from dockerpy.containers.detach import attach_keys, publish_detach

        keys = attach_keys(query(request, "detachKeys"))
        rec = svc().get(cid)
        version = api_version(request)
        tty = bool(rec.config.get("Tty"))
        # As Docker: the keys are watched for on a terminal only.
        proto = AttachStream(tty, bool(rec.config.get("StdinOnce")), keys if tty else None,
                             lambda: publish_detach(getattr(daemon, "events", None), rec),
                             clock=daemon.reactor)
        if query_bool(request, "logs"):
            stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
            for stream, data, _ in read_log(daemon.containers.records.log_path(rec.id),
                                            stdout, stderr):
                proto.output(stream, data)
        if query_bool(request, "stream", True):
            proto.attachment = svc().attach(
                rec.id, query_bool(request, "stdin"), query_bool(request, "stdout"),
                query_bool(request, "stderr"), proto.output, proto.end)
        else:
            proto.end()
        hijack_request(request, proto, _stream_type(rec, version))
        return defer.Deferred()  # never fires: the connection is the stream's now

    @app.route("/containers/<string:cid>/export", methods=["GET"])
    async def get_containers_export(request, cid):
        from dockerpy.archive import write_rootfs_tar

        tmp = await _spool(daemon, cid, lambda root, out: write_rootfs_tar(root, out))
        return await _send_file(request, tmp, b"application/x-tar")

    @app.route("/containers/<string:cid>/archive", methods=["HEAD"])
    async def head_containers_archive(request, cid):
        from dockerpy.archive import stat_path

        path = _archive_path(request)
        # Docker names the container as the client did (name or id) in errors.
        stat = await svc().with_rootfs(cid, lambda root: stat_path(root, path, cid))
        request.setHeader(b"X-Docker-Container-Path-Stat", _stat_header(stat))
        request.setResponseCode(200)
        return b""

    @app.route("/containers/<string:cid>/archive", methods=["GET"])
    async def get_containers_archive(request, cid):
        from dockerpy.archive import stat_path, write_path_tar

        path = _archive_path(request)
        holder = {}

        def work(root, out):
            holder["stat"] = stat_path(root, path, cid)
            write_path_tar(root, path, out)

        tmp = await _spool(daemon, cid, work)
        request.setHeader(b"X-Docker-Container-Path-Stat", _stat_header(holder["stat"]))
        return await _send_file(request, tmp, b"application/x-tar")

    @app.route("/containers/<string:cid>/archive", methods=["PUT"])
    async def put_containers_archive(request, cid):
        from dockerpy.archive import extract_into

        path = _archive_path(request)
        no_overwrite = query_bool(request, "noOverwriteDirNonDir")
        body = request.content
        body.seek(0)
        await svc().with_rootfs(cid, lambda root: extract_into(root, path, body, no_overwrite))
        request.setResponseCode(200)
        return b""


async def _no_content(request, work) -> bytes:
    """204 when ``work`` did something, 304 when it was already so (start of a
    running container, stop of a stopped one), as Docker answers."""
    try:
        await work
    except errors.NotModified:
        request.setResponseCode(304)
        return b""
    request.setResponseCode(204)
    return b""


def _archive_path(request) -> str:
    path = query(request, "path")
    if not path:
        raise errors.InvalidParameter("Bad parameters: path cannot be empty")
    return path


def _stat_header(stat: dict) -> bytes:
    return base64.b64encode(json.dumps(stat).encode())


async def _spool(daemon, cid: str, fn):
    """Run ``fn(rootfs, out)`` in a thread into a temporary file; return it rewound."""
    tmp = tempfile.TemporaryFile(dir=daemon.conf.data_root)

    def work(root):
        fn(root, tmp)
        tmp.flush()
        tmp.seek(0)

    try:
        await daemon.containers.with_rootfs(cid, work)
    except BaseException:
        tmp.close()
        raise
    return tmp


async def _send_file(request, f, content_type: bytes) -> bytes:
    request.setResponseCode(200)
    request.setHeader(b"content-type", content_type)
    try:
        await FileSender().beginFileTransfer(f, request)
    finally:
        f.close()
    return b""
