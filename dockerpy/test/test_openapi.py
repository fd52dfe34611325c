# -*- test-case-name: dockerpy.test.test_openapi -*-
"""``doc/openapi.json`` describes exactly the routes the server has (no root).

The document is compared with the Klein app's URL map in both directions, so
a route added without documentation, or documentation of a route that does
not exist, fails here.  Werkzeug adds ``HEAD`` to every ``GET`` rule by
itself; the document lists ``HEAD`` only where a route declares it, so the
declared methods are recorded while the route modules install themselves.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

from klein import Klein
from twisted.trial import unittest

from dockerpy.api import routes
from dockerpy.api.app import MAX_API_VERSION, MIN_API_VERSION, version_string

DOC_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "doc", "openapi.json")

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
ERROR_REF = "#/components/schemas/ErrorResponse"

# Route variable -> the parameter name Docker's swagger uses in that place.
PARAMETER_NAMES = {"cid": "id"}

_CONVERTER = re.compile(r"<(?:[a-zA-Z_][a-zA-Z0-9_]*(?:\([^)]*\))?:)?([a-zA-Z_][a-zA-Z0-9_]*)>")

Operation = tuple[str, str]  # (METHOD, /openapi/{path})


def load_document(path: str = DOC_PATH) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def openapi_path(rule: str) -> str:
    """``/containers/<string:cid>/json`` -> ``/containers/{id}/json``."""
    return _CONVERTER.sub(lambda m: "{" + PARAMETER_NAMES.get(m.group(1), m.group(1)) + "}",
                          rule)


def declared_methods(modules: Iterable[Any]) -> dict[str, set[str]]:
    """The methods each rule string was declared with, as the modules install
    themselves on a scratch Klein app (routes only touch the daemon when called).

    :return: ``{rule string: {"GET", ...}}``; a route declared without
        ``methods`` maps to ``{"*"}``.
    """
    declared: dict[str, set[str]] = {}
    app = Klein()
    real_route = app.route

    def route(url: str, *args: Any, **kwargs: Any):
        methods = kwargs.get("methods")
        declared.setdefault(url, set()).update(
            {"*"} if methods is None else {m.upper() for m in methods})
        return real_route(url, *args, **kwargs)

    app.route = route  # type: ignore[method-assign]
    for module in modules:
        module.install(app, daemon=None)
    return declared


def served_operations(app: Klein, declared: dict[str, set[str]]) -> set[Operation]:
    """Every (method, path) the app routes, without the ``HEAD`` werkzeug adds
    to ``GET`` rules on its own."""
    served = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods or {"*"}:
            if method == "HEAD" and "HEAD" not in declared.get(rule.rule, set()):
                continue
            served.add((method, openapi_path(rule.rule)))
    return served


def documented_operations(doc: dict) -> set[Operation]:
    return {(method.upper(), path)
            for path, item in doc.get("paths", {}).items()
            for method in item if method in HTTP_METHODS}


def iter_operations(doc: dict):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, item, operation


def resolve(doc: dict, node: Any) -> Any:
    """Follow local ``$ref`` pointers (``#/components/...``) until a real node."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        if ref in seen or not ref.startswith("#/"):
            raise ValueError(f"cannot resolve {ref!r}")
        seen.add(ref)
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def all_refs(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from all_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from all_refs(value)


def engine_operations() -> set[Operation]:
    app = routes.make_engine_app(daemon=None)
    return served_operations(app, declared_methods(routes.ROUTE_MODULES))


def _fmt(ops: Iterable[Operation]) -> str:
    return "\n".join(f"  {m} {p}" for m, p in sorted(ops, key=lambda o: (o[1], o[0])))


class RouteConversionTests(unittest.SynchronousTestCase):
    def test_string_and_path_converters_become_docker_parameter_names(self):
        self.assertEqual(openapi_path("/containers/<string:cid>/archive"),
                         "/containers/{id}/archive")
        self.assertEqual(openapi_path("/images/<path:name>/tag"), "/images/{name}/tag")
        self.assertEqual(openapi_path("/_ping"), "/_ping")

    def test_head_added_by_werkzeug_to_get_routes_is_not_an_operation(self):
        ops = engine_operations()
        self.assertIn(("GET", "/version"), ops)
        self.assertNotIn(("HEAD", "/version"), ops)

    def test_explicitly_declared_head_is_an_operation(self):
        ops = engine_operations()
        self.assertIn(("HEAD", "/_ping"), ops)
        self.assertIn(("HEAD", "/containers/{id}/archive"), ops)

    def test_comparison_finds_a_route_added_without_documentation(self):
        def install_extra(app, daemon=None):
            @app.route("/containers/<string:cid>/frobnicate", methods=["POST"])
            def frobnicate(request, cid):
                return b""

        class Extra:
            install = staticmethod(install_extra)

        modules = tuple(routes.ROUTE_MODULES) + (Extra,)
        app = Klein()
        for module in modules:
            module.install(app, daemon=None)
        served = served_operations(app, declared_methods(modules))
        missing = served - documented_operations(load_document())
        self.assertEqual(missing, {("POST", "/containers/{id}/frobnicate")})


class DocumentMatchesServerTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.doc = load_document()

    def test_every_route_is_documented(self):
        missing = engine_operations() - documented_operations(self.doc)
        self.assertFalse(missing, "routes served but not in doc/openapi.json:\n" + _fmt(missing))

    def test_every_documented_operation_is_served(self):
        extra = documented_operations(self.doc) - engine_operations()
        self.assertFalse(extra, "operations in doc/openapi.json that the server does not "
                                "route:\n" + _fmt(extra))

    def test_every_route_declares_its_methods(self):
        declared = declared_methods(routes.ROUTE_MODULES)
        undeclared = sorted(rule for rule, methods in declared.items() if "*" in methods)
        self.assertEqual(undeclared, [])

    def test_api_version_range_is_the_servers(self):
        self.assertEqual(self.doc["info"]["version"], version_string(MAX_API_VERSION))
        versioned = [s for s in self.doc["servers"] if "{version}" in s["url"]]
        self.assertEqual(len(versioned), 1)
        variable = versioned[0]["variables"]["version"]
        self.assertEqual(MIN_API_VERSION[0], MAX_API_VERSION[0])
        expected = [version_string((MAX_API_VERSION[0], minor))
                    for minor in range(MIN_API_VERSION[1], MAX_API_VERSION[1] + 1)]
        self.assertEqual(variable["enum"], expected)
        self.assertEqual(variable["default"], version_string(MAX_API_VERSION))


class DocumentShapeTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.doc = load_document()

    def test_is_openapi_3_0(self):
        self.assertTrue(self.doc["openapi"].startswith("3.0."))
        self.assertIn("title", self.doc["info"])

    def test_every_operation_documents_an_error_response_with_error_schema(self):
        bad = []
        for method, path, _, operation in iter_operations(self.doc):
            errors = []
            for code, response in operation["responses"].items():
                if not (code.isdigit() and int(code) >= 400):
                    continue
                response = resolve(self.doc, response)
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                errors.append(schema == {"$ref": ERROR_REF})
            if not errors or not all(errors):
                bad.append((method, path))
        self.assertFalse(bad, "operations without ErrorResponse error replies:\n" + _fmt(bad))

    def test_every_operation_documents_a_success_response(self):
        bad = [(m, p) for m, p, _, op in iter_operations(self.doc)
               if not any(code in ("101",) or code.startswith(("2", "3"))
                          for code in op["responses"])]
        self.assertFalse(bad, _fmt(bad))

    def test_path_parameters_match_path_templates(self):
        bad = []
        for method, path, item, operation in iter_operations(self.doc):
            params = [resolve(self.doc, p) for p in
                      item.get("parameters", []) + operation.get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            if in_path != set(re.findall(r"{([^}]+)}", path)):
                bad.append((method, path))
            if any(not p.get("required") for p in params if p["in"] == "path"):
                bad.append((method, path))
        self.assertFalse(bad, "path parameters do not match the path:\n" + _fmt(bad))

    def test_operation_ids_are_unique(self):
        ids = [op["operationId"] for _, _, _, op in iter_operations(self.doc)]
        self.assertEqual(sorted(ids), sorted(set(ids)))

    def test_every_reference_resolves(self):
        for ref in all_refs(self.doc):
            resolved = resolve(self.doc, {"$ref": ref})
            self.assertIsInstance(resolved, dict, ref)

    def test_error_schema_is_docker_message_object(self):
        schema = resolve(self.doc, {"$ref": ERROR_REF})
        self.assertEqual(schema["required"], ["message"])
        self.assertEqual(schema["properties"]["message"]["type"], "string")
