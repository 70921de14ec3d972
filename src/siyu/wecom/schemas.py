"""Typed requests and responses of the WeCom APIs the client speaks (wecom-api.md §4, WeCom's contacts APIs).

Responses ignore fields they do not know (WeCom adds fields over time) and default the ones WeCom leaves out.
Requests are dumped with ``exclude_none`` so optional fields are only sent when set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WeComModel(BaseModel):
    """Base of every response model: unknown fields are ignored, not errors."""

    model_config = ConfigDict(extra="ignore")


class WeComRequest(BaseModel):
    """Base of every request body: unknown fields are refused so a typo never reaches WeCom."""

    model_config = ConfigDict(extra="forbid")

    def body(self) -> dict[str, Any]:
        """The JSON body WeCom expects: fields left as None are not sent."""
        return self.model_dump(mode="json", exclude_none=True)


class Page(WeComModel):
    """A page of a cursor-paginated list; an empty ``next_cursor`` means the last page."""

    next_cursor: str = ""


class Ack(WeComModel):
    """The answer of a write that returns nothing but ``errcode`` 0."""

    errcode: int = 0
    errmsg: str = "ok"


# --- Departments and members (通讯录: department/list, department/simplelist, department/get, user/*) ---


class Department(WeComModel):
    """A department (``department/list``, ``department/get``); ``parentid`` of the root is 0."""

    id: int
    name: str = ""
    name_en: str = ""
    parentid: int = 0
    order: int = 0
    department_leader: list[str] = Field(default_factory=list)


class DepartmentRef(WeComModel):
    """A department without its name (``department/simplelist``)."""

    id: int
    parentid: int = 0
    order: int = 0


class Member(WeComModel):
    """A member (``user/get``, ``user/list``). ``status``: 1 active, 2 disabled, 4 not activated, 5 left."""

    userid: str
    name: str = ""
    department: list[int] = Field(default_factory=list)
    order: list[int] = Field(default_factory=list)
    main_department: int | None = None
    position: str = ""
    # WeCom sends gender as a string ("0" unknown, "1" male, "2" female).
    gender: str = ""
    avatar: str = ""
    thumb_avatar: str = ""
    alias: str = ""
    status: int = 1
    is_leader_in_dept: list[int] = Field(default_factory=list)
    direct_leader: list[str] = Field(default_factory=list)
    open_userid: str = ""
    external_position: str = ""

    @field_validator("gender", mode="before")
    @classmethod
    def _gender_as_text(cls, value: Any) -> str:
        return "" if value is None else str(value)


class MemberRef(WeComModel):
    """A member's id and name (``user/simplelist``)."""

    userid: str
    name: str = ""
    department: list[int] = Field(default_factory=list)
    open_userid: str = ""


class DepartmentUser(WeComModel):
    """One member–department pair (``user/list_id``); a member of several departments recurs."""

    userid: str
    department: int


class DepartmentUserPage(Page):
    """A page of ``user/list_id``."""

    dept_user: list[DepartmentUser] = Field(default_factory=list)


# --- Customers (externalcontact/get_follow_user_list, list, get, batch/get_by_user, remark) ---


class ExternalContact(WeComModel):
    """A customer's profile. ``type`` 1 WeChat, 2 WeCom user; ``gender`` 0 unknown, 1 male, 2 female."""

    external_userid: str
    name: str = ""
    position: str = ""
    avatar: str = ""
    corp_name: str = ""
    corp_full_name: str = ""
    type: int = 1
    gender: int = 0
    unionid: str = ""
    external_profile: dict[str, Any] = Field(default_factory=dict)


class FollowUserTag(WeComModel):
    """A tag on a relation (``externalcontact/get``). ``type``: 1 corp, 2 personal (no id), 3 rule."""

    group_name: str = ""
    tag_name: str = ""
    tag_id: str = ""
    type: int = 1


