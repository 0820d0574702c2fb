"""Admin API: upstreams and a user's linked identities (problem JSON for bad input)."""
from __future__ import annotations

from support import csrf_from, make_client, make_user

from authserver.accounts import upstreams


def token(app, client):
    cid, secret = make_client(app, "Admin tool", redirect_uris=(),
                              grant_types=["client_credentials"], scope="admin")
    resp = client.post("/token", data={"grant_type": "client_credentials", "scope": "admin"},
                       auth=(cid, secret))
    return {"Authorization": "Bearer " + resp.get_json()["access_token"]}


def test_upstreams_and_identities(app, client):
    uid = make_user(app, "alice")
    with app.app_context():
        upstreams.add("entra", "https://login.microsoftonline.com/organizations/v2.0", "cid",
                      "top-secret", label="Microsoft")
    h = token(app, client)
    resp = client.get("/api/admin/upstreams", headers=h)
    assert resp.status_code == 200
    (item,) = resp.get_json()["items"]
    assert item["label"] == "Microsoft" and "top-secret" not in resp.get_data(as_text=True)
    assert item["redirect_uri"].endswith("/login/upstream/entra/callback")
    base = f"/api/admin/users/{uid}/identities"
    assert client.get(base, headers=h).get_json() == {"items": []}
    resp = client.put(base + "/entra", json={"subject": "t:o"}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["subject"] == "t:o"
    assert client.get(base, headers=h).get_json()["items"][0]["upstream"] == "entra"
    other = make_user(app, "bob")
    resp = client.put(f"/api/admin/users/{other}/identities/entra", json={"subject": "t:o"},
                      headers=h)
    assert resp.status_code == 409 and resp.content_type == "application/problem+json"
    for body, status in [({"subject": ""}, 422), ({"subject": 5}, 422), ({"x": 1}, 422),
                         ([], 422)]:
        assert client.put(base + "/entra", json=body, headers=h).status_code == status
    assert client.put(base + "/nope", json={"subject": "s"}, headers=h).status_code == 404
    assert client.put("/api/admin/users/999/identities/entra", json={"subject": "s"},
                      headers=h).status_code == 404
    assert client.delete(base + "/entra", headers=h).status_code == 204
    assert client.delete(base + "/entra", headers=h).status_code == 404
    assert client.get("/api/admin/upstreams").status_code == 401


def test_users_module_links_and_unlinks(app, client, auth):
    make_user(app, "root", admin=True)
    uid = make_user(app, "alice")
    with app.app_context():
        upstreams.add("entra", "https://login.microsoftonline.com/organizations/v2.0", "cid",
                      "s", label="Microsoft")
    assert auth.login("root").status_code == 303
    page = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "Subject at Microsoft" in page
    token = csrf_from(page)
    resp = client.post(f"/admin/users/{uid}/identities/entra",
                       data={"csrf_token": token, "subject": "t:o"})
    assert resp.status_code == 303
    page = client.get(f"/admin/users/{uid}").get_data(as_text=True)
    assert "<code>t:o</code>" in page and "Unlink Microsoft" in page
    resp = client.post(f"/admin/users/{uid}/identities/entra",
                       data={"csrf_token": token, "subject": " "})
    assert resp.status_code == 303  # refused with a flash, not a 500
    assert client.post(f"/admin/users/{uid}/identities/nope",
                       data={"csrf_token": token}).status_code == 404
    assert client.post(f"/admin/users/{uid}/identities/entra").status_code == 400
    client.post(f"/admin/users/{uid}/identities/entra", data={"csrf_token": token})
    assert "Subject at Microsoft" in client.get(f"/admin/users/{uid}").get_data(as_text=True)
