"""Errors from WeCom's API, keyed on ``errcode`` only (errmsg carries a hint suffix that changes per call).

The hierarchy sorts codes by what a caller should do about them (wecom-api.md §1 and §7):

- ``ConfigurationError``: the corp's setup is wrong (secret, corpid, permissions, trusted IP); retrying
  cannot help.
- ``AccessTokenError``: the token is invalid or expired; the gateway refetches it and replays the call once.
- ``TransientError``: WeCom is busy or throttling; retried with backoff, or later by the outbox.
- anything else: the request itself is wrong (unknown userid, bad tag id, expired welcome code…); permanent.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar


class WeComError(Exception):
    """WeCom answered with a non-zero ``errcode``."""

    #: errcodes this class stands for; ``for_code`` picks the class.
    codes: ClassVar[tuple[int, ...]] = ()
    #: whether sending the same request later may succeed.
    transient: ClassVar[bool] = False

    def __init__(self, errcode: int, errmsg: str = "", api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"WeCom {api or 'API'} failed: errcode {errcode}, {errmsg}")


class ConfigurationError(WeComError):
    """The corp's WeCom configuration is wrong; an administrator must fix it. Never retried in a loop."""


class InvalidCredential(ConfigurationError):
    """40001: corpid/secret mismatch, secret reset or app disabled."""

    codes = (40001,)


class InvalidCorpId(ConfigurationError):
    """40013: the corpid is not valid."""

    codes = (40013,)


class AccessTokenMissing(ConfigurationError):
    """41001: no access_token in the URL — a bug on our side, never retried."""

    codes = (41001,)


class ApiForbidden(ConfigurationError):
    """48002: the app may not call this API (customer-contact permission not granted to the app)."""

    codes = (48002,)


class NoPermission(ConfigurationError):
    """60011 (outside the app's visibility), 60020 (IP not trusted), 84074 (no customer-contact right)."""

    codes = (60011, 60020, 84074)


class AccessTokenError(WeComError):
    """The token was refused; the gateway fetches a fresh one and replays the call once."""

    transient = True


class InvalidAccessToken(AccessTokenError):
    """40014: invalid access_token (expired early, garbled or of the wrong app)."""

    codes = (40014,)


class AccessTokenExpired(AccessTokenError):
    """42001: access_token expired."""

    codes = (42001,)


class TransientError(WeComError):
    """WeCom could not serve the call now; the same call may succeed later."""

    transient = True


class SystemBusy(TransientError):
    """-1: system busy; WeCom advises at most 3 retries."""

    codes = (-1,)


class Throttled(Exception):
    """Mixin of errors that say when calling again makes sense."""

    retry_at: datetime | None = None


class ApiFrequencyLimited(TransientError, Throttled):
    """45009: the API's frequency limit is exceeded; WeCom blocks it for the rest of the window."""

    codes = (45009,)


class ApiConcurrencyLimited(TransientError):
    """45033: too many concurrent calls to this API from the corp."""

    codes = (45033,)


class DistributionInProgress(TransientError):
    """41063 (mass message) and 41096 (welcome message) are being distributed: try again shortly."""

    codes = (41063, 41096)


class InvalidRequest(WeComError):
    """The request is wrong in a way retrying cannot fix."""


class InvalidUserId(InvalidRequest):
    """40003: no such member userid."""

    codes = (40003,)


class InvalidParameter(InvalidRequest):
    """40058: an argument is invalid (also: a field exceeds its maximum length)."""

    codes = (40058,)


class InvalidTag(InvalidRequest):
    """40068 (unknown tag or tag group id) and 40071 (invalid tag name)."""

    codes = (40068, 40071)


class InvalidExternalUserId(InvalidRequest):
    """40096 (invalid external_userid) and 41035 (external_userid missing)."""

    codes = (40096, 41035)


class WelcomeCodeRejected(InvalidRequest):
    """41050 (invalid or expired welcome code), 41051 (the customer already chatted / welcome sent)."""

    codes = (41050, 41051)


class GroupWelcomeTemplateLimit(InvalidRequest):
    """41055: the corp's library holds its 100 group welcome templates already."""

    codes = (41055,)


class GroupWelcomeTemplateForbidden(InvalidRequest):
    """41058: the template is not this app's to edit or delete (made in the admin console or another app)."""

    codes = (41058,)


class NoExternalContactRelation(InvalidRequest):
    """84061: the member and the customer have no relation."""

    codes = (84061,)


class TooManyItems(InvalidRequest):
    """81017: the request names more items than WeCom allows (e.g. groupchat/list without owner_filter)."""

    codes = (81017,)


_BY_CODE: dict[int, type[WeComError]] = {}


def _register(cls: type[WeComError]) -> None:
    for code in cls.codes:
        _BY_CODE[code] = cls
    for sub in cls.__subclasses__():
        _register(sub)


_register(WeComError)


def for_code(errcode: int, errmsg: str = "", api: str = "") -> WeComError:
    """The error instance for a WeCom ``errcode``; unknown codes are ``InvalidRequest``."""
    cls = _BY_CODE.get(errcode, InvalidRequest)
    return cls(errcode, errmsg, api)


class WeComUnavailable(Exception):
    """WeCom could not be reached or did not answer with JSON (timeout, 5xx, connection reset)."""

    transient = True

    def __init__(self, api: str, reason: str, *, sent: bool = True) -> None:
        self.api = api
        self.reason = reason
        #: whether the request may have reached WeCom (a read timeout) or surely did not (connection refused).
        self.sent = sent
        super().__init__(f"WeCom {api} unavailable: {reason}")


class RateLimited(Throttled):
    """Our own limiter refused the call: the API's bucket is empty or its penalty window is open."""

    transient = True

    def __init__(self, api: str, retry_at: datetime, reason: str) -> None:
        self.api = api
        self.retry_at = retry_at
        self.reason = reason
        super().__init__(f"WeCom {api} held back until {retry_at.isoformat()}: {reason}")
