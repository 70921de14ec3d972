"""WeCom services for mass messages (企业群发) and moments (客户朋友圈), for ``siyu.broadcasts``.

Writes go through the outbox with the caller's idempotency key: ``add_msg_template`` and ``add_moment_task``
are not idempotent in WeCom, so the outbox sends each key once and, when a send may have reached WeCom without
its answer coming back, ends the row "outcome unknown" instead of sending again (``WriteState.unknown``).
Reads (task progress, per-customer results, moment jobs) call WeCom directly at bulk priority; their errors
are ``siyu.wecom.errors`` exceptions, with ``TrackingUnavailable`` wrapping the ones worth a later try.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from siyu.corps.models import Corp
from siyu.wecom import errors
from siyu.wecom import schemas as s
from siyu.wecom.client import client_for
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write

ADD_MSG_TEMPLATE = "externalcontact/add_msg_template"
REMIND = "externalcontact/remind_groupmsg_send"
CANCEL = "externalcontact/cancel_groupmsg_send"
ADD_MOMENT_TASK = "externalcontact/add_moment_task"
# wecom-api.md §4.5: add_msg_template takes ≤ 10,000 external_userid or ≤ 2,000 chat ids per call.
MAX_CUSTOMERS_PER_TASK = 10_000
MAX_GROUPS_PER_TASK = 2_000
# get_groupmsg_task / get_groupmsg_send_result: ≤ 1,000 a page.
RESULTS_PAGE = 1000
UNKNOWN_PREFIX = "outcome unknown"


class TrackingUnavailable(Exception):
    """A read of mass-message progress that failed: throttled, WeCom busy or still dispatching (41063), or
    refused; the next poll tries again, until the broadcast's tracking period ends."""


@dataclass(frozen=True)
class WriteState:
    """Where a write stands in the outbox: pending, done (with WeCom's answer) or failed (with the reason)."""

    status: str
    result: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def done(self) -> bool:
        return self.status == Outbox.Status.DONE

    @property
    def failed(self) -> bool:
        return self.status == Outbox.Status.FAILED

    @property
    def unknown(self) -> bool:
        """Failed after WeCom may have received it: it may exist there, and must not be sent again."""
        return self.failed and self.error.startswith(UNKNOWN_PREFIX)


