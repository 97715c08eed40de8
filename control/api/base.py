"""The Blueprint every resource uses: flask-smorest's, with our strict request parser."""

from __future__ import annotations

import json
import re
from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import UnsupportedMediaType

from control.api import strict_json
from control.errors import BadRequest, ValidationFailed

BODY_REQUIRED = "A JSON object body is required (Content-Type: application/json)."
NOT_JSON = "The body must be JSON sent with Content-Type: application/json"
_MEDIA_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,64}", re.ASCII)


class StrictParser(FlaskParser):
    """webargs' Flask parser, stricter where a client would otherwise be silently ignored.

    - JSON goes through `strict_json` (NaN, huge integers, deep nesting are refused) and a
      malformed body is our 400;
    - a body schema gets a JSON object or a 422: no body, `null` or an array is never read as
      "change nothing";
    - a body sent as another media type (`text/plain`, curl -d's form encoding, none) is a 415
      that says which Content-Type to send, rather than a 422 claiming there was no body;
    - an unknown query parameter is a 422, like an unknown body field, so a typo in a filter
      (`?stauts=`) is an error rather than the whole list.
    """

    DEFAULT_UNKNOWN_BY_LOCATION: dict[str, str | None] = {
        **FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION,
        "query": ma.RAISE,
        "querystring": ma.RAISE,
    }

    def _raw_load_json(self, req: flask.Request) -> Any:
        if not is_json_request(req):
            return core.missing
        return strict_json.loads(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error: Exception, req: Any, *args: Any, **kwargs: Any):
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "body is not valid UTF-8"
        raise BadRequest(f"Malformed JSON body: {reason}")

    def _load_location_data(self, *, schema: ma.Schema, req: Any, location: str) -> Any:
        data = super()._load_location_data(schema=schema, req=req, location=location)
        if location == "json" and not isinstance(data, dict):
            if data is core.missing and not is_json_request(req) and req.get_data(cache=True):
                raise UnsupportedMediaType(_not_json(req.mimetype))
            raise ValidationFailed("Request validation failed", errors={"body": [BODY_REQUIRED]})
        return data


def _not_json(mimetype: str) -> str:
    # Name what was sent when it is a plain media type; never echo arbitrary header text.
    if not mimetype:
        return f"{NOT_JSON} (this one had no Content-Type)."
    if _MEDIA_TYPE.fullmatch(mimetype):
        return f"{NOT_JSON} (this one was sent as {mimetype})."
    return f"{NOT_JSON}."


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose requests go through `StrictParser`."""

    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        """flask-smorest's `arguments`; a JSON body also documents its 400 (malformed JSON)
        and its 415 (a body sent as another media type)."""
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return decorator
        malformed = self.alt_response(400, response="BAD_REQUEST", description="malformed JSON")
        not_json = self.alt_response(
            415, response="BAD_REQUEST", description="body not sent as application/json"
        )

        def wrapper(view: Any) -> Any:
            documented = getattr(view, "_apidoc", {}).get("response", {}).get("responses", {})
            view = decorator(view)
            if 415 not in documented:
                view = not_json(view)
            return view if 400 in documented else malformed(view)

        return wrapper
