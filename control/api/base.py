"""The Blueprint every resource uses: flask-smorest's, with our strict request parser."""

from __future__ import annotations

import json
from typing import Any

import flask
import flask_smorest
import marshmallow as ma
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from control.api import strict_json
from control.errors import BadRequest, ValidationFailed

BODY_REQUIRED = "A JSON object body is required (Content-Type: application/json)."


class StrictParser(FlaskParser):
    """webargs' Flask parser, stricter where a client would otherwise be silently ignored.

    - JSON goes through `strict_json` (NaN, huge integers, deep nesting are refused) and a
      malformed body is our 400;
    - a body schema gets a JSON object or a 422: no body, `null` or an array is never read as
      "change nothing";
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
            raise ValidationFailed("Request validation failed", errors={"body": [BODY_REQUIRED]})
        return data


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose requests go through `StrictParser`."""

    ARGUMENTS_PARSER = StrictParser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        """flask-smorest's `arguments`; a JSON body also documents its 400 (malformed JSON)."""
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return decorator
        malformed = self.alt_response(400, response="BAD_REQUEST", description="malformed JSON")

        def wrapper(view: Any) -> Any:
            documented = getattr(view, "_apidoc", {}).get("response", {}).get("responses", {})
            view = decorator(view)
            return view if 400 in documented else malformed(view)

        return wrapper