class FollowUser(WeComModel):
    """A member who has the customer (``externalcontact/get``): remark, tags, how and when they were added."""

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tags: list[FollowUserTag] = Field(default_factory=list)
    remark_corp_name: str = ""
    remark_mobiles: list[str] = Field(default_factory=list)
    oper_userid: str = ""
    add_way: int = 0
    state: str = ""
    wechat_channels: dict[str, Any] | None = None


class CustomerDetail(Page):
    """``externalcontact/get``: the profile and the members who follow the customer (paged beyond 500)."""

    external_contact: ExternalContact
    follow_user: list[FollowUser] = Field(default_factory=list)


class FollowInfo(WeComModel):
    """The relation half of ``batch/get_by_user``: like ``FollowUser`` but tags are bare ids."""

    userid: str
    remark: str = ""
    description: str = ""
    createtime: int = 0
    tag_id: list[str] = Field(default_factory=list)
    remark_corp_name: str = ""
    remark_mobiles: list[str] = Field(default_factory=list)
    oper_userid: str = ""
    add_way: int = 0
    state: str = ""
    wechat_channels: dict[str, Any] | None = None


class CustomerRelation(WeComModel):
    """One customer–member relation from ``batch/get_by_user``."""

    external_contact: ExternalContact
    follow_info: FollowInfo


class CustomerBatchPage(Page):
    """A page of ``batch/get_by_user``; ``cursor`` is the one that fetched it (for resumable checkpoints)."""

    external_contact_list: list[CustomerRelation] = Field(default_factory=list)
    cursor: str = ""


class RemarkRequest(WeComRequest):
    """``externalcontact/remark``: remark ≤20 chars, description ≤150, remark_company ≤20 (§4.1)."""

    userid: str
    external_userid: str
    remark: str | None = Field(default=None, max_length=20)
    description: str | None = Field(default=None, max_length=150)
    remark_company: str | None = Field(default=None, max_length=20)
    remark_mobiles: list[str] | None = None
    remark_pic_mediaid: str | None = None


# --- Corp tags (externalcontact/get_corp_tag_list, add/edit/del_corp_tag, mark_tag) ---


class CorpTag(WeComModel):
    """A corp tag; ``order``: larger sorts first; ``deleted`` only when queried by id."""

    id: str
    name: str = ""
    create_time: int = 0
    order: int = 0
    deleted: bool = False


class CorpTagGroup(WeComModel):
    """A corp tag group with its tags."""

    group_id: str
    group_name: str = ""
    create_time: int = 0
    order: int = 0
    deleted: bool = False
    tag: list[CorpTag] = Field(default_factory=list)


class NewCorpTag(WeComRequest):
    """A tag to create; names ≤30 chars (wecom-api.md §4.2)."""

    name: str = Field(max_length=30)
    order: int | None = None


class AddCorpTagRequest(WeComRequest):
    """``add_corp_tag``: into ``group_id``, or into the group named ``group_name`` (created if new)."""

    group_id: str | None = None
    group_name: str | None = Field(default=None, max_length=30)
    order: int | None = None
    tag: list[NewCorpTag] = Field(min_length=1)
    agentid: int | None = None


class EditCorpTagRequest(WeComRequest):
    """``edit_corp_tag``: rename or reorder a tag or a group (``id`` is either)."""

    id: str
    name: str | None = Field(default=None, max_length=30)
    order: int | None = None
    agentid: int | None = None


class DelCorpTagRequest(WeComRequest):
    """``del_corp_tag``: tags and/or whole groups; not both empty."""

    tag_id: list[str] = Field(default_factory=list)
    group_id: list[str] = Field(default_factory=list)
    agentid: int | None = None


class MarkTagRequest(WeComRequest):
    """``mark_tag``: add and remove corp tags on one relation; not both empty."""

    userid: str
    external_userid: str
    add_tag: list[str] = Field(default_factory=list)
    remove_tag: list[str] = Field(default_factory=list)


class AddCorpTagResponse(WeComModel):
    """``add_corp_tag``: the group with the tags just created."""

    tag_group: CorpTagGroup


