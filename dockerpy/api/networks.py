# -*- test-case-name: dockerpy.test.test_integration_user_networks -*-
"""Network routes (``/networks/...``): list, inspect, create, remove,
connect, disconnect, prune.  Parses and validates requests and hands them
to the daemon's :class:`dockerpy.network.service.NetworkService` (and the
container service, for connect/disconnect); the JSON shapes are Docker's.
"""

from __future__ import annotations

from klein import Klein

from dockerpy import errors
from dockerpy.api.app import check_filters, parse_filters, query, read_json, write_json
from dockerpy.filters import label_match
from dockerpy.timeutil import parse_rfc3339, parse_timestamp_arg

_LIST_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}
_PRUNE_FILTERS = {"until", "label", "label!"}


def _truthy(values: list[str]) -> bool:
    return any(v.lower() in ("1", "true") for v in values)


def _matches(view: dict, filters: dict[str, list[str]], used: bool) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in view["Name"] for v in values):
            return False
        if key == "id" and not any(view["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and view["Driver"] not in values:
            return False
        if key == "scope" and view["Scope"] not in values:
            return False
        if key == "type":
            kind = "builtin" if view["Name"] in ("bridge", "host", "none") else "custom"
            bad = [v for v in values if v not in ("builtin", "custom")]
            if bad:
                raise errors.InvalidParameter(f"invalid filter: 'type'='{bad[0]}'")
            if kind not in values:
                return False
        if key == "label" and not label_match(view["Labels"], values):
            return False
        if key == "dangling":
            builtin = view["Name"] in ("bridge", "host", "none")
            if _truthy(values) != (not used and not builtin):
                return False
    return True


def install(app: Klein, daemon=None) -> None:
    def svc():
        if daemon.network is None:
            raise errors.Unavailable("the network service is not running")
        return daemon.network

    def names() -> dict[str, str]:
        return {r.id: r.name for r in daemon.containers.all()}

    def used(net) -> bool:
        return bool(svc().in_use(net) or daemon.containers.network_users(net))

    def body_of(request) -> dict:
        body = read_json(request, required=True)
        if not isinstance(body, dict):
            raise errors.InvalidParameter("invalid JSON: expected an object")
        return body

    def container_of(body: dict) -> str:
        container = body.get("Container")
        if not isinstance(container, str) or not container:
            raise errors.InvalidParameter("invalid JSON: Container is required")
        return container

    @app.route("/networks", methods=["GET"])
    def get_networks(request):
        filters = parse_filters(query(request, "filters"))
        check_filters(filters, _LIST_FILTERS)
        net, known = svc(), names()
        out = []
        for n in net.networks():
            view = net.network_view(n, known)
            if _matches(view, filters, used(n)):
                out.append(view)
        return write_json(request, out)

    @app.route("/networks/create", methods=["POST"])
    async def post_networks_create(request):
        net = await svc().create_network(body_of(request))
        return write_json(request, {"Id": net.id, "Warning": ""}, 201)

    @app.route("/networks/prune", methods=["POST"])
    async def post_networks_prune(request):
        filters = parse_filters(query(request, "filters"))
        check_filters(filters, _PRUNE_FILTERS)
        now = daemon.reactor.seconds()
        until = [parse_timestamp_arg(v, now) for v in filters.get("until", [])]
        deleted = []
        for n in svc().networks():
            if n.builtin or used(n):
                continue
            if until and parse_rfc3339(n.created) >= min(until):
                continue
            if "label" in filters and not label_match(n.labels, filters["label"]):
                continue
            if "label!" in filters and label_match(n.labels, filters["label!"]):
                continue
            try:
                await svc().remove_network(n.id)
            except errors.DockerError:
                continue
            deleted.append(n.name)
        return write_json(request, {"NetworksDeleted": deleted or None})

    @app.route("/networks/<string:nid>", methods=["GET"])
    def get_networks_inspect(request, nid):
        net = svc()
        return write_json(request, net.network_view(net.find(nid), names()))

    @app.route("/networks/<string:nid>", methods=["DELETE"])
    async def delete_networks(request, nid):
        await svc().remove_network(nid)
        request.setResponseCode(204)
        return b""

    @app.route("/networks/<string:nid>/connect", methods=["POST"])
    async def post_networks_connect(request, nid):
        body = body_of(request)
        container = container_of(body)
        cfg = body.get("EndpointConfig") or {}
        if not isinstance(cfg, dict):
            raise errors.InvalidParameter("invalid JSON: EndpointConfig must be an object")
        await daemon.containers.connect_network(container, nid, cfg)
        return b""

    @app.route("/networks/<string:nid>/disconnect", methods=["POST"])
    async def post_networks_disconnect(request, nid):
        body = body_of(request)
        await daemon.containers.disconnect_network(container_of(body), nid,
                                                   bool(body.get("Force")))
        return b""
