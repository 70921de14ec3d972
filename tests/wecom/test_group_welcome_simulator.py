"""Contract: group welcome templates (group_welcome_template/add|edit|get|del) between Siyu's client and
outbox and the WeCom simulator over real HTTP, with WeCom's limits (100 per corp: 41055; only the app's own
templates: 41058)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from siyu.corps.access import Actor
from siyu.corps.models import Corp, Role
from siyu.corps.services import create_corp
from siyu.groups.models import GroupWelcomeTemplate
from siyu.groups.welcome import create_group_welcome, delete_group_welcome, update_group_welcome
from siyu.simulator.app import Simulator
from siyu.simulator.state import GroupWelcomeTemplate as SimTemplate
from siyu.simulator.testing import running_simulator
from siyu.wecom import errors, tokens
from siyu.wecom import schemas as s
from siyu.wecom.client import WeComClient
from siyu.wecom.gateway import Gateway
from siyu.wecom.limits import Priority
from siyu.wecom.models import Outbox
from siyu.wecom.outbox import send_due

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with running_simulator(staff=3, customers=5, groups=1) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def _point_at_simulator(settings, sim: Simulator) -> Iterator[None]:
    settings.WECOM_API_BASE = sim.api_base
    tokens.forget_cached()
    sim.state.group_welcome_templates.clear()
    yield
    tokens.forget_cached()


@pytest.fixture
def corp(sim: Simulator) -> Corp:
    return create_corp(name=sim.config.corp_name, corpid=sim.config.corpid, secret=sim.config.secret)


@pytest.fixture
def client(corp: Corp) -> WeComClient:
    return WeComClient(Gateway(corp, priority=Priority.USER, sleep=lambda _s: None))


def test_the_client_adds_gets_edits_and_deletes_a_template(client: WeComClient, sim: Simulator) -> None:
    # when
    created = client.add_group_welcome_template(
        s.GroupWelcomeTemplateRequest(
            text=s.Text(content="欢迎 %NICKNAME%"),
            image=s.WelcomeImage(pic_url="https://wework.qpic.cn/wwpic/1/0"),
            link=s.WelcomeLink(title="ignored: WeCom keeps the first part", url="https://example.com"),
            notify=0,
        )
    )
    # then
    kept = sim.state.group_welcome_templates[created.template_id]
    assert kept.notify is False
    got = client.get_group_welcome_template(created.template_id)
    assert got.text == {"content": "欢迎 %NICKNAME%"}
    assert got.image == {"pic_url": "https://wework.qpic.cn/wwpic/1/0"} and got.link is None
    client.edit_group_welcome_template(
        s.EditGroupWelcomeTemplateRequest(
            template_id=created.template_id, link=s.WelcomeLink(title="会员", url="https://example.com/v")
        )
    )
    got = client.get_group_welcome_template(created.template_id)
    assert got.text is None and got.link is not None and got.link["title"] == "会员"
    client.del_group_welcome_template(created.template_id)
    assert created.template_id not in sim.state.group_welcome_templates
    with pytest.raises(errors.GroupWelcomeTemplateForbidden):
        client.del_group_welcome_template(created.template_id)


def test_wecom_refuses_empty_templates_a_full_library_and_others_templates(
    client: WeComClient, sim: Simulator
) -> None:
    with pytest.raises(errors.InvalidParameter):
        client.add_group_welcome_template(s.GroupWelcomeTemplateRequest())
    sim.state.group_welcome_templates["msgAdminConsole"] = SimTemplate(
        template_id="msgAdminConsole", create_time=0, content={"text": {"content": "x"}}, owned=False
    )
    with pytest.raises(errors.GroupWelcomeTemplateForbidden) as refused:
        client.edit_group_welcome_template(
            s.EditGroupWelcomeTemplateRequest(template_id="msgAdminConsole", text=s.Text(content="y"))
        )
    assert refused.value.errcode == 41058
    for i in range(99):
        client.add_group_welcome_template(s.GroupWelcomeTemplateRequest(text=s.Text(content=f"第{i}条")))
    with pytest.raises(errors.GroupWelcomeTemplateLimit) as full:
        client.add_group_welcome_template(s.GroupWelcomeTemplateRequest(text=s.Text(content="第101条")))
    assert full.value.errcode == 41055


def test_templates_made_in_siyu_reach_wecom_through_the_outbox(corp: Corp, sim: Simulator) -> None:
    actor = Actor(corp=corp, role=Role.OPERATOR)
    # given: a template made, then edited before WeCom answered the add
    template = create_group_welcome(actor=actor, name="欢迎", text="欢迎 %NICKNAME%")
    update_group_welcome(actor=actor, template=template, text="欢迎 %NICKNAME%，请看群公告")
    # when: the outbox sends the add; the answer's id is stored and the newer version follows as an edit
    send_due()
    send_due()
    # then
    template.refresh_from_db()
    assert template.template_id in sim.state.group_welcome_templates
    assert (template.version, template.sent_version) == (2, 2)
    content = sim.state.group_welcome_templates[template.template_id].content
    assert content == {"text": {"content": "欢迎 %NICKNAME%，请看群公告"}}
    # when: deleted in Siyu
    delete_group_welcome(actor=actor, template=GroupWelcomeTemplate.objects.get(pk=template.pk))
    send_due()
    # then
    assert template.template_id not in sim.state.group_welcome_templates
    assert set(Outbox.objects.filter(corp=corp).values_list("status", flat=True)) == {Outbox.Status.DONE}


def test_a_refused_add_shows_as_failed(corp: Corp, sim: Simulator) -> None:
    from siyu.groups.welcome import template_states

    actor = Actor(corp=corp, role=Role.ADMIN)
    for i in range(100):
        sim.state.group_welcome_templates[f"msgFull{i}"] = SimTemplate(
            template_id=f"msgFull{i}", create_time=0, content={"text": {"content": "x"}}, owned=False
        )
    template = create_group_welcome(actor=actor, name="满了", text="hi")
    send_due()
    state = template_states(corp.pk, [template])[template.pk]
    assert state.state == "failed" and "41055" in state.error
