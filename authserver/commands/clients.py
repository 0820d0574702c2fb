"""`authserver clients ...` (SPEC section 6)."""
from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from ..errors import AuthserverError
from ..oauth import services as oauth
from ..oauth.cors import client_web_origins

clients = AppGroup("clients", help="Register and list relying applications.")


@clients.command("create")
@click.argument("name")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True)
@click.option("--public", is_flag=True, help="A public client (no secret, PKCE required).")
@click.option("--scope", default=None, help="Space-separated allowed scopes.")
@click.option("--grant-type", "grant_types", multiple=True,
              type=click.Choice(["authorization_code", "refresh_token", "client_credentials"]))
@click.option("--no-pkce", is_flag=True, help="Confidential client without required PKCE.")
@click.option("--third-party", is_flag=True, help="Ask users for consent.")
@click.option("--requires-licence", is_flag=True, help="Only licensed users may sign in.")
@click.option("--web-origin", "web_origins", multiple=True, metavar="ORIGIN",
              help="An origin (scheme://host[:port]) whose pages may call /token, /userinfo "
                   "and /revoke; repeatable. Default: the origins of the redirect URIs.")
@click.option("--backchannel-logout-uri", default=None,
              help="Where to POST a logout token when a session the app got tokens in ends.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def create(name, redirect_uris, logout_uris, public, scope, grant_types, no_pkce, third_party,
           requires_licence, web_origins, backchannel_logout_uri, as_json):
    """Register NAME; the client secret is shown once."""
    try:
        client, secret = oauth.create_client(
            name, list(redirect_uris), post_logout_redirect_uris=list(logout_uris),
            public=public, scope=scope, grant_types=list(grant_types),
            require_pkce=not no_pkce, first_party=not third_party,
            requires_licence=requires_licence, web_origins=list(web_origins) or None,
            backchannel_logout_uri=backchannel_logout_uri)
    except AuthserverError as exc:
        raise click.ClickException(exc.message) from exc
    info = describe(client)
    if secret:
        info["client_secret"] = secret
    if as_json:
        click.echo(json.dumps(info))
        return
    for key, value in info.items():
        click.echo(f"{key}: {' '.join(value) if isinstance(value, list) else value}")
    if secret:
        click.echo("Store the client_secret now: it is not shown again.")


def describe(client) -> dict:
    return {"client_id": client.client_id, "name": client.name,
            "public": client.public, "redirect_uris": client.redirect_uris,
            "post_logout_redirect_uris": client.post_logout_redirect_uris,
            "grant_types": client.grant_types, "scope": client.scope,
            "require_pkce": client.require_pkce, "first_party": client.first_party,
            "requires_licence": client.requires_licence,
            "web_origins": client_web_origins(client.redirect_uris, client.web_origins),
            "backchannel_logout_uri": client.backchannel_logout_uri,
            "token_endpoint_auth_method": client.token_endpoint_auth_method}


@clients.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json):
    """List registered clients."""
    rows = [describe(c) for c in oauth.list_clients()]
    if as_json:
        click.echo(json.dumps(rows))
        return
    for c in rows:
        kind = "public" if c["public"] else "confidential"
        click.echo(f"{c['client_id']}  {c['name']}  ({kind}; {' '.join(c['grant_types'])})")
