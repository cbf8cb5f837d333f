"""Errors a request can cause, in the OpenAI error shape.

Every refusal is a `RequestError` carrying the HTTP status and the field it is about;
the app turns it into

    {"error": {"message": ..., "type": ..., "param": <field or null>, "code": ...}}

so OpenAI clients raise their usual exceptions (BadRequestError for 400, ...).
"""
from __future__ import annotations

from starlette.responses import JSONResponse

TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error",
         413: "invalid_request_error", 429: "rate_limit_error", 500: "server_error"}


class RequestError(Exception):
    """A request the server refuses: `message` for the user, `param` the field at fault."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code

    def body(self) -> dict:
        return error_body(self.message, self.status, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def error_body(message: str, status: int, param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}
