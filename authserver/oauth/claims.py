"""The claims a user releases for a scope (OIDC Core 1.0 section 5.4)."""
from __future__ import annotations

from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core import UserInfo

from ..accounts.models import User


def userinfo_for(user: User, scope: str) -> UserInfo:
    scopes = set(scope_to_list(scope) or [])
    info = UserInfo(sub=user.get_user_id())
    if "profile" in scopes:
        info["name"] = user.name
        info["preferred_username"] = user.username
    if "email" in scopes:
        info["email"] = user.email
    return info
