"""The HTTP edge: versions, error mapping, filters, ping headers (no root)."""

from __future__ import annotations

import json

from klein import Klein
from treq.testing import StubTreq
from twisted.trial import unittest

from dockerpy import errors
from dockerpy.api import app as api
from dockerpy.api import system


def _stub(*installers):
    klein_app = api.make_app(list(installers))
    return StubTreq(api.VersionedRoot(klein_app.resource()))


def _routes(app: Klein) -> None:
    @app.route("/boom/<string:kind>", methods=["GET"])
    def boom(request, kind):
        raise {"404": errors.NotFound("No such container: x"),
               "409": errors.Conflict("conflict!"),
               "400": errors.InvalidParameter("bad"),
               "500": RuntimeError("kaputt")}[kind]

    @app.route("/echo-version", methods=["GET"])
    def echo(request):
        return api.write_json(request, list(api.api_version(request)))

    @app.route("/body", methods=["POST"])
    def body(request):
        return api.write_json(request, api.read_json(request, required=True))


class VersionTests(unittest.TestCase):
    def _get(self, path):
        treq = _stub(_routes)
        resp = self.successResultOf(treq.get("http://x" + path))
        body = self.successResultOf(resp.content())
        return resp.code, json.loads(body)

    def test_unversioned_path_uses_highest_version(self):
        self.assertEqual(self._get("/echo-version"), (200, [1, 47]))

    def test_versioned_path_is_routed_with_its_version(self):
        self.assertEqual(self._get("/v1.41/echo-version"), (200, [1, 41]))

    def test_too_new_version_is_400_with_docker_message(self):
        code, body = self._get("/v1.99/echo-version")
        self.assertEqual(code, 400)
        self.assertEqual(body["message"],
                         "client version 1.99 is too new. Maximum supported API version is 1.47")

    def test_too_old_version_is_400(self):
        code, body = self._get("/v1.12/echo-version")
        self.assertEqual(code, 400)
        self.assertIn("is too old", body["message"])

    def test_unknown_route_is_404_json(self):
        self.assertEqual(self._get("/v1.45/nope"), (404, {"message": "page not found"}))


class ErrorMappingTests(unittest.TestCase):
    def _get(self, kind):
        treq = _stub(_routes)
        resp = self.successResultOf(treq.get(f"http://x/boom/{kind}"))
        return resp.code, json.loads(self.successResultOf(resp.content()))

    def test_domain_errors_map_to_docker_status_codes(self):
        self.assertEqual(self._get("404"), (404, {"message": "No such container: x"}))
        self.assertEqual(self._get("409"), (409, {"message": "conflict!"}))
        self.assertEqual(self._get("400"), (400, {"message": "bad"}))

    def test_unexpected_errors_are_500_with_message(self):
        code, body = self._get("500")
        self.assertEqual(code, 500)
        self.assertEqual(body["message"], "kaputt")
        self.flushLoggedErrors(RuntimeError)

    def test_bad_json_body_is_400(self):
        treq = _stub(_routes)
        resp = self.successResultOf(treq.post("http://x/body", data=b"{nope"))
        self.assertEqual(resp.code, 400)
        self.assertIn("invalid JSON", json.loads(self.successResultOf(resp.content()))["message"])

    def test_empty_required_body_is_400(self):
        treq = _stub(_routes)
        resp = self.successResultOf(treq.post("http://x/body", data=b""))
        self.assertEqual(resp.code, 400)


class FilterTests(unittest.TestCase):
    def test_map_form_of_go_clients(self):
        self.assertEqual(api.parse_filters('{"status": {"running": true, "exited": false}}'),
                         {"status": ["running"]})

    def test_list_form_of_docker_py(self):
        self.assertEqual(api.parse_filters('{"label": ["a=b", "c"]}'), {"label": ["a=b", "c"]})

    def test_garbage_is_invalid_parameter(self):
        self.assertRaises(errors.InvalidParameter, api.parse_filters, "[1,2]")
        self.assertRaises(errors.InvalidParameter, api.parse_filters, "{bad")


class PingTests(unittest.TestCase):
    def test_ping_headers_as_the_docker_cli_expects(self):
        treq = _stub(lambda app: system.install(app, None))
        for method in ("GET", "HEAD"):
            resp = self.successResultOf(treq.request(method, "http://x/_ping"))
            self.assertEqual(resp.code, 200)
            h = resp.headers
            self.assertEqual(h.getRawHeaders("Api-Version"), ["1.47"])
            self.assertEqual(h.getRawHeaders("Ostype"), ["linux"])
            self.assertEqual(h.getRawHeaders("Builder-Version"), ["1"])
            self.assertEqual(h.getRawHeaders("Swarm"), ["inactive"])
            body = self.successResultOf(resp.content())
            self.assertEqual(body, b"OK" if method == "GET" else b"")

    def test_version_announces_range(self):
        body = system.version_body()
        self.assertEqual((body["ApiVersion"], body["MinAPIVersion"]), ("1.47", "1.24"))
