"""The OpenAPI document lists exactly the routes the admin_api blueprint serves."""
import re

from authserver.admin.schemas import OPENAPI

IGNORED = {"HEAD", "OPTIONS"}


def served_operations(app) -> set[tuple[str, str]]:
    ops = set()
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("admin_api."):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule).replace("{user_id}", "{id}")
        ops |= {(method, path) for method in rule.methods - IGNORED}
    return ops


def documented_operations() -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in OPENAPI["paths"].items()
            for method in item}


def test_every_served_route_is_documented_and_every_documented_route_is_served(app):
    assert served_operations(app) == documented_operations()


def test_document_is_openapi_3_1_with_bearer_security():
    assert OPENAPI["openapi"] == "3.1.0"
    assert OPENAPI["security"] == [{"bearer": []}]
    scheme = OPENAPI["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}


def test_every_operation_has_an_id_and_documents_401_and_403():
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            assert op["operationId"]
            if path.startswith("/api/admin/"):
                assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_every_reference_resolves():
    text = repr(OPENAPI)
    names = set(re.findall(r"#/components/schemas/(\w+)", text))
    assert names <= set(OPENAPI["components"]["schemas"])


def test_served_document_is_this_one(client):
    assert client.get("/api/openapi.json").get_json() == OPENAPI
