"""The typed client: WeCom's paths, parameters and JSON shapes (wecom-api.md §4), cursors, errcodes."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import respx
from pydantic import ValidationError

from siyu.wecom import errors, tokens
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient, client_for, iterate_pages
from siyu.wecom.gateway import Gateway
from siyu.wecom.limits import Priority
from tests.wecom.outbound_support import (
    BASE,
    SECRET,
    TOKEN,
    err,
    json_response,
    make_wecom_corp,
    ok,
    token_answer,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _wecom_base(settings):
    settings.WECOM_API_BASE = BASE
    tokens.forget_cached()
    yield
    tokens.forget_cached()


@pytest.fixture
def wecom(respx_mock: respx.MockRouter) -> respx.MockRouter:
    respx_mock.get(BASE + "gettoken").mock(return_value=token_answer())
    return respx_mock


@pytest.fixture
def client(db: None) -> WeComClient:
    return WeComClient(Gateway(make_wecom_corp(), priority=Priority.USER, sleep=lambda _s: None))


def body_of(route: respx.Route, n: int = -1) -> dict:
    return json.loads(route.calls[n].request.content)


def test_token_goes_in_the_query_and_corpid_secret_to_gettoken(wecom, client) -> None:
    # given
    route = wecom.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(ok(follow_user=["zhangsan", "lissi"]))
    )
    # when
    users = client.get_follow_user_list()
    # then
    assert users == ["zhangsan", "lissi"]
    assert route.calls.last.request.url.params["access_token"] == TOKEN
    gettoken = wecom.routes[0].calls.last.request.url.params
    assert gettoken["corpsecret"] == SECRET
    assert gettoken["corpid"].startswith("wwout")


def test_get_customer_parses_the_doc_sample(wecom, client) -> None:
    # given: the DOC-92114 sample
    sample = ok(
        external_contact={
            "external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA",
            "name": "李四",
            "position": "Manager",
            "avatar": "http://p.qlogo.cn/bizmail/IcsdgagqefergqerhewSdage/0",
            "corp_name": "腾讯",
            "corp_full_name": "腾讯科技有限公司",
            "type": 2,
            "gender": 1,
            "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
            "external_profile": {
                "external_attr": [{"type": 0, "name": "文本名称", "text": {"value": "文本"}}]
            },
        },
        follow_user=[
            {
                "userid": "rocky",
                "remark": "李部长",
                "description": "对接采购事务",
                "createtime": 1525779812,
                "tags": [
                    {
                        "group_name": "标签分组名称",
                        "tag_name": "标签名称",
                        "tag_id": "etAJ2GCAAAXtWyujaWJHDDGi0mACHAAA",
                        "type": 1,
                    },
                    {"group_name": "标签分组名称", "tag_name": "标签名称", "type": 2},
                ],
                "remark_corp_name": "腾讯科技",
                "remark_mobiles": ["13800000001", "13000000002"],
                "oper_userid": "rocky",
                "add_way": 1,
            },
            {
                "userid": "tommy",
                "remark": "李总",
                "description": "采购问题咨询",
                "createtime": 1525881637,
                "state": "外联二维码1",
                "oper_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA",
                "add_way": 3,
            },
        ],
        next_cursor="",
    )
    route = wecom.get(BASE + "externalcontact/get").mock(return_value=json_response(sample))
    # when
    detail = client.get_customer("woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA")
    # then
    assert route.calls.last.request.url.params["external_userid"] == "woAJ2GCAAAXtWyujaWJHDDGi0mACHAAA"
    assert "cursor" not in route.calls.last.request.url.params
    assert detail.external_contact.name == "李四" and detail.external_contact.type == 2
    rocky, tommy = detail.follow_user
    assert [t.tag_id for t in rocky.tags] == ["etAJ2GCAAAXtWyujaWJHDDGi0mACHAAA", ""]
    assert rocky.tags[1].type == 2
    assert tommy.state == "外联二维码1" and tommy.add_way == 3 and tommy.tags == []


def test_get_customer_all_follows_the_follow_user_cursor(wecom, client) -> None:
    # given: more than 500 follow users come in pages
    contact = {"external_userid": "wmX", "name": "王五"}
    route = wecom.get(BASE + "externalcontact/get").mock(
        side_effect=[
            json_response(ok(external_contact=contact, follow_user=[{"userid": "a"}], next_cursor="C2")),
            json_response(ok(external_contact=contact, follow_user=[{"userid": "b"}], next_cursor="")),
        ]
    )
    # when
    detail = client.get_customer_all("wmX")
    # then
    assert [f.userid for f in detail.follow_user] == ["a", "b"]
    assert route.calls[1].request.url.params["cursor"] == "C2"


def relation(ext: str, userid: str) -> dict:
    return {
        "external_contact": {"external_userid": ext, "name": ext, "type": 1},
        "follow_info": {"userid": userid, "remark": "", "createtime": 1, "tag_id": ["et1"], "add_way": 1},
    }


def test_batch_get_by_user_iterates_cursors_and_reports_each_page_cursor(wecom, client) -> None:
    # given: three pages
    route = wecom.post(BASE + "externalcontact/batch/get_by_user").mock(
        side_effect=[
            json_response(ok(external_contact_list=[relation("wm1", "zhangsan")], next_cursor="P2")),
            json_response(ok(external_contact_list=[relation("wm2", "lisi")], next_cursor="P3")),
            json_response(ok(external_contact_list=[relation("wm3", "lisi")], next_cursor="")),
        ]
    )
    # when
    pages = list(client.iter_batch_get_by_user(["zhangsan", "lisi"]))
    # then
    assert [p.cursor for p in pages] == ["", "P2", "P3"]
    assert [r.external_contact.external_userid for p in pages for r in p.external_contact_list] == [
        "wm1",
        "wm2",
        "wm3",
    ]
    assert pages[0].external_contact_list[0].follow_info.tag_id == ["et1"]
    assert [body_of(route, i) for i in range(3)] == [
        {"userid_list": ["zhangsan", "lisi"], "cursor": c, "limit": 100} for c in ("", "P2", "P3")
    ]


def test_batch_get_by_user_resumes_from_a_checkpoint_and_refuses_more_than_100_users(wecom, client) -> None:
    # given
    route = wecom.post(BASE + "externalcontact/batch/get_by_user").mock(
        return_value=json_response(ok(external_contact_list=[], next_cursor=""))
    )
    # when
    list(client.iter_batch_get_by_user(["zhangsan"], cursor="SAVED"))
    # then
    assert body_of(route)["cursor"] == "SAVED"
    with pytest.raises(ValueError):
        client.batch_get_by_user([f"u{i}" for i in range(101)])


def test_iterate_pages_stops_when_a_cursor_repeats() -> None:
    # given: a server that keeps answering the same next_cursor
    calls: list[str] = []

    def fetch(cursor: str) -> s.Page:
        calls.append(cursor)
        return s.Page(next_cursor="SAME")

    # when
    pages = list(iterate_pages(fetch))
    # then
    assert calls == ["", "SAME"]
    assert len(pages) == 2


def test_corp_tags_list_add_and_mark(wecom, client) -> None:
    # given: the DOC-92117 samples
    wecom.post(BASE + "externalcontact/get_corp_tag_list").mock(
        return_value=json_response(
            ok(
                tag_group=[
                    {
                        "group_id": "TAG_GROUPID1",
                        "group_name": "GOURP_NAME",
                        "create_time": 1557838797,
                        "order": 1,
                        "deleted": False,
                        "tag": [
                            {
                                "id": "TAG_ID1",
                                "name": "NAME1",
                                "create_time": 1557838797,
                                "order": 1,
                                "deleted": False,
                            },
                            {
                                "id": "TAG_ID2",
                                "name": "NAME2",
                                "create_time": 1557838797,
                                "order": 2,
                                "deleted": True,
                            },
                        ],
                    }
                ]
            )
        )
    )
    add = wecom.post(BASE + "externalcontact/add_corp_tag").mock(
        return_value=json_response(
            ok(
                tag_group={
                    "group_id": "TAG_GROUPID1",
                    "group_name": "GOURP_NAME",
                    "create_time": 1557838797,
                    "order": 1,
                    "tag": [{"id": "TAG_ID3", "name": "NAME3", "create_time": 1557838797, "order": 1}],
                }
            )
        )
    )
    mark = wecom.post(BASE + "externalcontact/mark_tag").mock(return_value=json_response(ok()))
    # when
    groups = client.get_corp_tag_list(tag_id=["TAG_ID2"])
    created = client.add_corp_tag(
        s.AddCorpTagRequest(group_name="GOURP_NAME", tag=[s.NewCorpTag(name="NAME3")])
    )
    client.mark_tag(s.MarkTagRequest(userid="zhangsan", external_userid="woAJ", add_tag=["TAG_ID1"]))
    # then
    assert groups[0].tag[1].deleted is True
    assert created.tag[0].id == "TAG_ID3"
    assert body_of(add) == {"group_name": "GOURP_NAME", "tag": [{"name": "NAME3"}]}
    assert body_of(mark) == {
        "userid": "zhangsan",
        "external_userid": "woAJ",
        "add_tag": ["TAG_ID1"],
        "remove_tag": [],
    }


def test_contact_way_accepts_the_object_and_the_old_list_form(wecom, client) -> None:
    # given
    way = {"config_id": "42b34949e138eb6e027c123cba77fAAA", "type": 1, "scene": 2, "state": "teststate"}
    wecom.post(BASE + "externalcontact/get_contact_way").mock(
        side_effect=[json_response(ok(contact_way=way)), json_response(ok(contact_way=[way]))]
    )
    # when
    first = client.get_contact_way("42b34949e138eb6e027c123cba77fAAA")
    second = client.get_contact_way("42b34949e138eb6e027c123cba77fAAA")
    # then
    assert first == second
    assert first.state == "teststate"


def test_groups_list_and_detail(wecom, client) -> None:
    # given: the DOC-92120 / DOC-96338 samples
    listing = wecom.post(BASE + "externalcontact/groupchat/list").mock(
        return_value=json_response(
            ok(
                group_chat_list=[
                    {"chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA", "status": 0},
                    {"chat_id": "wrOgQhDgAAcwMTB7YmDkbeBsAAAA", "status": 0},
                ],
                next_cursor="",
            )
        )
    )
    wecom.post(BASE + "externalcontact/groupchat/get").mock(
        return_value=json_response(
            ok(
                group_chat={
                    "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
                    "name": "销售客服群",
                    "owner": "ZhuShengBen",
                    "create_time": 1572505490,
                    "notice": "文明沟通,拒绝脏话",
                    "member_list": [
                        {
                            "userid": "abel",
                            "type": 1,
                            "join_time": 1572505491,
                            "join_scene": 1,
                            "invitor": {"userid": "jack"},
                            "group_nickname": "客服小张",
                            "name": "张三丰",
                        },
                        {
                            "userid": "wmOgQhDgAAuXFJGwbve4g4iXknfOAAAA",
                            "type": 2,
                            "unionid": "ozynqsulJFCZ2z1aYeS8h-nuasdAAA",
                            "join_time": 1572505491,
                            "join_scene": 1,
                            "group_nickname": "顾客老王",
                            "name": "王语嫣",
                        },
                    ],
                    "admin_list": [{"userid": "sam"}, {"userid": "pony"}],
                    "member_version": "71217227bbd112ecfe3a49c482195cb4",
                }
            )
        )
    )
    # when
    pages = list(client.iter_groupchats(owner_userids=["abel"]))
    group = client.groupchat_get("wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA")
    # then
    assert body_of(listing) == {
        "status_filter": 0,
        "cursor": "",
        "limit": 1000,
        "owner_filter": {"userid_list": ["abel"]},
    }
    assert len(pages[0].group_chat_list) == 2
    assert [m.type for m in group.member_list] == [1, 2]
    assert group.member_version == "71217227bbd112ecfe3a49c482195cb4"


def test_departments_and_members(wecom, client) -> None:
    # given
    wecom.get(BASE + "department/list").mock(
        return_value=json_response(
            ok(
                department=[
                    {
                        "id": 2,
                        "name": "广州研发中心",
                        "name_en": "RDGZ",
                        "department_leader": ["zhangsan"],
                        "parentid": 1,
                        "order": 10,
                    }
                ]
            )
        )
    )
    users = wecom.get(BASE + "user/list").mock(
        return_value=json_response(
            ok(
                userlist=[
                    {
                        "userid": "zhangsan",
                        "name": "张三",
                        "department": [1, 2],
                        "main_department": 1,
                        "gender": "1",
                        "status": 1,
                    }
                ]
            )
        )
    )
    wecom.post(BASE + "user/list_id").mock(
        side_effect=[
            json_response(ok(dept_user=[{"userid": "zhangsan", "department": 1}], next_cursor="N")),
            json_response(ok(dept_user=[{"userid": "zhangsan", "department": 2}], next_cursor="")),
        ]
    )
    # when
    departments = client.department_list()
    members = client.user_list(1, fetch_child=True)
    pairs = [p for page in client.iter_user_ids() for p in page.dept_user]
    # then
    assert departments[0].parentid == 1 and departments[0].department_leader == ["zhangsan"]
    assert members[0].department == [1, 2] and members[0].gender == "1"
    assert users.calls.last.request.url.params["fetch_child"] == "1"
    assert [(p.userid, p.department) for p in pairs] == [("zhangsan", 1), ("zhangsan", 2)]


def test_transfers_report_per_customer_errcodes(wecom, client) -> None:
    # given: the DOC-92125 sample
    wecom.post(BASE + "externalcontact/transfer_customer").mock(
        return_value=json_response(
            ok(
                customer=[
                    {"external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "errcode": 40096},
                    {"external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACBBBB", "errcode": 0},
                ]
            )
        )
    )
    wecom.post(BASE + "externalcontact/transfer_result").mock(
        return_value=json_response(
            ok(
                customer=[
                    {
                        "external_userid": "woAJ2GCAAAXtWyujaWJHDDGi0mACCCCC",
                        "status": 1,
                        "takeover_time": 1588262400,
                    }
                ],
                next_cursor="",
            )
        )
    )
    # when
    answer = client.transfer_customer(
        s.TransferCustomerRequest(
            handover_userid="zhangsan",
            takeover_userid="lisi",
            external_userid=["woAJ2GCAAAXtWyujaWJHDDGi0mACAAAA", "woAJ2GCAAAXtWyujaWJHDDGi0mACBBBB"],
        )
    )
    results = [r for page in client.iter_transfer_results("zhangsan", "lisi") for r in page.customer]
    # then
    assert [c.errcode for c in answer.customer] == [40096, 0]
    assert results[0].status == 1


def test_statistics(wecom, client) -> None:
    # given: the DOC-92132 / DOC-92133 samples
    wecom.post(BASE + "externalcontact/get_user_behavior_data").mock(
        return_value=json_response(
            ok(
                behavior_data=[
                    {
                        "stat_time": 1536508800,
                        "chat_cnt": 100,
                        "message_cnt": 80,
                        "reply_percentage": 60.25,
                        "avg_reply_time": 1,
                        "negative_feedback_cnt": 0,
                        "new_apply_cnt": 6,
                        "new_contact_cnt": 5,
                    }
                ]
            )
        )
    )
    wecom.post(BASE + "externalcontact/groupchat/statistic").mock(
        return_value=json_response(
            ok(
                total=2,
                next_offset=2,
                items=[
                    {
                        "owner": "zhangsan",
                        "data": {
                            "new_chat_cnt": 2,
                            "chat_total": 2,
                            "member_total": 6,
                            "migrate_trainee_chat_cnt": 3,
                        },
                    }
                ],
            )
        )
    )
    # when
    behavior = client.get_user_behavior_data(start_time=1536508800, end_time=1536595200, userid=["zhangsan"])
    groups = client.groupchat_statistic(day_begin_time=1600272000, owner_userids=["zhangsan"])
    # then
    assert behavior[0].reply_percentage == 60.25
    assert groups.items[0].data.member_total == 6 and groups.next_offset == 2


def test_mass_message_and_results(wecom, client) -> None:
    # given
    created = wecom.post(BASE + "externalcontact/add_msg_template").mock(
        return_value=json_response(
            ok(fail_list=["wmqfasd1e1927831123109rBAAAA"], msgid="msgGCAAAXtWyujaWJHDDGi0mAAAA")
        )
    )
    wecom.post(BASE + "externalcontact/get_groupmsg_send_result").mock(
        return_value=json_response(
            ok(
                next_cursor="",
                send_list=[
                    {
                        "external_userid": "wmqfasd1e19278asdasAAAA",
                        "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
                        "userid": "zhangsan",
                        "status": 1,
                        "send_time": 1552536375,
                    }
                ],
            )
        )
    )
    # when
    task = client.add_msg_template(
        s.MsgTemplateRequest(
            external_userid=["wmqfasd1e1927831123109rBAAAA"], sender="zhangsan", text=s.Text(content="你好")
        )
    )
    results = list(client.iter_groupmsg_send_result(task.msgid, "zhangsan"))
    # then
    assert task.fail_list == ["wmqfasd1e1927831123109rBAAAA"]
    assert body_of(created)["text"] == {"content": "你好"}
    assert results[0].send_list[0].status == 1


def test_errors_are_keyed_on_errcode_not_errmsg(wecom, client) -> None:
    # given: a relation that does not exist, and a code the client has never heard of
    wecom.get(BASE + "externalcontact/get").mock(
        side_effect=[
            json_response(err(84061, "not external contact")),
            json_response(err(99999, "api forbidden")),
        ]
    )
    # when / then
    with pytest.raises(errors.NoExternalContactRelation) as known:
        client.get_customer("wmX")
    with pytest.raises(errors.InvalidRequest) as unknown:
        client.get_customer("wmX")
    assert known.value.errcode == 84061 and known.value.api == "externalcontact/get"
    assert type(unknown.value) is errors.InvalidRequest and unknown.value.errcode == 99999


def test_requests_refuse_what_wecom_would_refuse() -> None:
    # when / then: remark ≤20 characters, ≤9 attachments, ≤100 customers per transfer
    with pytest.raises(ValidationError):
        s.RemarkRequest(userid="u", external_userid="wm", remark="长" * 21)
    with pytest.raises(ValidationError):
        s.WelcomeMessageRequest(welcome_code="C", attachments=[s.Attachment(msgtype="image", image={})] * 10)
    with pytest.raises(ValidationError):
        s.TransferCustomerRequest(handover_userid="a", takeover_userid="b", external_userid=["wm"] * 101)
    with pytest.raises(ValidationError):
        s.MarkTagRequest.model_validate({"userid": "u", "external_userid": "wm", "add_tags": ["typo"]})


def test_client_for_uses_the_corp_secret_and_never_logs_tokens_or_secrets(wecom, caplog) -> None:
    # given
    caplog.set_level(logging.DEBUG)
    corp = make_wecom_corp()
    wecom.get(BASE + "externalcontact/list").mock(
        side_effect=[
            json_response(err(42001, "access_token expired")),
            json_response(ok(external_userid=["wm1"])),
        ]
    )
    # when
    customers = client_for(corp, priority=Priority.USER).list_customers("zhangsan")
    # then
    assert customers == ["wm1"]
    assert caplog.records, "the token refetch is logged"
    assert SECRET not in caplog.text and TOKEN not in caplog.text


def test_transport_failure_is_unavailable_not_a_wecom_error(respx_mock, client) -> None:
    # given: WeCom answers 502 (gettoken included)
    respx_mock.get(BASE + "gettoken").mock(return_value=httpx.Response(502, text="bad gateway"))
    # when / then
    with pytest.raises(errors.WeComUnavailable) as failure:
        client.get_follow_user_list()
    assert failure.value.api == "gettoken"
    assert respx_mock.routes[0].call_count == 4  # first try and 3 retries
