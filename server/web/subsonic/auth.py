"""Whose call this is: OpenSubsonic's ``apiKey`` (a personal access token) or the classic
``u`` with ``t`` + ``s`` or ``p``, checked against the listener's app passwords (never the
account password, which is kept only as an Argon2 hash)."""

from __future__ import annotations

from server.runtime.resources import Resources
from server.services.viewers import Viewer
from server.web.auth import TokenRefused, viewer_for_token
from server.web.subsonic import app_password_auth
from subsonic.errors import Code, SubsonicError, missing
from subsonic.params import Params


async def authenticate(params: Params, resources: Resources) -> Viewer:
    api_key = params.get("apiKey")
    classic = [name for name in ("u", "p", "t", "s") if params.get(name) is not None]
    if api_key is not None:
        if classic:
            raise SubsonicError(
                Code.CONFLICTING_AUTH, "send either apiKey or u with t and s (or p), not both"
            )
        try:
            return await viewer_for_token(api_key)
        except TokenRefused as refused:
            raise SubsonicError(Code.INVALID_API_KEY, str(refused)) from None
    username = params.get("u")
    if not username:
        raise missing("u")
    if params.get("t") is not None or params.get("s") is not None:
        if params.get("p") is not None:
            raise SubsonicError(Code.CONFLICTING_AUTH, "send either t and s, or p, not both")
        return await app_password_auth.by_token(
            resources, username, params.required("t"), params.required("s")
        )
    password = params.get("p")
    if password is None:
        raise missing("t")
    return await app_password_auth.by_password(resources, username, password)
