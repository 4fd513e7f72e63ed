"""OAuth 2 endpoints: the authorization (consent) page, token, revocation."""

from __future__ import annotations

from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import OAuth2Error
from quart import Blueprint, current_app, redirect, render_template, request, url_for
from quart.typing import ResponseReturnValue
from sqlalchemy import select

from models.oauth import OAuthClient
from server.oauth import PlayfairAuthorizationServer, db, oauth_request, run_in_session, to_response
from server.resources import resources_of
from server.sessions import check_csrf, user_for_session

oauth = Blueprint("oauth", __name__, url_prefix="/oauth")
SCOPE_TEXT = {
    "read": "see your library, wallet and account",
    "write": "change your library, playlists and follows",
    "play": "play tracks and pay for plays from your wallet",
    "upload": "upload audio to your artist profiles",
    "admin": "administer this instance",
    "openid": "know who you are on this instance",
    "profile": "see your name",
    "email": "see your e-mail address",
}


def server() -> PlayfairAuthorizationServer:
    found: PlayfairAuthorizationServer = current_app.extensions["oauth_server"]
    return found


@oauth.route("/authorize", methods=["GET", "POST"])
async def authorize() -> ResponseReturnValue:
    user = await user_for_session()
    if user is None:
        target = request.full_path if request.method == "GET" else request.path
        return redirect(url_for("accounts.login", next=target), 303)
    if request.method == "POST":
        await check_csrf()
    form = dict((await request.form).items()) if request.method == "POST" else {}
    req = await oauth_request()
    auth = server()

    def decide() -> tuple[str, object]:
        try:
            grant = auth.get_consent_grant(req, end_user=user)
        except OAuth2Error as error:
            return "error", auth.handle_error_response(req, error)
        if request.method == "GET":
            client = db().scalar(
                select(OAuthClient).where(OAuthClient.client_id == req.payload.client_id)
            )
            return "consent", (client.name if client else "", req.payload.scope or "")
        allowed = form.get("decision") == "allow"
        return "done", auth.create_authorization_response(
            req, grant_user=user if allowed else None, grant=grant
        )

    kind, result = await run_in_session(decide)
    if kind == "consent":
        client_name, scope = result  # type: ignore[misc]
        return await render_template(
            "consent.html",
            instance=resources_of(current_app).settings.instance,
            client_name=client_name,
            scopes=[(word, SCOPE_TEXT.get(word, word)) for word in scope.split()],
            action=url_for("oauth.authorize") + "?" + urlencode(request.args),
        )
    response = to_response(result)  # type: ignore[arg-type]
    if kind == "error" and "Location" not in response.headers:
        # the client or its redirect URI is unknown: never redirect there (RFC 6749 §4.1.2.1)
        response.headers["Content-Type"] = "application/json"
    return response


@oauth.post("/token")
async def token() -> ResponseReturnValue:
    req = await oauth_request()
    response = to_response(await run_in_session(lambda: server().create_token_response(req)))
    response.headers["Content-Type"] = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


@oauth.post("/revoke")
async def revoke() -> ResponseReturnValue:
    req = await oauth_request()
    result = await run_in_session(lambda: server().create_endpoint_response("revocation", req))
    response = to_response(result)
    response.headers["Content-Type"] = "application/json"
    return response
