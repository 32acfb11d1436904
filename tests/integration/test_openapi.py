"""GET /api/openapi.json describes every /api/* route the daemon serves, and the daemon's
real answers fit the document's schemas."""

from __future__ import annotations

import copy
from typing import Any

import aiohttp
import jsonschema
from openapi_spec_validator import validate as validate_openapi

from broadcaster.web import openapi
from tests.integration.harness import API_TOKEN, running_daemon, signed_trigger, write_deployment

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
METHODS = {"get", "put", "post", "delete", "patch"}

# arriving with issue 10 (lead): documented routes the app does not serve yet. Delete this
# list once they are merged; the test then checks them like the others.


def documented(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in METHODS
    }


def served(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route under /api/, as the router has it (HEAD is implied)."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.method != "HEAD"
    }


def problems(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> list[str]:
    """Why `body` with `status` is not what the document says the route answers."""
    responses = doc["paths"][path][method.lower()]["responses"]
    if str(status) not in responses:
        return [f"{method} {path}: status {status} is not documented ({sorted(responses)})"]
    response = responses[str(status)]
    if "$ref" in response:
        response = doc["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = {**response["content"]["application/json"]["schema"], "components": doc["components"]}
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [f"{method} {path} {status}: {e.message}" for e in validator.iter_errors(body)]


def test_the_document_is_valid_openapi_3_1():
    doc = copy.deepcopy(openapi.document())
    validate_openapi(doc)  # raises on any error, unresolvable $refs included
    assert doc["openapi"].startswith("3.1.")
    for name in ("Trigger", "Alert", "Delivery", "Refusal", "Error"):
        jsonschema.Draft202012Validator.check_schema(doc["components"]["schemas"][name])
    # The example trigger in the document is one the daemon would take.
    example = doc["components"]["schemas"]["Trigger"]["examples"][0]
    trigger = {"$ref": "#/components/schemas/Trigger", "components": doc["components"]}
    assert list(jsonschema.Draft202012Validator(trigger).iter_errors(example)) == []
    # Every operation but the document itself needs the bearer token.
    open_routes = {
        (method, path)
        for method, path in documented(doc)
        if doc["paths"][path][method.lower()].get("security", doc["security"]) == []
    }
    assert open_routes == {("GET", openapi.PATH)}
    assert doc["security"] == [{"bearer": []}]


async def test_every_api_route_is_documented_and_answers_as_documented(tmp_path, mosquitto):
    config = write_deployment(
        tmp_path, mqtt_url=mosquitto.url, channels={"log_de": {"type": "log", "drill": "send"}}
    )
    async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
        assert daemon.runner is not None
        routes = served(daemon.runner.app)
        base = f"http://{daemon.settings.http.listen}"

        async with http.get(base + openapi.PATH) as r:  # no token
            assert r.status == 200
            doc = await r.json()
        assert doc == openapi.document()

        # Both directions: an undocumented route fails, and so does a documented one that
        # is not served.
        assert routes - documented(doc) == set(), "routes missing from the OpenAPI document"
        assert documented(doc) - routes == set(), "documented routes the daemon does not serve"

        trigger = signed_trigger("FW-OPENAPI-1")
        unknown = signed_trigger("FW-OPENAPI-2", scenario="no_such_playbook")
        alert, audit, retract = (
            "/api/alerts/{alert_id}",
            "/api/alerts/{alert_id}/audit",
            "/api/alerts/{alert_id}/retract",
        )
        delivery = "/api/alerts/{alert_id}/deliveries/{channel_id}"
        one, none = "/api/alerts/FW-OPENAPI-1", "/api/alerts/FW-NONE"
        reason = {"reason": "Fehlalarm der Brandmeldeanlage"}
        # (method, documented path, url, JSON body, headers, expected status), in order.
        calls: list[tuple[str, str, str, Any, dict[str, str], int]] = [
            ("POST", "/api/triggers", "/api/triggers", trigger, AUTH, 202),
            ("POST", "/api/triggers", "/api/triggers", trigger, AUTH, 200),
            ("POST", "/api/triggers", "/api/triggers", unknown, AUTH, 400),
            ("POST", "/api/triggers", "/api/triggers", trigger, {}, 401),
            ("GET", "/api/alerts", "/api/alerts?limit=5", None, AUTH, 200),
            ("GET", "/api/alerts", "/api/alerts?limit=many", None, AUTH, 400),
            ("GET", alert, one, None, AUTH, 200),
            ("GET", alert, none, None, AUTH, 404),
            ("GET", alert, one, None, {}, 401),
            ("GET", "/api/refusals", "/api/refusals?limit=5", None, AUTH, 200),
            ("GET", audit, f"{one}/audit", None, AUTH, 200),
            ("GET", audit, f"{none}/audit", None, AUTH, 404),
            ("GET", delivery, f"{one}/deliveries/log_de", None, AUTH, 200),
            ("GET", delivery, f"{one}/deliveries/nowhere", None, AUTH, 404),
            ("POST", "/api/reload", "/api/reload", None, AUTH, 200),
            # No selftest: in this deployment and no playbook asked for: told so.
            ("POST", "/api/selftest", "/api/selftest", None, AUTH, 400),
            ("POST", retract, f"{one}/retract", {"why": "no reason"}, AUTH, 400),
            ("POST", retract, f"{one}/retract", reason, AUTH, 202),
            ("POST", retract, f"{one}/retract", reason, AUTH, 409),
            ("POST", retract, f"{none}/retract", reason, AUTH, 404),
            ("GET", openapi.PATH, openapi.PATH, None, {}, 200),
        ]
        found: list[str] = []
        checked: set[tuple[str, str]] = set()
        for method, route, url, body, headers, expected in calls:
            async with http.request(method, base + url, json=body, headers=headers) as r:
                answer = await r.json()
                if r.status != expected:
                    found.append(f"{method} {url}: {r.status} {answer}, expected {expected}")
                found += problems(doc, method, route, r.status, answer)
            checked.add((method, route))
    assert found == []
    # Every route the app serves was called and its answers checked.
    assert checked == routes
