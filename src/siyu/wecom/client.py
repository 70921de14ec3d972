"""The typed WeCom API client: one method per API, typed requests and responses, cursor iterators.

Get one with ``client_for(corp, priority=Priority.SYNC)``. Every call goes through the gateway
(``gateway.py``), which adds the access token, waits for the corp's per-API quota in priority order, retries
``-1`` and refetches expired tokens. Errors are ``siyu.wecom.errors.WeComError`` subclasses keyed on
``errcode``.

Reads may be called directly. Writes (remark, tags, contact ways, messages, moments, transfers) are called
by the outbox worker only: domain code asks for a write with ``siyu.wecom.outbox.enqueue_write`` so that it
is stored, sent once per idempotency key and its result recorded. ``WRITE_APIS`` lists them.

Call WeCom outside database transactions: the limiter's row lock on the API would otherwise be held until
the caller's transaction commits, stalling every other process's calls to that API.

Paths are relative to ``settings.WECOM_API_BASE`` and are WeCom's own (wecom-api.md §4; contacts APIs for
departments and members).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from siyu.wecom import schemas as s

if TYPE_CHECKING:
    from siyu.corps.models import Corp
    from siyu.wecom.gateway import Upload
    from siyu.wecom.limits import Priority

P = TypeVar("P", bound=s.Page)


class Transport(Protocol):
    """What the client needs from the gateway: send one API call, return WeCom's JSON (errcode 0) or raise."""

    def call(
        self,
        api: str,
        *,
        method: str,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        idempotent: bool = True,
        upload: Upload | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WriteApi:
    """A WeCom API that changes state: its request body and response models, for the outbox."""

    api: str
    request: type[s.WeComRequest]
    response: type[BaseModel]
    #: sending it twice has the same effect as once; if not, an ambiguous failure is never retried blindly.
    idempotent: bool = True


def _writes(*apis: WriteApi) -> dict[str, WriteApi]:
    return {w.api: w for w in apis}


WRITE_APIS: dict[str, WriteApi] = _writes(
    WriteApi("externalcontact/remark", s.RemarkRequest, s.Ack),
    WriteApi("externalcontact/add_corp_tag", s.AddCorpTagRequest, s.AddCorpTagResponse, idempotent=False),
    WriteApi("externalcontact/edit_corp_tag", s.EditCorpTagRequest, s.Ack),
    WriteApi("externalcontact/del_corp_tag", s.DelCorpTagRequest, s.Ack),
    WriteApi("externalcontact/mark_tag", s.MarkTagRequest, s.Ack),
    WriteApi("externalcontact/add_contact_way", s.ContactWayRequest, s.ContactWayCreated, idempotent=False),
    WriteApi("externalcontact/update_contact_way", s.UpdateContactWayRequest, s.Ack),
    WriteApi("externalcontact/del_contact_way", s.DelContactWayRequest, s.Ack),
    WriteApi("externalcontact/close_temp_chat", s.CloseTempChatRequest, s.Ack),
    WriteApi("externalcontact/send_welcome_msg", s.WelcomeMessageRequest, s.Ack),
    WriteApi(
        "externalcontact/add_msg_template", s.MsgTemplateRequest, s.MsgTemplateCreated, idempotent=False
    ),
    WriteApi(
        "externalcontact/group_welcome_template/add",
        s.GroupWelcomeTemplateRequest,
        s.GroupWelcomeTemplateCreated,
        idempotent=False,
    ),
    WriteApi("externalcontact/group_welcome_template/edit", s.EditGroupWelcomeTemplateRequest, s.Ack),
    WriteApi("externalcontact/group_welcome_template/del", s.GroupWelcomeTemplateIdRequest, s.Ack),
    WriteApi("externalcontact/remind_groupmsg_send", s.MsgIdRequest, s.Ack),
    WriteApi("externalcontact/cancel_groupmsg_send", s.MsgIdRequest, s.Ack),
    WriteApi("externalcontact/add_moment_task", s.MomentTaskRequest, s.JobCreated, idempotent=False),
    WriteApi("externalcontact/cancel_moment_task", s.MomentIdRequest, s.Ack),
    WriteApi(
        "externalcontact/transfer_customer", s.TransferCustomerRequest, s.TransferResponse, idempotent=False
    ),
    WriteApi(
        "externalcontact/resigned/transfer_customer",
        s.ResignedTransferCustomerRequest,
        s.TransferResponse,
        idempotent=False,
    ),
    WriteApi("externalcontact/groupchat/transfer", s.GroupChatTransferRequest, s.GroupChatTransferResponse),
    WriteApi(
        "externalcontact/groupchat/onjob_transfer", s.GroupChatTransferRequest, s.GroupChatTransferResponse
    ),
)


def iterate_pages(fetch: Callable[[str], P], *, cursor: str = "") -> Iterator[P]:
    """Yield pages from ``fetch(cursor)`` until WeCom returns an empty ``next_cursor``.

    A cursor that comes back unchanged would loop forever; it ends the iteration instead.
    """
    seen: set[str] = set()
    while True:
        page = fetch(cursor)
        yield page
        if not page.next_cursor or page.next_cursor in seen or page.next_cursor == cursor:
            return
        seen.add(cursor)
        cursor = page.next_cursor


class WeComClient:
    """Typed access to one corp's WeCom APIs through a transport (normally the gateway)."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    # -- plumbing --

    def _get(self, api: str, **params: Any) -> dict[str, Any]:
        clean = {k: v for k, v in params.items() if v is not None}
        return self.transport.call(api, method="GET", params=clean)

    def _post(self, api: str, body: dict[str, Any]) -> dict[str, Any]:
        write = WRITE_APIS.get(api)
        idempotent = write.idempotent if write is not None else True
        return self.transport.call(api, method="POST", body=body, idempotent=idempotent)

    def write(self, api: str, body: dict[str, Any]) -> BaseModel:
        """Send one write API with a body already validated by its request model (the outbox calls this)."""
        spec = WRITE_APIS[api]
        return spec.response.model_validate(self._post(api, spec.request.model_validate(body).body()))

    # -- departments and members --

    def department_list(self, *, id: int | None = None) -> list[s.Department]:
        """``department/list``: the department ``id`` and all below it (default: all visible)."""
        data = self._get("department/list", id=id)
        return [s.Department.model_validate(d) for d in data.get("department", [])]

    def department_simplelist(self, *, id: int | None = None) -> list[s.DepartmentRef]:
        """``department/simplelist``: ids and parents only (cheaper than department/list)."""
        data = self._get("department/simplelist", id=id)
        return [s.DepartmentRef.model_validate(d) for d in data.get("department_id", [])]

    def department_get(self, id: int) -> s.Department:
        """``department/get``: one department."""
        return s.Department.model_validate(self._get("department/get", id=id)["department"])

    def user_get(self, userid: str) -> s.Member:
        """``user/get``: one member."""
        return s.Member.model_validate(self._get("user/get", userid=userid))

    def user_list(self, department_id: int, *, fetch_child: bool = False) -> list[s.Member]:
        """``user/list``: the members of a department (and of its children with ``fetch_child``)."""
        data = self._get("user/list", department_id=department_id, fetch_child=1 if fetch_child else None)
        return [s.Member.model_validate(u) for u in data.get("userlist", [])]

    def user_simplelist(self, department_id: int, *, fetch_child: bool = False) -> list[s.MemberRef]:
        """``user/simplelist``: ids and names of a department's members."""
        data = self._get(
            "user/simplelist", department_id=department_id, fetch_child=1 if fetch_child else None
        )
        return [s.MemberRef.model_validate(u) for u in data.get("userlist", [])]

    def user_list_id(self, *, cursor: str = "", limit: int = 10000) -> s.DepartmentUserPage:
        """``user/list_id``: member–department pairs, ≤10000 a page (needs the contacts-sync secret)."""
        body: dict[str, Any] = {"limit": limit}
        if cursor:
            body["cursor"] = cursor
        return s.DepartmentUserPage.model_validate(self._post("user/list_id", body))

    def iter_user_ids(self, *, cursor: str = "", limit: int = 10000) -> Iterator[s.DepartmentUserPage]:
        """Every page of ``user/list_id``."""
        return iterate_pages(lambda c: self.user_list_id(cursor=c, limit=limit), cursor=cursor)

    # -- customers --

    def get_follow_user_list(self) -> list[str]:
        """``externalcontact/get_follow_user_list``: members with customer-contact permission."""
        return list(self._get("externalcontact/get_follow_user_list").get("follow_user", []))

    def list_customers(self, userid: str) -> list[str]:
        """``externalcontact/list``: the external_userids of one member's customers (not paginated)."""
        return list(self._get("externalcontact/list", userid=userid).get("external_userid", []))

    def get_customer(self, external_userid: str, *, cursor: str = "") -> s.CustomerDetail:
        """``externalcontact/get``: one customer with a page of its follow users (paginated beyond 500)."""
        data = self._get("externalcontact/get", external_userid=external_userid, cursor=cursor or None)
        return s.CustomerDetail.model_validate(data)

    def get_customer_all(self, external_userid: str) -> s.CustomerDetail:
        """``externalcontact/get`` with every page of follow users merged into one answer."""
        pages = iterate_pages(lambda c: self.get_customer(external_userid, cursor=c))
        first = next(pages)
        follow = list(first.follow_user)
        for page in pages:
            follow.extend(page.follow_user)
        return first.model_copy(update={"follow_user": follow, "next_cursor": ""})

    def batch_get_by_user(
        self, userid_list: list[str], *, cursor: str = "", limit: int = 100
    ) -> s.CustomerBatchPage:
        """``externalcontact/batch/get_by_user``: customers of ≤100 members, ≤100 relations a page."""
        if not 1 <= len(userid_list) <= 100:
            raise ValueError("batch/get_by_user takes 1 to 100 userids")
        body = {"userid_list": userid_list, "cursor": cursor, "limit": min(limit, 100)}
        page = s.CustomerBatchPage.model_validate(self._post("externalcontact/batch/get_by_user", body))
        page.cursor = cursor
        return page

    def iter_batch_get_by_user(
        self, userid_list: list[str], *, cursor: str = "", limit: int = 100
    ) -> Iterator[s.CustomerBatchPage]:
        """Every page of ``batch/get_by_user``; each page carries its own cursor (checkpoints)."""
        return iterate_pages(
            lambda c: self.batch_get_by_user(userid_list, cursor=c, limit=limit), cursor=cursor
        )

    def remark(self, request: s.RemarkRequest) -> s.Ack:
        """``externalcontact/remark`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/remark", request.body()))

    # -- corp tags --

    def get_corp_tag_list(
        self, *, tag_id: list[str] | None = None, group_id: list[str] | None = None
    ) -> list[s.CorpTagGroup]:
        """``externalcontact/get_corp_tag_list``: all groups and tags, or the named ones."""
        body: dict[str, Any] = {}
        if tag_id:
            body["tag_id"] = tag_id
        if group_id:
            body["group_id"] = group_id
        data = self._post("externalcontact/get_corp_tag_list", body)
        return [s.CorpTagGroup.model_validate(g) for g in data.get("tag_group", [])]

    def add_corp_tag(self, request: s.AddCorpTagRequest) -> s.CorpTagGroup:
        """``externalcontact/add_corp_tag`` (write: use the outbox)."""
        data = self._post("externalcontact/add_corp_tag", request.body())
        return s.AddCorpTagResponse.model_validate(data).tag_group

    def edit_corp_tag(self, request: s.EditCorpTagRequest) -> s.Ack:
        """``externalcontact/edit_corp_tag`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/edit_corp_tag", request.body()))

    def del_corp_tag(self, request: s.DelCorpTagRequest) -> s.Ack:
        """``externalcontact/del_corp_tag`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/del_corp_tag", request.body()))

    def mark_tag(self, request: s.MarkTagRequest) -> s.Ack:
        """``externalcontact/mark_tag`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/mark_tag", request.body()))

    # -- contact ways --

    def add_contact_way(self, request: s.ContactWayRequest) -> s.ContactWayCreated:
        """``externalcontact/add_contact_way`` (write: use the outbox)."""
        return s.ContactWayCreated.model_validate(
            self._post("externalcontact/add_contact_way", request.body())
        )

    def get_contact_way(self, config_id: str) -> s.ContactWay:
        """``externalcontact/get_contact_way``; the old answer form (a list) is accepted too."""
        data = self._post("externalcontact/get_contact_way", {"config_id": config_id})["contact_way"]
        if isinstance(data, list):
            data = data[0]
        return s.ContactWay.model_validate(data)

    def list_contact_way(
        self,
        *,
        start_time: int | None = None,
        end_time: int | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> s.ContactWayPage:
        """``externalcontact/list_contact_way``: API-made contact ways, ≤1000 a page."""
        body: dict[str, Any] = {"cursor": cursor, "limit": limit}
        if start_time is not None:
            body["start_time"] = start_time
        if end_time is not None:
            body["end_time"] = end_time
        return s.ContactWayPage.model_validate(self._post("externalcontact/list_contact_way", body))

    def iter_contact_ways(
        self, *, start_time: int | None = None, end_time: int | None = None, limit: int = 1000
    ) -> Iterator[s.ContactWayPage]:
        """Every page of ``list_contact_way``."""
        return iterate_pages(
            lambda c: self.list_contact_way(start_time=start_time, end_time=end_time, cursor=c, limit=limit)
        )

    def update_contact_way(self, request: s.UpdateContactWayRequest) -> s.Ack:
        """``externalcontact/update_contact_way`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/update_contact_way", request.body()))

    def del_contact_way(self, config_id: str) -> s.Ack:
        """``externalcontact/del_contact_way`` (write: use the outbox)."""
        body = s.DelContactWayRequest(config_id=config_id).body()
        return s.Ack.model_validate(self._post("externalcontact/del_contact_way", body))

    def close_temp_chat(self, request: s.CloseTempChatRequest) -> s.Ack:
        """``externalcontact/close_temp_chat`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/close_temp_chat", request.body()))

    # -- welcome message --

    def send_welcome_msg(self, request: s.WelcomeMessageRequest) -> s.Ack:
        """``externalcontact/send_welcome_msg`` (write: use the outbox at ``Priority.WELCOME``)."""
        return s.Ack.model_validate(self._post("externalcontact/send_welcome_msg", request.body()))

    # -- group welcome templates (入群欢迎语素材) --

    def add_group_welcome_template(
        self, request: s.GroupWelcomeTemplateRequest
    ) -> s.GroupWelcomeTemplateCreated:
        """``externalcontact/group_welcome_template/add`` (write: use the outbox; not safe to repeat)."""
        data = self._post("externalcontact/group_welcome_template/add", request.body())
        return s.GroupWelcomeTemplateCreated.model_validate(data)

    def edit_group_welcome_template(self, request: s.EditGroupWelcomeTemplateRequest) -> s.Ack:
        """``externalcontact/group_welcome_template/edit`` (write: use the outbox)."""
        return s.Ack.model_validate(self._post("externalcontact/group_welcome_template/edit", request.body()))

    def get_group_welcome_template(self, template_id: str) -> s.GroupWelcomeTemplate:
        """``externalcontact/group_welcome_template/get``: a template's text and attachment."""
        data = self._post("externalcontact/group_welcome_template/get", {"template_id": template_id})
        return s.GroupWelcomeTemplate.model_validate(data)

    def del_group_welcome_template(self, template_id: str) -> s.Ack:
        """``externalcontact/group_welcome_template/del`` (write: use the outbox)."""
        body = s.GroupWelcomeTemplateIdRequest(template_id=template_id).body()
        return s.Ack.model_validate(self._post("externalcontact/group_welcome_template/del", body))

    # -- mass messages --

    def add_msg_template(self, request: s.MsgTemplateRequest) -> s.MsgTemplateCreated:
        """``externalcontact/add_msg_template`` (write: use the outbox)."""
        data = self._post("externalcontact/add_msg_template", request.body())
        return s.MsgTemplateCreated.model_validate(data)

    def get_groupmsg_list_v2(
        self,
        *,
        chat_type: str,
        start_time: int,
        end_time: int,
        creator: str | None = None,
        filter_type: int | None = None,
        cursor: str = "",
        limit: int = 100,
    ) -> s.GroupMsgPage:
        """``externalcontact/get_groupmsg_list_v2``: mass messages in a time range, ≤100 a page."""
        body: dict[str, Any] = {
            "chat_type": chat_type,
            "start_time": start_time,
            "end_time": end_time,
            "cursor": cursor,
            "limit": limit,
        }
        if creator is not None:
            body["creator"] = creator
        if filter_type is not None:
            body["filter_type"] = filter_type
        return s.GroupMsgPage.model_validate(self._post("externalcontact/get_groupmsg_list_v2", body))

    def iter_groupmsg_list(
        self,
        *,
        chat_type: str,
        start_time: int,
        end_time: int,
        creator: str | None = None,
        filter_type: int | None = None,
        limit: int = 100,
    ) -> Iterator[s.GroupMsgPage]:
        """Every page of ``get_groupmsg_list_v2``."""
        return iterate_pages(
            lambda c: self.get_groupmsg_list_v2(
                chat_type=chat_type,
                start_time=start_time,
                end_time=end_time,
                creator=creator,
                filter_type=filter_type,
                cursor=c,
                limit=limit,
            )
        )

    def get_groupmsg_task(self, msgid: str, *, cursor: str = "", limit: int = 1000) -> s.GroupMsgTaskPage:
        """``externalcontact/get_groupmsg_task``: which members sent a mass message, ≤1000 a page."""
        body = {"msgid": msgid, "cursor": cursor, "limit": limit}
        return s.GroupMsgTaskPage.model_validate(self._post("externalcontact/get_groupmsg_task", body))

    def iter_groupmsg_task(self, msgid: str, *, limit: int = 1000) -> Iterator[s.GroupMsgTaskPage]:
        """Every page of ``get_groupmsg_task``."""
        return iterate_pages(lambda c: self.get_groupmsg_task(msgid, cursor=c, limit=limit))

    def get_groupmsg_send_result(
        self, msgid: str, userid: str, *, cursor: str = "", limit: int = 1000
    ) -> s.GroupMsgSendResultPage:
        """``externalcontact/get_groupmsg_send_result``: per-customer delivery of one member's part."""
        body = {"msgid": msgid, "userid": userid, "cursor": cursor, "limit": limit}
        data = self._post("externalcontact/get_groupmsg_send_result", body)
        return s.GroupMsgSendResultPage.model_validate(data)

    def iter_groupmsg_send_result(
        self, msgid: str, userid: str, *, limit: int = 1000
    ) -> Iterator[s.GroupMsgSendResultPage]:
        """Every page of ``get_groupmsg_send_result``."""
        return iterate_pages(lambda c: self.get_groupmsg_send_result(msgid, userid, cursor=c, limit=limit))

    def remind_groupmsg_send(self, msgid: str) -> s.Ack:
        """``externalcontact/remind_groupmsg_send``: ≤3 per message per 24 h (write: outbox)."""
        body = s.MsgIdRequest(msgid=msgid).body()
        return s.Ack.model_validate(self._post("externalcontact/remind_groupmsg_send", body))

    def cancel_groupmsg_send(self, msgid: str) -> s.Ack:
        """``externalcontact/cancel_groupmsg_send`` (write: use the outbox)."""
        body = s.MsgIdRequest(msgid=msgid).body()
        return s.Ack.model_validate(self._post("externalcontact/cancel_groupmsg_send", body))

    # -- media --

    def upload_media(self, media_type: str, upload: Upload) -> s.MediaUploaded:
        """``media/upload``: a temporary media (valid 3 days) for messages: image, voice, video or file."""
        data = self.transport.call("media/upload", method="POST", params={"type": media_type}, upload=upload)
        return s.MediaUploaded.model_validate(data)

    def upload_attachment(
        self, media_type: str, upload: Upload, *, attachment_type: int = 1
    ) -> s.MediaUploaded:
        """``media/upload_attachment``: media for moments (``attachment_type`` 1) or product albums (2)."""
        params = {"media_type": media_type, "attachment_type": attachment_type}
        data = self.transport.call("media/upload_attachment", method="POST", params=params, upload=upload)
        return s.MediaUploaded.model_validate(data)

    # -- moments --

    def add_moment_task(self, request: s.MomentTaskRequest) -> s.JobCreated:
        """``externalcontact/add_moment_task``: an asynchronous job (write: use the outbox)."""
        return s.JobCreated.model_validate(self._post("externalcontact/add_moment_task", request.body()))

    def get_moment_task_result(self, jobid: str) -> s.MomentTaskResult:
        """``externalcontact/get_moment_task_result``."""
        data = self._get("externalcontact/get_moment_task_result", jobid=jobid)
        return s.MomentTaskResult.model_validate(data)

    def get_moment_list(
        self,
        *,
        start_time: int,
        end_time: int,
        creator: str | None = None,
        filter_type: int | None = None,
        cursor: str = "",
        limit: int = 20,
    ) -> s.MomentPage:
        """``externalcontact/get_moment_list``: ≤30 days apart, ≤20 a page."""
        body: dict[str, Any] = {
            "start_time": start_time,
            "end_time": end_time,
            "cursor": cursor,
            "limit": limit,
        }
        if creator is not None:
            body["creator"] = creator
        if filter_type is not None:
            body["filter_type"] = filter_type
        return s.MomentPage.model_validate(self._post("externalcontact/get_moment_list", body))

    def iter_moments(
        self, *, start_time: int, end_time: int, creator: str | None = None, limit: int = 20
    ) -> Iterator[s.MomentPage]:
        """Every page of ``get_moment_list``."""
        return iterate_pages(
            lambda c: self.get_moment_list(
                start_time=start_time, end_time=end_time, creator=creator, cursor=c, limit=limit
            )
        )

    def get_moment_task(self, moment_id: str, *, cursor: str = "", limit: int = 1000) -> s.MomentTaskPage:
        """``externalcontact/get_moment_task``: which members published a moment."""
        body = {"moment_id": moment_id, "cursor": cursor, "limit": limit}
        return s.MomentTaskPage.model_validate(self._post("externalcontact/get_moment_task", body))

    def get_moment_customer_list(
        self, moment_id: str, userid: str, *, cursor: str = "", limit: int = 1000
    ) -> s.MomentCustomerPage:
        """``externalcontact/get_moment_customer_list``: customers who can see a member's moment."""
        body = {"moment_id": moment_id, "userid": userid, "cursor": cursor, "limit": limit}
        return s.MomentCustomerPage.model_validate(
            self._post("externalcontact/get_moment_customer_list", body)
        )

    def get_moment_send_result(
        self, moment_id: str, userid: str, *, cursor: str = "", limit: int = 1000
    ) -> s.MomentCustomerPage:
        """``externalcontact/get_moment_send_result``: customers a member's moment was sent to."""
        body = {"moment_id": moment_id, "userid": userid, "cursor": cursor, "limit": limit}
        return s.MomentCustomerPage.model_validate(self._post("externalcontact/get_moment_send_result", body))

    def get_moment_comments(self, moment_id: str, userid: str) -> s.MomentComments:
        """``externalcontact/get_moment_comments``: comments and likes on a member's moment."""
        body = {"moment_id": moment_id, "userid": userid}
        return s.MomentComments.model_validate(self._post("externalcontact/get_moment_comments", body))

    def cancel_moment_task(self, moment_id: str) -> s.Ack:
        """``externalcontact/cancel_moment_task`` (write: use the outbox)."""
        body = s.MomentIdRequest(moment_id=moment_id).body()
        return s.Ack.model_validate(self._post("externalcontact/cancel_moment_task", body))

    # -- customer groups --

    def groupchat_list(
        self,
        *,
        status_filter: int = 0,
        owner_userids: list[str] | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> s.GroupChatPage:
        """``externalcontact/groupchat/list``: ≤1000 a page; without owners WeCom may answer 81017."""
        body: dict[str, Any] = {"status_filter": status_filter, "cursor": cursor, "limit": limit}
        if owner_userids:
            body["owner_filter"] = {"userid_list": owner_userids}
        return s.GroupChatPage.model_validate(self._post("externalcontact/groupchat/list", body))

    def iter_groupchats(
        self,
        *,
        status_filter: int = 0,
        owner_userids: list[str] | None = None,
        cursor: str = "",
        limit: int = 1000,
    ) -> Iterator[s.GroupChatPage]:
        """Every page of ``groupchat/list``."""
        return iterate_pages(
            lambda c: self.groupchat_list(
                status_filter=status_filter, owner_userids=owner_userids, cursor=c, limit=limit
            ),
            cursor=cursor,
        )

    def groupchat_get(self, chat_id: str, *, need_name: bool = True) -> s.GroupChat:
        """``externalcontact/groupchat/get``: a group with its members (names with ``need_name``)."""
        body = {"chat_id": chat_id, "need_name": 1 if need_name else 0}
        return s.GroupChat.model_validate(self._post("externalcontact/groupchat/get", body)["group_chat"])

    # -- transfers --

    def transfer_customer(self, request: s.TransferCustomerRequest) -> s.TransferResponse:
        """``externalcontact/transfer_customer`` (在职继承; write: use the outbox)."""
        return s.TransferResponse.model_validate(
            self._post("externalcontact/transfer_customer", request.body())
        )

    def transfer_result(
        self, handover_userid: str, takeover_userid: str, *, cursor: str = ""
    ) -> s.TransferResultPage:
        """``externalcontact/transfer_result``."""
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "cursor": cursor}
        return s.TransferResultPage.model_validate(self._post("externalcontact/transfer_result", body))

    def iter_transfer_results(
        self, handover_userid: str, takeover_userid: str
    ) -> Iterator[s.TransferResultPage]:
        """Every page of ``transfer_result``."""
        return iterate_pages(lambda c: self.transfer_result(handover_userid, takeover_userid, cursor=c))

    def resigned_transfer_customer(self, request: s.ResignedTransferCustomerRequest) -> s.TransferResponse:
        """``externalcontact/resigned/transfer_customer`` (离职继承; write: use the outbox)."""
        data = self._post("externalcontact/resigned/transfer_customer", request.body())
        return s.TransferResponse.model_validate(data)

    def resigned_transfer_result(
        self, handover_userid: str, takeover_userid: str, *, cursor: str = ""
    ) -> s.TransferResultPage:
        """``externalcontact/resigned/transfer_result``."""
        body = {"handover_userid": handover_userid, "takeover_userid": takeover_userid, "cursor": cursor}
        return s.TransferResultPage.model_validate(
            self._post("externalcontact/resigned/transfer_result", body)
        )

    def iter_resigned_transfer_results(
        self, handover_userid: str, takeover_userid: str
    ) -> Iterator[s.TransferResultPage]:
        """Every page of ``resigned/transfer_result``."""
        return iterate_pages(
            lambda c: self.resigned_transfer_result(handover_userid, takeover_userid, cursor=c)
        )

    def get_unassigned_list(self, *, cursor: str = "", page_size: int = 1000) -> s.UnassignedPage:
        """``externalcontact/get_unassigned_list``: customers of members who left, ≤1000 a page."""
        body = {"cursor": cursor, "page_size": page_size}
        return s.UnassignedPage.model_validate(self._post("externalcontact/get_unassigned_list", body))

    def iter_unassigned(self, *, page_size: int = 1000) -> Iterator[s.UnassignedPage]:
        """Every page of ``get_unassigned_list``."""
        return iterate_pages(lambda c: self.get_unassigned_list(cursor=c, page_size=page_size))

    def groupchat_transfer(self, request: s.GroupChatTransferRequest) -> s.GroupChatTransferResponse:
        """``externalcontact/groupchat/transfer`` (groups of members who left; write: use the outbox)."""
        data = self._post("externalcontact/groupchat/transfer", request.body())
        return s.GroupChatTransferResponse.model_validate(data)

    def groupchat_onjob_transfer(self, request: s.GroupChatTransferRequest) -> s.GroupChatTransferResponse:
        """``externalcontact/groupchat/onjob_transfer`` (groups of current members; write: use the outbox)."""
        data = self._post("externalcontact/groupchat/onjob_transfer", request.body())
        return s.GroupChatTransferResponse.model_validate(data)

    # -- statistics --

    def get_user_behavior_data(
        self,
        *,
        start_time: int,
        end_time: int,
        userid: list[str] | None = None,
        partyid: list[int] | None = None,
    ) -> list[s.BehaviorData]:
        """``externalcontact/get_user_behavior_data``: per day, ≤30 days, the last 180 days only."""
        body: dict[str, Any] = {"start_time": start_time, "end_time": end_time}
        if userid:
            body["userid"] = userid
        if partyid:
            body["partyid"] = partyid
        data = self._post("externalcontact/get_user_behavior_data", body)
        return [s.BehaviorData.model_validate(d) for d in data.get("behavior_data", [])]

    def groupchat_statistic(
        self,
        *,
        day_begin_time: int,
        day_end_time: int | None = None,
        owner_userids: list[str] | None = None,
        order_by: int = 1,
        order_asc: int = 0,
        offset: int = 0,
        limit: int = 500,
    ) -> s.GroupChatStatPage:
        """``externalcontact/groupchat/statistic``: group statistics by owner, offset-paginated (≤1000)."""
        body: dict[str, Any] = {
            "day_begin_time": day_begin_time,
            "order_by": order_by,
            "order_asc": order_asc,
            "offset": offset,
            "limit": limit,
        }
        if day_end_time is not None:
            body["day_end_time"] = day_end_time
        if owner_userids:
            body["owner_filter"] = {"userid_list": owner_userids}
        return s.GroupChatStatPage.model_validate(self._post("externalcontact/groupchat/statistic", body))

    def groupchat_statistic_group_by_day(
        self, *, day_begin_time: int, day_end_time: int | None = None, owner_userids: list[str] | None = None
    ) -> list[s.GroupChatStat]:
        """``externalcontact/groupchat/statistic_group_by_day``: group statistics per day."""
        body: dict[str, Any] = {"day_begin_time": day_begin_time}
        if day_end_time is not None:
            body["day_end_time"] = day_end_time
        if owner_userids:
            body["owner_filter"] = {"userid_list": owner_userids}
        data = self._post("externalcontact/groupchat/statistic_group_by_day", body)
        return [s.GroupChatStat.model_validate(i) for i in data.get("items", [])]


def client_for(corp: Corp, *, priority: Priority | None = None, max_wait: float | None = None) -> WeComClient:
    """A client for ``corp`` whose calls queue at ``priority`` (default ``Priority.EVENT``).

    ``max_wait`` is how long a call may wait for quota before raising ``RateLimited`` (default per priority).
    """
    from siyu.wecom.gateway import Gateway
    from siyu.wecom.limits import Priority

    return WeComClient(Gateway(corp, priority=priority or Priority.EVENT, max_wait=max_wait))
