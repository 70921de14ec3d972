"""Contract: the client, gateway and outbox against the WeCom simulator over real HTTP.

Every API of the client is called at least once; the simulator's state shows that writes took effect, and its
fault injection exercises token expiry, system busy and frequency limits end to end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.corps.models import Corp
from siyu.corps.services import create_corp
from siyu.simulator.app import Simulator
from siyu.simulator.testing import running_simulator
from siyu.wecom import errors, tokens
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient
from siyu.wecom.gateway import Gateway
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import enqueue_write, send_due, write_result

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with running_simulator(staff=6, customers=60, groups=4) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _point_at_simulator(settings, sim: Simulator) -> Iterator[None]:
    settings.WECOM_API_BASE = sim.api_base
    tokens.forget_cached()
    sim.limits.clear_faults()
    sim.limits.unblock()
    yield
    sim.limits.clear_faults()
    sim.limits.unblock()
    tokens.forget_cached()


@pytest.fixture
def corp(sim: Simulator) -> Corp:
    return create_corp(name=sim.config.corp_name, corpid=sim.config.corpid, secret=sim.config.secret)


@pytest.fixture
def client(corp: Corp) -> WeComClient:
    return WeComClient(Gateway(corp, priority=Priority.USER, sleep=lambda _s: None))


def test_departments_and_members(client: WeComClient, sim: Simulator) -> None:
    # when
    departments = client.department_list()
    refs = client.department_simplelist()
    root = client.department_get(1)
    members = client.user_list(1, fetch_child=True)
    briefs = client.user_simplelist(1, fetch_child=True)
    one = client.user_get(members[0].userid)
    # then
    assert {d.id for d in departments} == set(sim.state.departments) == {r.id for r in refs}
    assert root.id == 1
    assert {m.userid for m in members} == set(sim.state.staff) == {b.userid for b in briefs}
    assert one.userid == members[0].userid and one.name


def test_customers_by_member_match_the_batch_pages(client: WeComClient) -> None:
    # given
    follow_users = client.get_follow_user_list()
    by_member = {(ext, u) for u in follow_users for ext in client.list_customers(u)}
    # when: 100 members per call, small pages to cross several cursors
    pages = list(client.iter_batch_get_by_user(follow_users, limit=7))
    # then
    from_batches = {
        (r.external_contact.external_userid, r.follow_info.userid)
        for p in pages
        for r in p.external_contact_list
    }
    assert len(pages) > 2 and pages[0].cursor == "" and pages[1].cursor == pages[0].next_cursor
    assert from_batches == by_member
    ext, userid = sorted(by_member)[0]
    detail = client.get_customer_all(ext)
    assert userid in {f.userid for f in detail.follow_user}


def test_tags_written_through_the_outbox_reach_wecom(corp: Corp, client: WeComClient, sim: Simulator) -> None:
    # given: a customer relation
    userid = client.get_follow_user_list()[0]
    ext = client.list_customers(userid)[0]
    # when: a tag group is created, then the tag is put on the relation, both through the outbox
    created = enqueue_write(
        corp=corp,
        api="externalcontact/add_corp_tag",
        payload=s.AddCorpTagRequest(group_name="合同状态", tag=[s.NewCorpTag(name="已签约")]),
        idempotency_key="tag:contract:signed",
    )
    send_due()
    created.refresh_from_db()
    group = write_result(created)
    assert isinstance(group, s.AddCorpTagResponse)
    tag_id = group.tag_group.tag[0].id
    marked = enqueue_write(
        corp=corp,
        api="externalcontact/mark_tag",
        payload=s.MarkTagRequest(userid=userid, external_userid=ext, add_tag=[tag_id]),
        idempotency_key=f"mark:{ext}:{userid}:{tag_id}",
    )
    send_due()
    # then
    marked.refresh_from_db()
    assert marked.status == Outbox.Status.DONE
    detail = client.get_customer_all(ext)
    tags = next(f for f in detail.follow_user if f.userid == userid).tags
    assert tag_id in {t.tag_id for t in tags}
    assert any(t.id == tag_id for g in client.get_corp_tag_list(tag_id=[tag_id]) for t in g.tag)
    # when: renamed and deleted
    client.edit_corp_tag(s.EditCorpTagRequest(id=tag_id, name="已续约"))
    renamed = client.get_corp_tag_list(tag_id=[tag_id])[0].tag[0]
    client.del_corp_tag(s.DelCorpTagRequest(tag_id=[tag_id]))
    # then
    assert renamed.name == "已续约"
    assert tag_id not in {t.id for g in client.get_corp_tag_list() for t in g.tag}


def test_remark_reaches_wecom(client: WeComClient) -> None:
    # given
    userid = client.get_follow_user_list()[0]
    ext = client.list_customers(userid)[0]
    # when
    client.remark(
        s.RemarkRequest(userid=userid, external_userid=ext, remark="老客户", description="采购负责人")
    )
    # then
    follow = next(f for f in client.get_customer_all(ext).follow_user if f.userid == userid)
    assert (follow.remark, follow.description) == ("老客户", "采购负责人")


def test_contact_way_scan_and_welcome_message(corp: Corp, client: WeComClient, sim: Simulator) -> None:
    # given: a contact way
    userid = client.get_follow_user_list()[0]
    way = client.add_contact_way(s.ContactWayRequest(type=1, scene=2, state="web-home", user=[userid]))
    assert client.get_contact_way(way.config_id).state == "web-home"
    client.update_contact_way(s.UpdateContactWayRequest(config_id=way.config_id, remark="官网"))
    assert client.get_contact_way(way.config_id).remark == "官网"
    assert way.config_id in {w.config_id for p in client.iter_contact_ways() for w in p.contact_way}
    # when: a customer scans it and the welcome message goes out through the outbox, twice asked
    added = sim.actions.scan_contact_way(config_id=way.config_id)
    code = added["welcome_code"]
    for _ in range(2):
        enqueue_write(
            corp=corp,
            api="externalcontact/send_welcome_msg",
            payload=s.WelcomeMessageRequest(welcome_code=code, text=s.Text(content="您好，欢迎关注")),
            idempotency_key=f"welcome:{code}",
            priority=Priority.WELCOME,
        )
    send_due()
    # then: sent once; a second send of the same code is what WeCom refuses
    row = Outbox.objects.for_corp(corp).get(idempotency_key=f"welcome:{code}")
    assert row.status == Outbox.Status.DONE
    with pytest.raises(errors.WelcomeCodeRejected) as again:
        client.send_welcome_msg(s.WelcomeMessageRequest(welcome_code=code, text=s.Text(content="再次")))
    assert again.value.errcode == 41051
    client.del_contact_way(way.config_id)


def test_mass_message_confirmed_and_its_results(client: WeComClient, sim: Simulator) -> None:
    # given
    userid = client.get_follow_user_list()[0]
    customers = client.list_customers(userid)[:3]
    created = client.add_msg_template(
        s.MsgTemplateRequest(external_userid=customers, sender=userid, text=s.Text(content="春季新品上市"))
    )
    # when: the member confirms in the client
    sim.actions.confirm_msg(msgid=created.msgid)
    # then
    tasks = [t for p in client.iter_groupmsg_task(created.msgid) for t in p.task_list]
    assert [t.userid for t in tasks] == [userid]
    results = [r for p in client.iter_groupmsg_send_result(created.msgid, userid) for r in p.send_list]
    assert {r.external_userid for r in results} == set(customers) - set(created.fail_list)
    now = int(sim.clock.time())
    listed = list(client.iter_groupmsg_list(chat_type="single", start_time=now - 3600, end_time=now + 60))
    assert created.msgid in {m.msgid for p in listed for m in p.group_msg_list}
    client.remind_groupmsg_send(created.msgid)
    client.cancel_groupmsg_send(created.msgid)


def test_moment_job(client: WeComClient, sim: Simulator) -> None:
    # when
    job = client.add_moment_task(s.MomentTaskRequest(text=s.Text(content="周末活动")))
    sim.tick()
    result = client.get_moment_task_result(job.jobid)
    # then
    assert result.status == 3 and result.result is not None and result.result.moment_id
    moment_id = result.result.moment_id
    now = int(sim.clock.time())
    assert moment_id in {
        m.moment_id
        for p in client.iter_moments(start_time=now - 3600, end_time=now + 60)
        for m in p.moment_list
    }
    assert client.get_moment_task(moment_id).task_list
    userid = client.get_follow_user_list()[0]
    sim.actions.publish_moment(moment_id=moment_id, userid=userid)
    assert {t.userid: t.publish_status for t in client.get_moment_task(moment_id).task_list}[userid] == 1
    client.get_moment_customer_list(moment_id, userid)
    client.get_moment_send_result(moment_id, userid)
    client.get_moment_comments(moment_id, userid)
    client.cancel_moment_task(moment_id)


def test_groups(client: WeComClient, sim: Simulator) -> None:
    # when
    owners = sorted({g.owner for g in sim.state.groups.values()})
    chats = [c for p in client.iter_groupchats(owner_userids=owners, limit=2) for c in p.group_chat_list]
    detail = client.groupchat_get(chats[0].chat_id)
    # then
    assert {c.chat_id for c in chats} == set(sim.state.groups)
    assert detail.member_list and detail.member_version


def test_transfers_and_statistics(client: WeComClient, sim: Simulator) -> None:
    # given
    handover, takeover = client.get_follow_user_list()[:2]
    ext = next(e for e in client.list_customers(handover) if e not in client.list_customers(takeover))
    # when
    answer = client.transfer_customer(
        s.TransferCustomerRequest(handover_userid=handover, takeover_userid=takeover, external_userid=[ext])
    )
    waiting = [r for p in client.iter_transfer_results(handover, takeover) for r in p.customer]
    sim.actions.complete_transfers(external_userid=ext)
    done = [r for p in client.iter_transfer_results(handover, takeover) for r in p.customer]
    # then
    assert [(c.external_userid, c.errcode) for c in answer.customer] == [(ext, 0)]
    assert [(r.external_userid, r.status) for r in waiting] == [(ext, 2)]
    assert [(r.external_userid, r.status) for r in done] == [(ext, 1)]
    list(client.iter_unassigned())
    now = int(sim.clock.time())
    day = 86400
    client.get_user_behavior_data(start_time=now - 7 * day, end_time=now - day, userid=[handover])
    client.groupchat_statistic(day_begin_time=now - 7 * day, day_end_time=now - day, owner_userids=[handover])
    client.groupchat_statistic_group_by_day(
        day_begin_time=now - 7 * day, day_end_time=now - day, owner_userids=[handover]
    )


def test_expired_tokens_and_busy_answers_are_survived(client: WeComClient, sim: Simulator) -> None:
    # given: a token in use, then WeCom ends it early, and the next two answers are "system busy"
    client.get_follow_user_list()
    token_calls = sim.limits.calls["gettoken"]
    sim.tokens.revoke_all("expired")
    sim.limits.add_fault(api="externalcontact/get_follow_user_list", kind="errcode", errcode=-1, remaining=2)
    # when
    users = client.get_follow_user_list()
    # then: one new token (42001 → refetch, replay), both busy answers used up by retries
    assert set(users) == set(sim.state.follow_users())
    assert sim.limits.calls["gettoken"] == token_calls + 1
    assert sim.limits.faults == []


def test_a_45009_from_wecom_holds_that_api_back(client: WeComClient, sim: Simulator) -> None:
    # given: WeCom allows this API twice a minute
    sim.limits.set_limit("externalcontact/list", per_minute=2, per_hour=None)
    userid = client.get_follow_user_list()[0]
    client.list_customers(userid)
    client.list_customers(userid)
    # when: the third call is refused by WeCom, the fourth by our own limiter
    with pytest.raises(errors.Throttled):
        client.list_customers(userid)
    calls = sim.limits.calls["externalcontact/list"]
    with pytest.raises(errors.RateLimited):
        client.list_customers(userid)
    # then
    assert sim.limits.calls["externalcontact/list"] == calls
    sim.limits.set_limit("externalcontact/list", per_minute=None, per_hour=None)