# --- 「联系我」 contact ways ---


class ContactWayRequest(WeComRequest):
    """``add_contact_way``: ``type`` 1 single / 2 multi; ``scene`` 1 mini-program / 2 QR; state ≤30 chars."""

    type: Literal[1, 2]
    scene: Literal[1, 2]
    style: int | None = None
    remark: str | None = Field(default=None, max_length=30)
    skip_verify: bool | None = None
    state: str | None = Field(default=None, max_length=30)
    user: list[str] | None = None
    party: list[int] | None = None
    is_temp: bool | None = None
    expires_in: int | None = None
    chat_expires_in: int | None = None
    unionid: str | None = None
    is_exclusive: bool | None = None
    conclusions: dict[str, Any] | None = None


class UpdateContactWayRequest(WeComRequest):
    """``update_contact_way``: ``user`` and ``party`` replace the previous lists."""

    config_id: str
    remark: str | None = Field(default=None, max_length=30)
    skip_verify: bool | None = None
    style: int | None = None
    state: str | None = Field(default=None, max_length=30)
    user: list[str] | None = None
    party: list[int] | None = None
    expires_in: int | None = None
    chat_expires_in: int | None = None
    unionid: str | None = None
    conclusions: dict[str, Any] | None = None


class DelContactWayRequest(WeComRequest):
    """``del_contact_way``."""

    config_id: str


class CloseTempChatRequest(WeComRequest):
    """``close_temp_chat``: end a temporary session."""

    userid: str
    external_userid: str


class ContactWayCreated(WeComModel):
    """``add_contact_way``: persist ``config_id``: API-made configs are not shown in WeCom's console."""

    config_id: str
    qr_code: str = ""


class ContactWay(WeComModel):
    """A contact way as ``get_contact_way`` returns it."""

    config_id: str
    type: int = 0
    scene: int = 0
    style: int = 0
    remark: str = ""
    skip_verify: bool = True
    state: str = ""
    qr_code: str = ""
    user: list[str] = Field(default_factory=list)
    party: list[int] = Field(default_factory=list)
    is_temp: bool = False
    expires_in: int = 0
    chat_expires_in: int = 0
    unionid: str = ""
    conclusions: dict[str, Any] = Field(default_factory=dict)


class ContactWayRef(WeComModel):
    """A contact way id from ``list_contact_way``."""

    config_id: str


class ContactWayPage(Page):
    """A page of ``list_contact_way``."""

    contact_way: list[ContactWayRef] = Field(default_factory=list)


# --- Messages: welcome, mass messages, moments ---


class Text(WeComRequest):
    """A text part; content ≤4000 bytes."""

    content: str


class Attachment(WeComRequest):
    """An attachment: ``msgtype`` names which one of the objects is set (wecom-api.md §4.4)."""

    msgtype: Literal["image", "link", "miniprogram", "video", "file"]
    image: dict[str, Any] | None = None
    link: dict[str, Any] | None = None
    miniprogram: dict[str, Any] | None = None
    video: dict[str, Any] | None = None
    file: dict[str, Any] | None = None


class WelcomeMessageRequest(WeComRequest):
    """``send_welcome_msg``: within 20 s of the add event, once; ≤9 attachments."""

    welcome_code: str
    text: Text | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=9)


class MsgTemplateRequest(WeComRequest):
    """``add_msg_template`` (企业群发): a task members confirm in their client; ≤9 attachments."""

    chat_type: Literal["single", "group"] = "single"
    external_userid: list[str] | None = Field(default=None, max_length=10000)
    chat_id_list: list[str] | None = Field(default=None, max_length=2000)
    tag_filter: dict[str, Any] | None = None
    sender: str | None = None
    allow_select: bool | None = None
    text: Text | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=9)


class MsgTemplateCreated(WeComModel):
    """``add_msg_template``: the task id and the customers it cannot reach."""

    msgid: str
    fail_list: list[str] = Field(default_factory=list)


