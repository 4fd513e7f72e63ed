"""Errors as people and programs expect them: JSON under /api/, a page elsewhere."""

from __future__ import annotations

import logging

from quart import Quart, g, jsonify, render_template, request
from quart.typing import ResponseReturnValue
from quart_schema.validation import QuerystringValidationError, RequestSchemaValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    InternalServerError,
    ServiceUnavailable,
    UnprocessableEntity,
    default_exceptions,
)

from server.services.errors import Refused

log = logging.getLogger("playfair.errors")

# Seconds a client is asked to wait when every database connection is taken.
BUSY_RETRY_AFTER = 5

API_PREFIXES = ("/api/",)


class PaymentRequired(HTTPException):
    code = 402
    description = "the balance is too low"


class TooEarly(HTTPException):
    code = 425
    description = "too early"


# the statuses services use that werkzeug has no exception for
OWN_EXCEPTIONS: dict[int, type[HTTPException]] = {402: PaymentRequired, 425: TooEarly}


def http_error(refused: Refused) -> HTTPException:
    """A service's refusal as the HTTP error of its status (409 for one we do not know)."""
    kind = OWN_EXCEPTIONS.get(refused.status) or default_exceptions.get(refused.status)
    return (kind or default_exceptions[409])(str(refused))


def wants_json() -> bool:
    return request.path.startswith(API_PREFIXES) or request.path == "/healthz"


async def error_response(error: HTTPException) -> ResponseReturnValue:
    status = error.code or 500
    reason = error.description or error.name
    headers = dict(error.get_headers())
    headers.pop("Content-Type", None)
    if wants_json():
        response = jsonify({"error": error.name, "reason": reason, "status": status})
        return response, status, headers
    # no link preview: an error is not a page to share, and its URL is not canonical
    page = await render_template(
        "error.html", status=status, title=error.name, reason=reason, link_preview=False
    )
    return page, status, headers


def _describe_validation(error: RequestSchemaValidationError) -> str:
    inner = error.validation_error
    errors = getattr(inner, "errors", None)
    if callable(errors):
        parts = []
        for item in errors()[:5]:
            where = ".".join(str(part) for part in item.get("loc", ())) or "input"
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        return "; ".join(parts)
    return str(inner) or "the request does not match its schema"


def register_error_handlers(app: Quart) -> None:
    @app.errorhandler(QuerystringValidationError)
    async def _bad_query(error: QuerystringValidationError) -> ResponseReturnValue:
        return await error_response(BadRequest(_describe_validation(error)))

    @app.errorhandler(RequestSchemaValidationError)
    async def _bad_body(error: RequestSchemaValidationError) -> ResponseReturnValue:
        if isinstance(error, QuerystringValidationError):
            return await error_response(BadRequest(_describe_validation(error)))
        return await error_response(UnprocessableEntity(_describe_validation(error)))

    @app.errorhandler(Refused)
    async def _refused(error: Refused) -> ResponseReturnValue:
        return await error_response(http_error(error))

    @app.errorhandler(PoolTimeout)
    async def _overloaded(error: PoolTimeout) -> ResponseReturnValue:
        # Every connection of the pool stayed taken for the pool timeout: more requests
        # than the database keeps up with. Not a bug but load, so a 503 the client can
        # retry, and a warning rather than a traceback.
        request_id = g.get("request_id", "")
        log.warning(
            "no database connection free for %s %s in time (request %s): answered 503",
            request.method,
            request.path,
            request_id,
            extra={"fields": {"request_id": request_id}},
        )
        busy = ServiceUnavailable(
            "The instance is busy; try again in a few seconds.", retry_after=BUSY_RETRY_AFTER
        )
        return await error_response(busy)

    @app.errorhandler(HTTPException)
    async def _http_error(error: HTTPException) -> ResponseReturnValue:
        if error.code == 500:  # raised on purpose, or by Quart for an error of its own
            cause = getattr(error, "original_exception", None) or error
            return await _internal_error(cause)
        return await error_response(error)

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> ResponseReturnValue:
        return await _internal_error(error)


async def _internal_error(error: BaseException) -> ResponseReturnValue:
    """Log the traceback with the request id (the one the answer's X-Request-Id header
    carries), so a person quoting it can be matched to the log line."""
    request_id = g.get("request_id", "")
    log.error(
        "unhandled error on %s %s (request %s)",
        request.method,
        request.path,
        request_id,
        exc_info=(type(error), error, error.__traceback__),
        extra={"fields": {"request_id": request_id}},
    )
    return await error_response(
        InternalServerError(
            f"Something went wrong on our side; it has been logged as request {request_id}."
        )
    )
