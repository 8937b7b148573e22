"""Errors of the records feature; each has a stable code and an HTTP status."""

from __future__ import annotations


class RecordError(Exception):
    code = "record_error"
    status = 500

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class Malformed(RecordError):
    code = "malformed"
    status = 400


class Unauthorized(RecordError):
    code = "unauthorized"
    status = 401


class Forbidden(RecordError):
    code = "forbidden"
    status = 403


class NotFound(RecordError):
    code = "not_found"
    status = 404


class Conflict(RecordError):
    code = "conflict"
    status = 409


class Unavailable(RecordError):
    code = "store_unavailable"
    status = 503


class TooLarge(RecordError):
    code = "body_too_large"
    status = 413


class Busy(RecordError):
    code = "busy"
    status = 503