class WelcomeImage(WeComRequest):
    """An image attachment: ``media_id`` (素材管理) or ``pic_url`` (上传图片); WeCom uses media_id if both."""

    media_id: str | None = None
    pic_url: str | None = Field(default=None, max_length=2048)


class WelcomeLink(WeComRequest):
    """A link attachment (图文): title ≤128 bytes, desc ≤512 bytes, urls ≤2048 bytes."""

    title: str
    url: str = Field(max_length=2048)
    picurl: str | None = Field(default=None, max_length=2048)
    desc: str | None = None


class WelcomeMiniprogram(WeComRequest):
    """A mini-program card: title ≤64 bytes, a cover by media_id, the corp's mini-program appid and page."""

    title: str
    pic_media_id: str
    appid: str
    page: str


class WelcomeMedia(WeComRequest):
    """A file or video attachment, by media_id (素材管理)."""

    media_id: str


class GroupWelcomeContent(WeComRequest):
    """What a group welcome template says (DOC-92366): text ≤3000 bytes with ``%NICKNAME%`` placeholders,
    and at most one other part (WeCom keeps the first of image, link, miniprogram, file, video)."""

    text: Text | None = None
    image: WelcomeImage | None = None
    link: WelcomeLink | None = None
    miniprogram: WelcomeMiniprogram | None = None
    file: WelcomeMedia | None = None
    video: WelcomeMedia | None = None


class GroupWelcomeTemplateRequest(GroupWelcomeContent):
    """``group_welcome_template/add``: ``notify`` 1 (default) tells members to apply it to their groups."""

    agentid: int | None = None
    notify: Literal[0, 1] | None = None


class EditGroupWelcomeTemplateRequest(GroupWelcomeContent):
    """``group_welcome_template/edit``: only templates this app created."""

    template_id: str
    agentid: int | None = None


class GroupWelcomeTemplateIdRequest(WeComRequest):
    """``group_welcome_template/del`` (and ``get``, which takes no agentid)."""

    template_id: str
    agentid: int | None = None


class GroupWelcomeTemplateCreated(WeComModel):
    """``group_welcome_template/add``: the new template's id."""

    template_id: str


class GroupWelcomeTemplate(WeComModel):
    """``group_welcome_template/get``: the template's parts (images come back as ``pic_url``)."""

    text: dict[str, Any] | None = None
    image: dict[str, Any] | None = None
    link: dict[str, Any] | None = None
    miniprogram: dict[str, Any] | None = None
    file: dict[str, Any] | None = None
    video: dict[str, Any] | None = None


class MsgIdRequest(WeComRequest):
    """``remind_groupmsg_send`` / ``cancel_groupmsg_send``."""

    msgid: str


class GroupMsg(WeComModel):
    """A mass message from ``get_groupmsg_list_v2``; ``create_type`` 0 corp, 1 member."""

    msgid: str
    creator: str = ""
    # The doc sample types create_time as a string; accept both.
    create_time: str = ""
    create_type: int = 0
    text: dict[str, Any] | None = None
    attachments: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("create_time", mode="before")
    @classmethod
    def _time_as_text(cls, value: Any) -> str:
        return "" if value is None else str(value)


class GroupMsgPage(Page):
    """A page of ``get_groupmsg_list_v2``."""

    group_msg_list: list[GroupMsg] = Field(default_factory=list)


class GroupMsgTask(WeComModel):
    """A member's part of a mass message; ``status`` 0 unsent, 2 sent."""

    userid: str
    status: int = 0
    send_time: int | None = None


class GroupMsgTaskPage(Page):
    """A page of ``get_groupmsg_task``."""

    task_list: list[GroupMsgTask] = Field(default_factory=list)


class GroupMsgSendResult(WeComModel):
    """Delivery to one customer or group: 0 unsent, 1 sent, 2 not a friend, 3 over the receive quota."""

    external_userid: str = ""
    chat_id: str = ""
    userid: str = ""
    status: int = 0
    send_time: int | None = None


