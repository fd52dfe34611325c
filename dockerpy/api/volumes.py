# -*- test-case-name: dockerpy.test.test_volume_api -*-
"""Volume routes (``/volumes/...``): create, list, inspect, remove, prune.

Parses and validates requests and hands them to the daemon's
:class:`dockerpy.volumes.service.VolumeService`; the JSON shapes are
Docker's (``Volume``, ``VolumeListResponse``, ``VolumePruneResponse``).
"""

from __future__ import annotations

from klein import Klein

from dockerpy import errors
from dockerpy.api.app import api_version, check_filters, parse_filters, query, query_bool, \
    read_json, write_json

# moby's list filters: ``label!`` is for prune only (Docker answers 400).
_LIST_FILTERS = {"dangling", "name", "label", "driver"}


def install(app: Klein, daemon=None) -> None:
    svc = lambda: daemon.volumes  # noqa: E731 (built after start-up)

    @app.route("/volumes/create", methods=["POST"])
    async def post_volumes_create(request):
        body = read_json(request)
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: volume config must be an object")
        name = body.get("Name") or ""
        driver = body.get("Driver") or "local"
        if not isinstance(name, str) or not isinstance(driver, str):
            raise errors.InvalidParameter("invalid JSON: Name and Driver must be strings")
        vol = await svc().create(name or None, driver, body.get("DriverOpts"),
                                 body.get("Labels"))
        return write_json(request, vol, 201)

    @app.route("/volumes", methods=["GET"])
    async def get_volumes(request):
        filters = parse_filters(query(request, "filters"))
        check_filters(filters, _LIST_FILTERS)
        vols = await svc().list(filters)
        return write_json(request, {"Volumes": vols, "Warnings": []})

    @app.route("/volumes/prune", methods=["POST"])
    async def post_volumes_prune(request):
        filters = parse_filters(query(request, "filters"))
        # Before API 1.42 prune removed every unused volume, named ones too.
        result = await svc().prune(filters, all_by_default=api_version(request) < (1, 42))
        return write_json(request, result)

    @app.route("/volumes/<string:name>", methods=["GET"])
    async def get_volumes_inspect(request, name):
        return write_json(request, await svc().inspect(name))

    @app.route("/volumes/<string:name>", methods=["DELETE"])
    async def delete_volumes(request, name):
        await svc().remove(name, query_bool(request, "force"))
        request.setResponseCode(204)
        return b""