def _content(text: str, attachments: Sequence[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if text:
        body["text"] = {"content": text}
    if attachments:
        body["attachments"] = list(attachments)
    return body


def send_msg_template(
    *,
    corp: Corp,
    idempotency_key: str,
    sender: str,
    text: str,
    attachments: Sequence[dict[str, Any]],
    external_userids: Sequence[str] = (),
    chat_ids: Sequence[str] = (),
) -> Outbox:
    """Queue one ``add_msg_template`` for ``sender``: to customers, or to groups when ``chat_ids`` given."""
    body: dict[str, Any] = {"sender": sender, **_content(text, attachments)}
    if chat_ids:
        body["chat_type"] = "group"
        body["chat_id_list"] = list(chat_ids)
    else:
        body["chat_type"] = "single"
        body["external_userid"] = list(external_userids)
    return enqueue_write(
        corp=corp, api=ADD_MSG_TEMPLATE, payload=body, idempotency_key=idempotency_key, priority=Priority.BULK
    )


def send_moment_task(
    *,
    corp: Corp,
    idempotency_key: str,
    text: str,
    attachments: Sequence[dict[str, Any]],
    userids: Sequence[str] = (),
    department_ids: Sequence[int] = (),
    tag_ids: Sequence[str] = (),
) -> Outbox:
    """Queue one ``add_moment_task``: visible to the customers of ``userids`` (and departments), with tags."""
    body = _content(text, attachments)
    visible: dict[str, Any] = {}
    senders: dict[str, Any] = {}
    if userids:
        senders["user_list"] = list(userids)
    if department_ids:
        senders["department_list"] = list(department_ids)
    if senders:
        visible["sender_list"] = senders
    if tag_ids:
        visible["external_contact_list"] = {"tag_list": list(tag_ids)}
    if visible:
        body["visible_range"] = visible
    return enqueue_write(
        corp=corp, api=ADD_MOMENT_TASK, payload=body, idempotency_key=idempotency_key, priority=Priority.BULK
    )


def remind(*, corp: Corp, idempotency_key: str, msgid: str) -> Outbox:
    """Queue a ``remind_groupmsg_send`` (WeCom allows 3 per message per 24 h; the caller enforces it)."""
    return enqueue_write(
        corp=corp,
        api=REMIND,
        payload={"msgid": msgid},
        idempotency_key=idempotency_key,
        priority=Priority.USER,
    )


def cancel(*, corp: Corp, idempotency_key: str, msgid: str) -> Outbox:
    """Queue a ``cancel_groupmsg_send``: the parts not yet sent are never sent."""
    return enqueue_write(
        corp=corp,
        api=CANCEL,
        payload={"msgid": msgid},
        idempotency_key=idempotency_key,
        priority=Priority.USER,
    )


def write_states(*, corp: Corp, idempotency_keys: Sequence[str]) -> dict[str, WriteState]:
    """Where each write stands, by idempotency key (keys not in the outbox are left out)."""
    rows = Outbox.objects.for_corp(corp).filter(idempotency_key__in=list(idempotency_keys))
    return {
        key: WriteState(status=status, result=result or {}, error=error)
        for key, status, result, error in rows.values_list(
            "idempotency_key", "status", "result", "last_error"
        )
    }


def upload(*, corp: Corp, kind: str, filename: str, content: bytes, content_type: str, moment: bool) -> str:
    """Upload a file to WeCom and return its media id (valid 3 days): ``media/upload`` for messages,
    ``media/upload_attachment`` for moments. Not through the outbox: it changes nothing anyone sees, and a
    repeated upload only makes another temporary media."""
    from siyu.wecom.gateway import Upload

    client = client_for(corp, priority=Priority.BULK)
    file = Upload(filename=filename, content=content, content_type=content_type or "application/octet-stream")
    answer = client.upload_attachment(kind, file) if moment else client.upload_media(kind, file)
    return answer.media_id


def _read(call: Any) -> Any:
    try:
        return call()
    except (errors.Throttled, errors.WeComError, errors.WeComUnavailable) as exc:
        # 41063 (still dispatching), -1, 45009/45033, network trouble, a refusal: only the errcode is kept.
        raise TrackingUnavailable(getattr(exc, "errcode", type(exc).__name__)) from exc


def _time(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value else None


@dataclass(frozen=True)
class SenderProgress:
    """One staff member's part of a mass message: sent or not, and when."""

    userid: str
    sent: bool
    send_time: datetime | None


def msg_task_progress(*, corp: Corp, msgid: str) -> list[SenderProgress]:
    """``get_groupmsg_task``, every page: which staff have sent the message."""
    client = client_for(corp, priority=Priority.BULK)
    found: list[SenderProgress] = []
    for page in _read(lambda: list(client.iter_groupmsg_task(msgid, limit=RESULTS_PAGE))):
        for task in page.task_list:
            # status 2 = sent; 0 = not yet (some SDKs document 1 = confirmed, also not yet delivered).
            found.append(SenderProgress(task.userid, task.status == 2, _time(task.send_time)))
    return found


@dataclass(frozen=True)
class SendResult:
    """WeCom's outcome for one customer (``external_userid``) or group (``chat_id``)."""

    target: str
    status: int  # 0 not sent yet, 1 sent, 2 not a friend, 3 over the receive quota
    send_time: datetime | None


def msg_send_results(
    *, corp: Corp, msgid: str, userid: str, cursor: str = ""
) -> tuple[list[SendResult], str]:
    """One page of ``get_groupmsg_send_result`` for one sender, and the cursor of the next ('' at the end)."""
    client = client_for(corp, priority=Priority.BULK)
    page: s.GroupMsgSendResultPage = _read(
        lambda: client.get_groupmsg_send_result(msgid, userid, cursor=cursor, limit=RESULTS_PAGE)
    )
    items = [SendResult(r.chat_id or r.external_userid, r.status, _time(r.send_time)) for r in page.send_list]
    return items, page.next_cursor


@dataclass(frozen=True)
class MomentJob:
    """An ``add_moment_task`` job: finished or not, the moment it made, and the senders WeCom refused."""

    finished: bool
    moment_id: str = ""
    errcode: int = 0
    invalid_userids: list[str] = field(default_factory=list)


def moment_job(*, corp: Corp, jobid: str) -> MomentJob:
    """``get_moment_task_result``."""
    client = client_for(corp, priority=Priority.BULK)
    answer: s.MomentTaskResult = _read(lambda: client.get_moment_task_result(jobid))
    if answer.status != 3 or answer.result is None:
        return MomentJob(finished=False)
    invalid = answer.result.invalid_sender_list.get("user_list") or []
    return MomentJob(
        finished=True,
        moment_id=answer.result.moment_id,
        errcode=answer.result.errcode,
        invalid_userids=[str(u) for u in invalid],
    )


def moment_publishers(*, corp: Corp, moment_id: str) -> dict[str, bool]:
    """``get_moment_task``, every page: for each sender, whether they have published the moment."""
    client = client_for(corp, priority=Priority.BULK)
    published: dict[str, bool] = {}
    cursor = ""
    while True:
        page: s.MomentTaskPage = _read(lambda c=cursor: client.get_moment_task(moment_id, cursor=c))
        for task in page.task_list:
            published[task.userid] = task.publish_status == 1
        if not page.next_cursor or page.next_cursor == cursor:
            return published
        cursor = page.next_cursor
