"""WeCom API errors: errcode plus an errmsg with the real suffix (wecom-api.md §0, §7)."""

from __future__ import annotations

import hashlib
import itertools
import time

# Short messages in WeCom's own wording where one was observed (§1 "Observed errmsg texts", §4 samples);
# the rest follow the same terse English style. Clients key on errcode only.
MESSAGES: dict[int, str] = {
    -1: "system busy",
    40001: "invalid credential",
    40003: "invalid userid",
    40004: "invalid media type",
    40006: "invalid file size",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40050: "chatid not found",
    40058: "invalid Request Parameter",
    40063: "some parameters are empty",
    40068: "invalid tagid",
    40071: "UserTag Name Already Exist",
    40072: "invalid tag name length",
    40096: "invalid external userid",
    40097: "user is not resigned",
    40100: "the user's external contacts are already in transfer",
    40126: "corp tag count exceed limit 3000",
    40128: "customer transfer too frequent",
    40129: "customer is being transferred",
    40130: "handover userid equals takeover userid",
    40131: "handover userid is not the follow user of the external contact",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41009: "missing userid",
    41035: "missing external userid",
    41037: "missing contact way type",
    41038: "missing contact way scene",
    41039: "invalid contact way type",
    41040: "invalid contact way scene",
    41041: "contact way user count exceed limit",
    41042: "invalid contact way style",
    41043: "missing contact way config_id",
    41044: "invalid contact way config_id",
    41045: "contact way count exceed limit",
    41046: "missing msgid",
    41047: "invalid msgid",
    41048: "no external contact to send",
    41049: "missing welcome code",
    41050: "invalid welcome code",
    41051: "externaluser has started chatting",
    41055: "group welcome template count exceed limit",
    41058: "no permission to edit this group welcome template",
    41059: "missing moment_id",
    41060: "invalid moment_id",
    41061: "moment is not published by this user",
    41062: "moment has not been published by this user",
    41063: "group msg is being dispatched, please try again later",
    41064: "attachments count exceed limit",
    41065: "invalid attachment type",
    41089: "moment text and attachments are both empty",
    41093: "group msg task has been cancelled",
    41094: "remind group msg too frequent",
    42001: "access_token expired",
    44001: "empty media data",
    44004: "empty content",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    48002: "api forbidden",
    60111: "userid not found",
    60123: "invalid party id",
    81017: "too many requests, use owner_filter",
    84061: "not external contact",
    84074: "no privilege to access external contact",
    90500: "the owner of this chat is not resigned",
}

_hint_counter = itertools.count(1)


class ApiError(Exception):
    """A WeCom error answer: HTTP 200 with a non-zero errcode."""

    def __init__(self, errcode: int, message: str | None = None):
        self.errcode = errcode
        self.message = message or MESSAGES.get(errcode, "error")
        super().__init__(f"{errcode} {self.message}")


def errmsg(errcode: int, message: str, client_ip: str) -> str:
    """``<short msg>, hint: [<id>], from ip: <ip>, more info at …?e=<code>`` as WeCom writes it (§0)."""
    now = int(time.time())
    serial = next(_hint_counter)
    digest = hashlib.md5(f"{now}-{serial}-{errcode}".encode(), usedforsecurity=False).hexdigest()
    return (
        f"{message}, hint: [{now}_{serial % 1000}_{digest}], from ip: {client_ip}, "
        f"more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
    )
