# -*- test-case-name: dockerpy.test.test_integration_network -*-
"""Network routes (``/networks``, ``/networks/{id}``) for the default
networks (``bridge``, ``host``, ``none``); the JSON shapes are Docker's
``Network``.  User-defined networks are not implemented yet: creating one
answers 501, as an unsupported feature should.
"""

from __future__ import annotations

from klein import Klein

from dockerpy import errors
from dockerpy.api.app import parse_filters, query, write_json

_DEFAULTS = ("bridge", "host", "none")
_LIST_FILTERS = {"driver", "id", "label", "name", "scope", "type", "dangling"}


def _matches(view: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in view["Name"] for v in values):
            return False
        if key == "id" and not any(view["Id"].startswith(v) for v in values):
            return False
        if key == "driver" and view["Driver"] not in values:
            return False
        if key == "scope" and view["Scope"] not in values:
            return False
        if key == "type" and "builtin" not in values:
            return False
        if key == "label":
            return False  # the default networks have no labels
        if key == "dangling" and any(v in ("1", "true") for v in values):
            return False
    return True


def install(app: Klein, daemon=None) -> None:
    def svc():
        if daemon.network is None:
            raise errors.Unavailable("the network service is not running")
        return daemon.network

    def members():
        return [(r.id, r.name) for r in daemon.containers.all()]

    @app.route("/networks", methods=["GET"])
    def get_networks(request):
        filters = parse_filters(query(request, "filters"))
        for key in filters:
            if key not in _LIST_FILTERS:
                raise errors.InvalidParameter(f"invalid filter '{key}'")
        net = svc()
        views = [net.network_view(n, members()) for n in _DEFAULTS]
        return write_json(request, [v for v in views if _matches(v, filters)])

    @app.route("/networks/create", methods=["POST"])
    def post_networks_create(request):
        raise errors.NotImplementedYet("user-defined networks are not supported yet")

    @app.route("/networks/<string:nid>", methods=["GET"])
    def get_networks_inspect(request, nid):
        net = svc()
        return write_json(request, net.network_view(net.find_network(nid), members()))

    @app.route("/networks/<string:nid>", methods=["DELETE"])
    def delete_networks(request, nid):
        name = svc().find_network(nid)
        raise errors.Forbidden(f"{name} is a pre-defined network and cannot be removed")
