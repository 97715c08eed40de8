"""The Blueprint every resource uses: flask-smorest's, reading JSON with our strict parser."""

from __future__ import annotations

import json

import flask
import flask_smorest
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request

from control.api import strict_json
from control.errors import BadRequest


class StrictParser(FlaskParser):
    """webargs parser that uses `strict_json` and reports bad bodies as our 400."""

    def _raw_load_json(self, req: flask.Request):
        if not is_json_request(req):
            return core.missing
        return strict_json.loads(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error, req, *args, **kwargs):
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "body is not valid UTF-8"
        raise BadRequest(f"Malformed JSON body: {reason}")


class Blueprint(flask_smorest.Blueprint):
    """A flask-smorest Blueprint whose request bodies go through `StrictParser`."""

    ARGUMENTS_PARSER = StrictParser()
