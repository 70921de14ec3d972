"""Domain errors with stable codes, shared by services, pages and the API."""

from __future__ import annotations

from enum import StrEnum

from django.utils.translation import gettext as _


class ErrorCode(StrEnum):
    NOT_FOUND = "not_found"
    INVALID = "invalid"
    PERMISSION_DENIED = "permission_denied"
    CONFLICT = "conflict"
    UNKNOWN_TAG = "unknown_tag"
    UNKNOWN_STAFF = "unknown_staff"
    UNKNOWN_CUSTOMER = "unknown_customer"
    PAGE_TOO_LARGE = "page_too_large"
    BAD_CURSOR = "bad_cursor"
    UNAUTHENTICATED = "unauthenticated"
    # Segment expressions (siyu.segments)
    EXPRESSION_SYNTAX = "expression_syntax"
    UNKNOWN_CONDITION = "unknown_condition"
    WRONG_OPERATOR = "wrong_operator"
    AMBIGUOUS_TAG = "ambiguous_tag"
    UNKNOWN_DEPARTMENT = "unknown_department"
    SEGMENT_REFERENCES_DELETED_TAG = "segment_references_deleted_tag"
    # Mass messages: refused before anything is sent.
    EMPTY_AUDIENCE = "empty_audience"
    TEXT_TOO_LONG = "text_too_long"
    BAD_ATTACHMENT = "bad_attachment"
    REMINDER_LIMIT = "reminder_limit"


class DomainError(Exception):
    """A request the domain refuses; carries a stable code and an HTTP status for the API."""

    status = 400

    def __init__(self, code: ErrorCode, message: str, *, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class NotFound(DomainError):
    status = 404

    def __init__(self, message: str | None = None, *, code: ErrorCode = ErrorCode.NOT_FOUND):
        # The default is translated when raised, in the language of the request that sees it.
        super().__init__(code, _("not found") if message is None else message)


class PermissionDenied(DomainError):
    status = 403

    def __init__(self, message: str | None = None):
        super().__init__(ErrorCode.PERMISSION_DENIED, _("permission denied") if message is None else message)


class Invalid(DomainError):
    status = 400

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode = ErrorCode.INVALID):
        super().__init__(code, message, field=field)


class Conflict(DomainError):
    status = 409

    def __init__(self, message: str):
        super().__init__(ErrorCode.CONFLICT, message)
