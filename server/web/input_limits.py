"""Bad input is refused with a 4xx before a route sees it.

Installed once for the whole app by :func:`install_input_limits`:

* ``<int:…>`` in every route is :class:`BoundedIdConverter`: ASCII digits, at most a signed
  64-bit value (our ids are BIGINT), so ``/tracks/99999999999999999999`` is a 404 and never
  reaches the database (and :class:`BoundedOpenAPI` documents the range); ``<int32:…>``
  is the same for numbers kept in INTEGER columns;
* the request class is :class:`LimitedRequest`: ``get_json`` reads the bytes and parses them
  with :func:`federation.safejson.loads` (depth, number ranges, UTF-8, NUL), and a form
  body with a NUL character is refused;
* a NUL character in the path or the query string is refused (PostgreSQL's text cannot
  hold one, so it could only end in a database error);
* ``X-Request-Id`` is taken from the client only when it is a short token that is safe to
  log and echo; otherwise a fresh one is made.
"""

from __future__ import annotations

import re
import uuid
from typing import Any
from urllib.parse import unquote_to_bytes

from quart import Quart, request
from quart.wrappers import Request
from quart_schema.openapi import OpenAPIProvider
from werkzeug.exceptions import BadRequest
from werkzeug.routing import BaseConverter, IntegerConverter, Map

from federation import safejson

INT32_MAX = 2**31 - 1
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class BoundedIdConverter(IntegerConverter):
    """``<int:…>`` limited to ASCII digits and to what a BIGINT column can hold."""

    regex = r"[0-9]{1,19}"

    def __init__(
        self,
        map: Map,
        fixed_digits: int = 0,
        min: int | None = None,
        max: int | None = None,
        signed: bool = False,
    ) -> None:
        upper = max if max is not None and max < safejson.INT64_MAX else safejson.INT64_MAX
        super().__init__(map, fixed_digits, min, upper, signed)


class Int32Converter(BoundedIdConverter):
    """``<int32:…>``, for numbers kept in INTEGER columns (a playlist position, a member's
    number): PostgreSQL refuses to compare those with anything above 2^31−1."""

    regex = r"[0-9]{1,10}"

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        assert self.max is not None  # BoundedIdConverter always sets a bound
        self.max = min(self.max, INT32_MAX)


class BoundedOpenAPI(OpenAPIProvider):
    """The OpenAPI document says what the converters take (0 to 2^63−1, or to 2^31−1)."""

    def build_path_parameter(self, name: str, converter: BaseConverter) -> dict[str, Any]:
        parameter = super().build_path_parameter(name, converter)
        if isinstance(converter, BoundedIdConverter):
            parameter["schema"].update(minimum=converter.min or 0, maximum=converter.max)
        return parameter


class LimitedRequest(Request):
    """A request whose JSON and form bodies are parsed within limits (see the module)."""

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        if cache and self._cached_json[silent] is not Ellipsis:
            return self._cached_json[silent]
        if not (force or self.is_json):
            return None
        data = await self.get_data(cache=cache, as_text=False)
        try:
            result = safejson.loads(data)
        except safejson.UnsafeJSON as error:
            result = None if silent else self.on_json_loading_failed(error)
        if cache:
            self._cached_json[silent] = result
        return result

    def on_json_loading_failed(self, error: Exception) -> Any:
        raise BadRequest(f"the body is not acceptable JSON: {error}")

    async def _load_form_data(self) -> None:
        await super()._load_form_data()
        form = self._form
        if form is not None and any(
            "\x00" in key or "\x00" in value for key, value in form.items(multi=True)
        ):
            raise BadRequest("the form has a NUL character in it")


def request_id(given: str | None) -> str:
    """The client's ``X-Request-Id`` when it is a short, plain token, else a new id."""
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex[:16]


def install_input_limits(app: Quart) -> None:
    """Register the converter and the checks; call before any blueprint is registered."""
    app.url_map.converters["int"] = BoundedIdConverter
    app.url_map.converters["int32"] = Int32Converter

    @app.before_request
    async def _refuse_nul() -> None:
        if "\x00" in request.path or b"\x00" in unquote_to_bytes(request.query_string):
            raise BadRequest("the address has a NUL character in it")


__all__ = [
    "BoundedIdConverter",
    "BoundedOpenAPI",
    "Int32Converter",
    "LimitedRequest",
    "install_input_limits",
    "request_id",
]