class GroupMsgSendResultPage(Page):
    """A page of ``get_groupmsg_send_result``."""

    send_list: list[GroupMsgSendResult] = Field(default_factory=list)


class MediaUploaded(WeComModel):
    """``media/upload`` / ``media/upload_attachment``: the media id (``created_at`` is text in the first)."""

    type: str = ""
    media_id: str
    created_at: str = ""

    @field_validator("created_at", mode="before")
    @classmethod
    def _time_as_text(cls, value: Any) -> str:
        return "" if value is None else str(value)


class MomentTaskRequest(WeComRequest):
    """``add_moment_task``: up to 9 images, or 1 video, or 1 link (one kind only)."""

    text: Text | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=9)
    visible_range: dict[str, Any] | None = None


class MomentIdRequest(WeComRequest):
    """``cancel_moment_task``."""

    moment_id: str


class JobCreated(WeComModel):
    """An asynchronous WeCom job id (valid 24 h)."""

    jobid: str


class MomentTaskOutcome(WeComModel):
    """The result of a finished moment job."""

    errcode: int = 0
    errmsg: str = ""
    moment_id: str = ""
    invalid_sender_list: dict[str, Any] = Field(default_factory=dict)
    invalid_external_contact_list: dict[str, Any] = Field(default_factory=dict)


class MomentTaskResult(WeComModel):
    """``get_moment_task_result``: ``status`` 1 started, 2 running, 3 finished (``result`` set only then)."""

    status: int
    type: str = ""
    result: MomentTaskOutcome | None = None


class Moment(WeComModel):
    """A moment from ``get_moment_list``; ``create_type`` 0 corp, 1 member."""

    moment_id: str
    creator: str = ""
    create_time: int = 0
    create_type: int = 0
    visible_type: int = 0
    text: dict[str, Any] | None = None
    image: list[dict[str, Any]] = Field(default_factory=list)
    video: dict[str, Any] | None = None
    link: dict[str, Any] | None = None
    location: dict[str, Any] | None = None


class MomentPage(Page):
    """A page of ``get_moment_list``."""

    moment_list: list[Moment] = Field(default_factory=list)


class MomentTask(WeComModel):
    """A member's publishing state of a moment: 0 not published, 1 published."""

    userid: str
    publish_status: int = 0


class MomentTaskPage(Page):
    """A page of ``get_moment_task``."""

    task_list: list[MomentTask] = Field(default_factory=list)


class MomentCustomer(WeComModel):
    """A customer who can see (or was sent) a moment."""

    userid: str = ""
    external_userid: str


class MomentCustomerPage(Page):
    """A page of ``get_moment_customer_list`` / ``get_moment_send_result``."""

    customer_list: list[MomentCustomer] = Field(default_factory=list)


class MomentInteraction(WeComModel):
    """A comment or like on a moment."""

    external_userid: str = ""
    userid: str = ""
    create_time: int = 0


class MomentComments(WeComModel):
    """``get_moment_comments``."""

    comment_list: list[MomentInteraction] = Field(default_factory=list)
    like_list: list[MomentInteraction] = Field(default_factory=list)


# --- Customer groups ---


class GroupChatRef(WeComModel):
    """A group from ``groupchat/list``; ``status`` 0 normal, 1–3 resigned-owner inheritance states."""

    chat_id: str
    status: int = 0


class GroupChatPage(Page):
    """A page of ``groupchat/list``."""

    group_chat_list: list[GroupChatRef] = Field(default_factory=list)


class GroupChatMember(WeComModel):
    """A group member: ``type`` 1 staff, 2 customer; ``join_scene`` 1 invited, 2 link, 3 QR code."""

    userid: str
    type: int = 1
    unionid: str = ""
    join_time: int = 0
    join_scene: int = 0
    invitor: dict[str, Any] | None = None
    group_nickname: str = ""
    name: str = ""


class GroupChatAdmin(WeComModel):
    """A group administrator."""

    userid: str


