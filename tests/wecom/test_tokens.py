"""Access tokens: cached, refreshed 60 s early, one refresh at a time, refetched once when refused."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import respx
from django.db import connection

from siyu.core import clock, crypto
from siyu.corps.models import Corp
from siyu.wecom import errors, tokens
from siyu.wecom.client import WeComClient
from siyu.wecom.gateway import Gateway, fetch_token
from siyu.wecom.limits import Priority
from siyu.wecom.models import AccessToken
from tests.wecom.outbound_support import (
    BASE,
    SECRET,
    TOKEN,
    TOKEN_2,
    err,
    json_response,
    make_wecom_corp,
    ok,
    token_answer,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _wecom_base(settings):
    settings.WECOM_API_BASE = BASE
    tokens.forget_cached()
    yield
    tokens.forget_cached()


def client_of(corp) -> WeComClient:
    return WeComClient(Gateway(corp, priority=Priority.USER, sleep=lambda _s: None))


@pytest.mark.django_db
def test_token_is_cached_and_stored_encrypted(respx_mock: respx.MockRouter) -> None:
    # given
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(return_value=token_answer())
    respx_mock.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(ok(follow_user=[]))
    )
    client = client_of(corp)
    # when
    client.get_follow_user_list()
    client.get_follow_user_list()
    tokens.forget_cached()  # another process: reads the row, does not call gettoken
    client.get_follow_user_list()
    # then
    assert gettoken.call_count == 1
    row = AccessToken.objects.for_corp(corp).get()
    assert TOKEN not in row.token_encrypted and crypto.decrypt(row.token_encrypted) == TOKEN
    assert SECRET not in row.secret_digest


@pytest.mark.django_db
def test_token_is_refreshed_60_seconds_before_it_expires(respx_mock: respx.MockRouter) -> None:
    # given
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(
        side_effect=[token_answer(TOKEN), token_answer(TOKEN_2)]
    )
    api = respx_mock.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(ok(follow_user=[]))
    )
    client = client_of(corp)
    with clock.frozen_at(T0):
        client.get_follow_user_list()
        # when: 61 s before expiry the token is still used; 59 s before, a new one is fetched
        clock.advance(timedelta(seconds=7200 - 61))
        client.get_follow_user_list()
        first_two = [c.request.url.params["access_token"] for c in api.calls]
        clock.advance(timedelta(seconds=2))
        client.get_follow_user_list()
    # then
    assert first_two == [TOKEN, TOKEN]
    assert api.calls.last.request.url.params["access_token"] == TOKEN_2
    assert gettoken.call_count == 2


@pytest.mark.django_db(transaction=True)
def test_one_refresh_when_many_threads_need_a_token(respx_mock: respx.MockRouter) -> None:
    # given: a slow gettoken and eight threads asking at once
    corp = make_wecom_corp()

    def slow_token(request: httpx.Request) -> httpx.Response:
        time.sleep(0.3)
        return token_answer()

    gettoken = respx_mock.get(BASE + "gettoken").mock(side_effect=slow_token)
    got: list[str] = []
    failures: list[BaseException] = []

    def ask() -> None:
        try:
            got.append(
                tokens.access_token(corp_id=corp.pk, corpid=corp.corpid, secret=SECRET, fetch=fetch_token)
            )
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(8)]
    # when
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert failures == []
    assert got == [TOKEN] * 8
    assert gettoken.call_count == 1


@pytest.mark.django_db(transaction=True)
def test_a_process_waits_for_the_refresh_another_process_is_doing(respx_mock: respx.MockRouter) -> None:
    # given: another process holds the refresh lease and is about to store its token
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(return_value=token_answer(TOKEN_2))
    row = AccessToken.objects.create(
        corp=corp,
        secret_digest=tokens.secret_digest(SECRET),
        refresh_owner="other-process",
        refresh_until=clock.now() + timedelta(seconds=30),
    )

    def other_process_finishes() -> None:
        time.sleep(0.3)
        AccessToken.objects.filter(pk=row.pk).update(
            token_encrypted=crypto.encrypt(TOKEN),
            expires_at=clock.now() + timedelta(seconds=7200),
            refresh_owner="",
            refresh_until=None,
        )
        connection.close()

    other = threading.Thread(target=other_process_finishes)
    other.start()
    # when
    token = tokens.access_token(corp_id=corp.pk, corpid=corp.corpid, secret=SECRET, fetch=fetch_token)
    other.join()
    # then
    assert token == TOKEN
    assert gettoken.call_count == 0


@pytest.mark.django_db
@pytest.mark.parametrize("code", [40014, 42001])
def test_a_refused_token_is_refetched_once_and_the_call_replayed(
    respx_mock: respx.MockRouter, code: int
) -> None:
    # given
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(
        side_effect=[token_answer(TOKEN), token_answer(TOKEN_2)]
    )
    api = respx_mock.get(BASE + "externalcontact/list").mock(
        side_effect=[
            json_response(err(code, "invalid access_token")),
            json_response(ok(external_userid=["wm1"])),
        ]
    )
    # when
    customers = client_of(corp).list_customers("zhangsan")
    # then
    assert customers == ["wm1"]
    assert gettoken.call_count == 2
    assert [c.request.url.params["access_token"] for c in api.calls] == [TOKEN, TOKEN_2]


@pytest.mark.django_db
def test_a_token_refused_twice_is_an_error_not_a_loop(respx_mock: respx.MockRouter) -> None:
    # given: WeCom refuses every token
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(
        side_effect=[token_answer(TOKEN), token_answer(TOKEN_2)]
    )
    api = respx_mock.get(BASE + "externalcontact/list").mock(
        return_value=json_response(err(40014, "invalid"))
    )
    # when
    with pytest.raises(errors.InvalidAccessToken):
        client_of(corp).list_customers("zhangsan")
    # then: one refetch, one replay
    assert gettoken.call_count == 2
    assert api.call_count == 2


@pytest.mark.django_db
def test_a_burst_of_refusals_costs_one_refetch(respx_mock: respx.MockRouter) -> None:
    # given: two callers hold the same token when WeCom expires it early
    corp = make_wecom_corp()
    gettoken = respx_mock.get(BASE + "gettoken").mock(
        side_effect=[token_answer(TOKEN), token_answer(TOKEN_2)]
    )
    old = tokens.access_token(corp_id=corp.pk, corpid=corp.corpid, secret=SECRET, fetch=fetch_token)
    # when: both report it as stale
    first = tokens.access_token(
        corp_id=corp.pk, corpid=corp.corpid, secret=SECRET, fetch=fetch_token, stale=old
    )
    tokens.forget_cached()
    second = tokens.access_token(
        corp_id=corp.pk, corpid=corp.corpid, secret=SECRET, fetch=fetch_token, stale=old
    )
    # then
    assert first == second == TOKEN_2
    assert gettoken.call_count == 2


@pytest.mark.django_db
def test_invalid_secret_is_a_configuration_error_remembered_not_retried(respx_mock: respx.MockRouter) -> None:
    # given
    corp = make_wecom_corp(secret="wrong-secret")
    gettoken = respx_mock.get(BASE + "gettoken").mock(
        side_effect=[json_response(err(40001, "invalid credential")), token_answer(TOKEN)]
    )
    api = respx_mock.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(ok(follow_user=["zhangsan"]))
    )
    client = client_of(corp)
    with clock.frozen_at(T0):
        # when: the first call finds the secret wrong; the next ones do not ask WeCom again
        with pytest.raises(errors.InvalidCredential) as first:
            client.get_follow_user_list()
        tokens.forget_cached()
        with pytest.raises(errors.InvalidCredential) as again:
            client.get_follow_user_list()
        # then
        assert isinstance(first.value, errors.ConfigurationError)
        assert first.value.errcode == 40001 and first.value.api == "gettoken"
        assert "invalid credential" in again.value.errmsg
        assert gettoken.call_count == 1 and api.call_count == 0
        problem = tokens.configuration_error(corp_id=corp.pk, secret="wrong-secret")
        assert problem is not None and problem.startswith("errcode 40001: invalid credential")
        # when: an administrator sets the right secret (no service edits secrets yet)
        Corp.objects.filter(pk=corp.pk).update(secret_encrypted=crypto.encrypt(SECRET))
        corp.refresh_from_db()
        assert client_of(corp).get_follow_user_list() == ["zhangsan"]
    assert gettoken.call_count == 2


@pytest.mark.django_db
def test_invalid_credential_from_an_api_drops_the_cached_token(respx_mock: respx.MockRouter) -> None:
    # given: the secret was reset in WeCom's console while we held a token
    corp = make_wecom_corp()
    respx_mock.get(BASE + "gettoken").mock(return_value=token_answer(TOKEN))
    respx_mock.get(BASE + "externalcontact/get_follow_user_list").mock(
        return_value=json_response(err(40001, "invalid credential"))
    )
    # when
    with pytest.raises(errors.InvalidCredential):
        client_of(corp).get_follow_user_list()
    # then
    row = AccessToken.objects.for_corp(corp).get()
    assert row.token_encrypted == "" and row.expires_at is None
