"""Bulk tagging from the customer list: a background job with progress, resumable, within scope."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from siyu.core.errors import Invalid
from siyu.core.models import Job
from siyu.corps.access import Actor
from siyu.corps.models import AuditLog, Membership, Role
from siyu.corps.services import create_console_user
from siyu.customers import bulk
from siyu.customers.bulk import BULK_TAG, process_bulk_tag_job, start_bulk_tag
from siyu.customers.models import Customer, Event
from siyu.customers.selectors import CustomerFilter
from siyu.tags.models import CustomerTag, RelationTag, Tag
from siyu.tags.services import delete_tag, mark_relation_tags
from tests import factories
from tests.conftest import World, run_tasks

Login = Callable[[Actor], Client]


@pytest.fixture
def login_as(client: Client) -> Login:
    def login(actor: Actor) -> Client:
        client.force_login(get_user_model().objects.get(pk=actor.user_id))
        return client

    return login


def customers_of(world: World, n: int, staff_name: str = "wang", prefix: str = "客户") -> list[Customer]:
    staff = getattr(world, staff_name)
    made = []
    for i in range(n):
        customer = factories.make_customer(world.corp, f"{prefix}{i}")
        factories.follow(customer, staff)
        made.append(customer)
    return made


def tag_ids_of(customer: Customer) -> set[int]:
    return set(CustomerTag.objects.filter(customer=customer).values_list("tag_id", flat=True))


def test_bulk_add_on_picked_customers_runs_as_a_job_after_commit(
    world: World, login_as: Login, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    # given
    picked = customers_of(world, 3)
    left_out = customers_of(world, 1, prefix="不选")[0]
    vip = factories.make_tag(world.corp, "VIP")
    client = login_as(world.admin)

    # when
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = client.post(
            reverse("customers:bulk_tag"),
            {"ids": [c.pk for c in picked], "add_tag": [vip.pk], "filter_query": ""},
        )
    job = Job.objects.get(kind=BULK_TAG)
    pending_status = job.status
    run_tasks()

    # then
    job.refresh_from_db()
    assert response.status_code == 302 and response["Location"] == reverse("customers:job", args=[job.pk])
    assert pending_status == Job.Status.PENDING
    assert job.status == Job.Status.DONE and job.done == job.total == 3
    assert job.result["customers_changed"] == 3 and job.result["skipped"] == 0
    assert all(vip.pk in tag_ids_of(c) for c in picked)
    assert vip.pk not in tag_ids_of(left_out)
    assert Event.objects.filter(kind=Event.Kind.TAGGED, payload__tag_id=vip.pk).count() == 3
    assert AuditLog.objects.filter(action="customers.bulk_tag", object_id=str(job.pk)).exists()


def test_bulk_remove_on_all_matching_the_filter_in_batches(
    world: World,
    login_as: Login,
    django_capture_on_commit_callbacks: Callable[..., object],
    settings: Settings,
) -> None:
    # given 7 customers tagged 北京, 5 of them followed by 王芳; batches of 2
    settings.SIYU = {**settings.SIYU, "BULK_BATCH_SIZE": 2}
    beijing = factories.make_tag(world.corp, "北京")
    wangs = customers_of(world, 5)
    lius = customers_of(world, 2, staff_name="liu", prefix="刘客")
    for customer in wangs + lius:
        for relation in customer.relations.all():
            mark_relation_tags(relation=relation, add=[beijing], source=Event.Source.CONSOLE)
    client = login_as(world.admin)

    # when: remove 北京 from everyone the filter "followed by 王芳" matches
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = client.post(
            reverse("customers:bulk_tag"),
            {"all_matching": "1", "filter_query": f"staff={world.wang.pk}", "remove_tag": [beijing.pk]},
        )
    run_tasks()

    # then
    job = Job.objects.get(kind=BULK_TAG)
    assert response.status_code == 302
    assert job.params["filter"]["staff_ids"] == [world.wang.pk]
    assert job.status == Job.Status.DONE and job.done == job.total == 5
    assert job.result["customers_changed"] == 5
    assert all(beijing.pk not in tag_ids_of(c) for c in wangs)
    assert all(beijing.pk in tag_ids_of(c) for c in lius)


def test_a_staff_member_tags_only_customers_they_follow(
    world: World, login_as: Login, django_capture_on_commit_callbacks: Callable[..., object]
) -> None:
    # given a customer followed by 王芳 and 刘强, and one followed by 刘强 only
    shared = customers_of(world, 1, prefix="共同")[0]
    factories.follow(shared, world.liu)
    liu_only = customers_of(world, 1, staff_name="liu", prefix="刘独有")[0]
    vip = factories.make_tag(world.corp, "VIP")
    client = login_as(world.staff_wang)

    # when 王芳 picks both (the second id is not hers to tag)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        client.post(reverse("customers:bulk_tag"), {"ids": [shared.pk, liu_only.pk], "add_tag": [vip.pk]})
    run_tasks()

    # then: only her own relation is tagged; the other customer is skipped
    job = Job.objects.get(kind=BULK_TAG)
    assert job.result["customers_changed"] == 1 and job.result["skipped"] == 1
    tagged_relations = RelationTag.objects.filter(tag=vip)
    assert [(rt.customer_id, rt.relation.staff_id) for rt in tagged_relations] == [(shared.pk, world.wang.pk)]
    assert vip.pk not in tag_ids_of(liu_only)


def test_a_job_stopped_mid_way_resumes_where_it_stopped_and_a_replay_tags_nothing_twice(
    world: World, settings: Settings
) -> None:
    # given a job over 5 customers in batches of 2
    settings.SIYU = {**settings.SIYU, "BULK_BATCH_SIZE": 2}
    customers = customers_of(world, 5)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.admin, customer_ids=[c.pk for c in customers], add_tag_ids=[vip.pk])

    # when the first run stops after one batch (as a worker killed after its first commit would)
    process_bulk_tag_job(job_id=job.pk, max_batches=1)
    job.refresh_from_db()
    after_first = (job.status, job.done, job.result["cursor"])
    tagged_after_first = sum(vip.pk in tag_ids_of(c) for c in customers)
    # and the next run picks it up
    process_bulk_tag_job(job_id=job.pk)
    job.refresh_from_db()

    # then
    assert after_first == (Job.Status.RUNNING, 2, customers[1].pk)
    assert tagged_after_first == 2
    assert job.status == Job.Status.DONE and job.done == 5 and job.result["customers_changed"] == 5
    assert all(vip.pk in tag_ids_of(c) for c in customers)

    # when the whole job is replayed from the start (its progress lost)
    events_before = Event.objects.filter(kind=Event.Kind.TAGGED).count()
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, done=0, result={"cursor": 0})
    process_bulk_tag_job(job_id=job.pk)
    job.refresh_from_db()

    # then nothing is tagged twice
    assert Event.objects.filter(kind=Event.Kind.TAGGED).count() == events_before
    assert RelationTag.objects.filter(tag=vip).count() == 5
    assert job.status == Job.Status.DONE and job.result["customers_changed"] == 0


def test_a_finished_job_run_again_does_nothing(world: World) -> None:
    # given
    customers = customers_of(world, 2)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.admin, customer_ids=[c.pk for c in customers], add_tag_ids=[vip.pk])
    process_bulk_tag_job(job_id=job.pk)

    # when
    again = process_bulk_tag_job(job_id=job.pk)

    # then
    assert again is not None and again.status == Job.Status.DONE and again.done == 2


def test_a_tag_deleted_while_the_job_runs_fails_it_with_the_reason(world: World, settings: Settings) -> None:
    # given
    settings.SIYU = {**settings.SIYU, "BULK_BATCH_SIZE": 1}
    customers = customers_of(world, 3)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.admin, customer_ids=[c.pk for c in customers], add_tag_ids=[vip.pk])
    process_bulk_tag_job(job_id=job.pk, max_batches=1)

    # when
    delete_tag(tag=Tag.objects.get(pk=vip.pk), source=Event.Source.CONSOLE)
    process_bulk_tag_job(job_id=job.pk)

    # then
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert "未知的标签" in job.error  # written by the worker, in the default language
    assert job.done == 1


def test_a_job_whose_starter_lost_their_role_fails_saying_so(world: World) -> None:
    # given: 王芳 starts a job, then loses her role in the corp before it runs
    customers = customers_of(world, 2)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.staff_wang, customer_ids=[c.pk for c in customers], add_tag_ids=[vip.pk])
    Membership.objects.filter(corp=world.corp, user_id=world.staff_wang.user_id).delete()

    # when
    process_bulk_tag_job(job_id=job.pk)

    # then: nothing tagged, and the reason reads in the default language
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "发起此任务的用户已无法再打标签"
    assert not RelationTag.objects.for_corp(world.corp).exists()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        ({"ids": ["1"]}, "no tag"),
        ({"ids": ["1"], "add_tag": ["999999"]}, "unknown tag"),
        ({"add_tag": ["TAG"]}, "nobody picked"),
        ({"ids": ["x"], "add_tag": ["TAG"]}, "bad id"),
        ({"ids": ["1"], "add_tag": ["TAG"], "remove_tag": ["TAG"]}, "add and remove at once"),
        ({"all_matching": "1", "filter_query": "status=gone", "add_tag": ["TAG"]}, "bad filter"),
    ],
)
def test_bad_bulk_requests_start_no_job_and_say_why(
    world: World, login_as: Login, data: dict[str, list[str] | str], why: str
) -> None:
    # given
    customer = customers_of(world, 1)[0]
    vip = factories.make_tag(world.corp, "VIP")
    form = {
        key: [v.replace("TAG", str(vip.pk)) for v in value] if isinstance(value, list) else value
        for key, value in data.items()
    }
    if form.get("ids") == ["1"]:
        form["ids"] = [str(customer.pk)]

    # when
    response = login_as(world.admin).post(reverse("customers:bulk_tag"), form, follow=True)

    # then
    assert not Job.objects.exists(), why
    assert response.redirect_chain[-1][0].startswith(reverse("customers:list"))
    assert [m.level_tag for m in response.context["messages"]] == ["error"]


def test_another_corps_tag_cannot_be_applied(world: World, login_as: Login) -> None:
    # given
    customer = customers_of(world, 1)[0]
    foreign = factories.make_tag(world.other_corp, "别家")

    # when
    login_as(world.admin).post(reverse("customers:bulk_tag"), {"ids": [customer.pk], "add_tag": [foreign.pk]})

    # then
    assert not Job.objects.exists()
    assert not CustomerTag.objects.filter(tag=foreign).exists()


def test_the_progress_page_polls_until_done_then_shows_the_result(world: World, login_as: Login) -> None:
    # given
    customers = customers_of(world, 3)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.admin, customer_ids=[c.pk for c in customers[:2]], add_tag_ids=[vip.pk])
    client = login_as(world.admin)

    # when
    running = client.get(reverse("customers:job", args=[job.pk]))
    process_bulk_tag_job(job_id=job.pk)
    fragment = client.get(reverse("customers:job_progress", args=[job.pk]), HTTP_HX_REQUEST="true")

    # then
    assert running.status_code == 200
    assert 'hx-trigger="every 1s"' in running.content.decode()
    html = fragment.content.decode()
    assert fragment.status_code == 200 and "<html" not in html
    assert "hx-trigger" not in html  # done: polling stops
    assert 'data-status="done"' in html
    assert 'data-testid="customers-changed">2<' in html
    assert 'aria-valuenow="100"' in html


def test_jobs_are_private_to_their_corp_and_to_their_starter_below_operator(
    world: World, login_as: Login, client: Client
) -> None:
    # given a job started by 王芳
    customer = customers_of(world, 1)[0]
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.staff_wang, customer_ids=[customer.pk], add_tag_ids=[vip.pk])
    url = reverse("customers:job", args=[job.pk])

    # when / then
    assert login_as(world.staff_wang).get(url).status_code == 200
    assert login_as(world.admin).get(url).status_code == 200
    assert login_as(world.staff_liu).get(url).status_code == 404
    assert login_as(world.manager).get(url).status_code == 404
    other_admin = create_console_user(
        corp=world.other_corp, username="other_admin", password=world.password, role=Role.ADMIN
    )
    client.force_login(other_admin)
    assert client.get(url).status_code == 404
    assert client.get(reverse("customers:job_progress", args=[job.pk])).status_code == 404


def test_start_bulk_tag_refuses_ambiguous_or_oversized_requests(world: World) -> None:
    # given
    vip = factories.make_tag(world.corp, "VIP")

    # when / then
    with pytest.raises(Invalid):
        start_bulk_tag(actor=world.admin, add_tag_ids=[vip.pk])
    with pytest.raises(Invalid):
        start_bulk_tag(
            actor=world.admin, add_tag_ids=[vip.pk], customer_ids=[1], customer_filter=CustomerFilter()
        )
    with pytest.raises(Invalid):
        start_bulk_tag(
            actor=world.admin,
            add_tag_ids=[vip.pk],
            customer_ids=list(range(1, bulk.MAX_PICKED_CUSTOMERS + 2)),
        )
    assert not Job.objects.exists()


def test_resume_runs_an_unfinished_job_again_and_ignores_a_finished_one(
    world: World,
    login_as: Login,
    django_capture_on_commit_callbacks: Callable[..., object],
    settings: Settings,
) -> None:
    # given a job whose worker stopped after the first of three batches
    settings.SIYU = {**settings.SIYU, "BULK_BATCH_SIZE": 1}
    customers = customers_of(world, 3)
    vip = factories.make_tag(world.corp, "VIP")
    job = start_bulk_tag(actor=world.admin, customer_ids=[c.pk for c in customers], add_tag_ids=[vip.pk])
    process_bulk_tag_job(job_id=job.pk, max_batches=1)
    client = login_as(world.admin)

    # when
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = client.post(reverse("customers:job_resume", args=[job.pk]))
    run_tasks()
    job.refresh_from_db()

    # then
    assert response.status_code == 302
    assert job.status == Job.Status.DONE and job.done == 3 and job.result["customers_changed"] == 3

    # when resumed once more, nothing is queued
    with django_capture_on_commit_callbacks(execute=True) as callbacks:  # type: ignore[operator]
        client.post(reverse("customers:job_resume", args=[job.pk]))
    assert callbacks == []
