"""The OpenAPI document against the app: every route, method, status and content type the API serves
is described and nothing else, and schemathesis fuzzes the app from it (405 and 413 included)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pwa import create_app, create_kiosk_app

# What the API serves, written out here: the test fails if the code or the document drifts.
EXPECTED_OPERATIONS = {
    ("/api/predict", "post"): {"200", "400", "405", "408", "413", "415", "503"},
    ("/api/model", "get"): {"200", "405", "413"},
    ("/healthz", "get"): {"200", "405", "413"},
    ("/api/openapi.json", "get"): {"200", "405", "413"},
}
# The kiosk's own listener adds the server camera's routes; the phones' never has them.
CAMERA_OPERATIONS = {
    ("/api/camera", "get"): {"200", "403", "404", "405", "413"},
    ("/api/camera/preview", "get"): {"200", "403", "404", "405", "413", "503"},
    ("/api/camera/capture", "post"): {"200", "403", "404", "405", "413", "503"},
}
UPLOAD_TYPES = {"multipart/form-data", "image/jpeg", "image/png", "image/webp"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def app(random_bundle):
    return create_app({"TESTING": True, "BUNDLE": str(random_bundle)})


@pytest.fixture(scope="module")
def document(app):
    return app.test_client().get("/api/openapi.json").get_json()


def documented(document) -> dict[tuple[str, str], set[str]]:
    return {(path, method): set(op["responses"]) for path, ops in document["paths"].items()
            for method, op in ops.items()}


def test_the_document_lists_exactly_the_apps_api_routes_and_methods(app, document):
    served = {
        (rule.rule, method.lower())
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/") or rule.rule == "/healthz"
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert set(documented(document)) == served  # both ways
    other = {rule.rule for rule in app.url_map.iter_rules()} - {path for path, _ in served}
    # Pages, static files and the bundle's files for the on-device model (pwa/bundle_files.py): not API.
    assert other == {"/", "/offline.html", "/manifest.webmanifest", "/sw.js", "/static/<path:filename>",
                     "/bundle/<name>"}


def test_the_document_lists_exactly_the_expected_statuses_and_upload_types(app, document):
    assert documented(document) == EXPECTED_OPERATIONS
    kiosk_document = create_kiosk_app(app).test_client().get("/api/openapi.json").get_json()
    assert documented(kiosk_document) == EXPECTED_OPERATIONS | CAMERA_OPERATIONS
    content = document["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert set(content) == UPLOAD_TYPES


def test_a_route_without_a_description_breaks_the_document(random_bundle):
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle)})
    app.add_url_rule("/api/extra", "api.extra", lambda: "")
    with pytest.raises(KeyError, match="api.extra"):
        app.test_client().get("/api/openapi.json")


def _error_schema_accepts(document, response_name: str, body) -> bool:
    schema = document["components"]["responses"][response_name]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}
    return isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], str)


def test_unknown_api_paths_answer_the_documented_json_404(app, document):
    for method in ("GET", "POST", "DELETE"):
        response = app.test_client().open("/api/unknown-endpoint", method=method)
        assert response.status_code == 404
        assert _error_schema_accepts(document, "NotFound", response.get_json())


def _fuzz(app, extra_strategies=()) -> set[int]:
    """Run schemathesis' strategies against the app; returns the statuses seen."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    cases = st.one_of(schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE),
                      *[make(schema) for make in extra_strategies])
    seen: set[int] = set()

    @given(case=cases)
    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def fuzz(case):
        seen.add(case.call_and_validate(checks=CHECKS).status_code)

    fuzz()
    return seen


def _with_method(case, method: str):
    case.method = method  # a freshly drawn case: nothing else holds it
    return case


def _wrong_methods(schema):
    """Each documented operation called with a method its path does not serve: a documented 405."""
    def swap(case):
        others = sorted({"GET", "POST", "PUT", "DELETE", "PATCH"} - {case.method.upper()})
        return st.sampled_from(others).map(lambda method: _with_method(case, method))

    return schema.as_strategy(GenerationMode.POSITIVE).flatmap(swap)


def test_fuzzed_requests_never_get_a_server_error_or_an_undocumented_answer(app):
    # TESTING propagates exceptions: any input that would have been a 500 fails the test.
    # Schemathesis' own pytest loader for fixtures breaks on pytest 9, so its strategies drive a
    # plain Hypothesis test: valid requests, deliberately invalid ones, and wrong methods.
    seen = _fuzz(app, [_wrong_methods])
    assert {200, 405, 415} <= seen


def test_fuzzed_bodies_over_a_tiny_limit_get_the_documented_413(random_bundle):
    app = create_app({"TESTING": True, "BUNDLE": str(random_bundle), "MAX_CONTENT_LENGTH": 64})
    assert 413 in _fuzz(app)