class GroupChat(WeComModel):
    """``groupchat/get``: the group, its members and ``member_version`` (compare with CurMemVer)."""

    chat_id: str
    name: str = ""
    owner: str = ""
    create_time: int = 0
    notice: str = ""
    member_list: list[GroupChatMember] = Field(default_factory=list)
    admin_list: list[GroupChatAdmin] = Field(default_factory=list)
    member_version: str = ""


# --- Transfers (在职继承 / 离职继承) ---


class TransferCustomerRequest(WeComRequest):
    """``transfer_customer`` (members still employed): ≤100 customers, message ≤200 chars."""

    handover_userid: str
    takeover_userid: str
    external_userid: list[str] = Field(min_length=1, max_length=100)
    transfer_success_msg: str | None = Field(default=None, max_length=200)


class ResignedTransferCustomerRequest(WeComRequest):
    """``resigned/transfer_customer`` (members who left): ≤100 customers."""

    handover_userid: str
    takeover_userid: str
    external_userid: list[str] = Field(min_length=1, max_length=100)


class TransferOutcome(WeComModel):
    """Per-customer answer of a transfer: 0 means started (completes after 24 h), not done."""

    external_userid: str
    errcode: int = 0


class TransferResponse(WeComModel):
    """Answer of ``transfer_customer`` / ``resigned/transfer_customer``."""

    customer: list[TransferOutcome] = Field(default_factory=list)


class TransferResult(WeComModel):
    """``status`` 1 done, 2 waiting, 3 refused by the customer, 4 takeover at capacity."""

    external_userid: str
    status: int
    takeover_time: int = 0


class TransferResultPage(Page):
    """A page of ``transfer_result`` / ``resigned/transfer_result``."""

    customer: list[TransferResult] = Field(default_factory=list)


class UnassignedCustomer(WeComModel):
    """A customer of a member who left, waiting to be assigned."""

    handover_userid: str
    external_userid: str
    dimission_time: int = 0


class UnassignedPage(Page):
    """A page of ``get_unassigned_list``."""

    info: list[UnassignedCustomer] = Field(default_factory=list)
    is_last: bool = True


class GroupChatTransferRequest(WeComRequest):
    """``groupchat/transfer`` and ``groupchat/onjob_transfer``: 1–100 groups to a new owner."""

    chat_id_list: list[str] = Field(min_length=1, max_length=100)
    new_owner: str


class FailedChat(WeComModel):
    """A group a transfer could not move."""

    chat_id: str
    errcode: int = 0
    errmsg: str = ""


class GroupChatTransferResponse(WeComModel):
    """Answer of a group transfer."""

    failed_chat_list: list[FailedChat] = Field(default_factory=list)


# --- Statistics ---


class BehaviorData(WeComModel):
    """One day of a member's (or members' aggregated) customer-contact statistics."""

    stat_time: int
    chat_cnt: int = 0
    message_cnt: int = 0
    reply_percentage: float | None = None
    avg_reply_time: int | None = None
    negative_feedback_cnt: int = 0
    new_apply_cnt: int = 0
    new_contact_cnt: int = 0


class GroupChatStatData(WeComModel):
    """Group statistics of one owner or one day."""

    new_chat_cnt: int = 0
    chat_total: int = 0
    chat_has_msg: int = 0
    new_member_cnt: int = 0
    member_total: int = 0
    member_has_msg: int = 0
    msg_total: int = 0
    migrate_trainee_chat_cnt: int = 0


class GroupChatStat(WeComModel):
    """A row of ``groupchat/statistic`` (by ``owner``) or ``statistic_group_by_day`` (by ``stat_time``)."""

    owner: str = ""
    stat_time: int = 0
    data: GroupChatStatData = Field(default_factory=GroupChatStatData)


class GroupChatStatPage(WeComModel):
    """``groupchat/statistic``: offset-paginated."""

    total: int = 0
    next_offset: int = 0
    items: list[GroupChatStat] = Field(default_factory=list)
