"""The callback receiver: URL check, verify–decrypt–store before 200, dedupe, refusals, database down."""

from __future__ import annotations

from unittest import mock
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django_tasks_db.models import DBTaskResult

from siyu.wecom.models import InboxEvent
from siyu.wecom.receiver import _crypto
from tests.wecom.inbound_support import A_CORPID, callback_corp, envelope, event_xml, post_callback

pytestmark = pytest.mark.django_db

# Vector A1 (wecom-api.md §2.6): the official URL-verification sample.
A1 = {
    "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
    "timestamp": "1409659589",
    "nonce": "263014780",
}
A1_ECHOSTR_URLENCODED = (
    "P9nAzCzyDtyTWESHep1vC5X9xho%2FqYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp%2B4RPcs8TgAE7OaBO%2BFZXvnaqQ%3D%3D"
)
A1_REPLY = b"1616140317555161061"
# Vector A2: the official POST sample (a text message, not an event).
A2_QUERY = "msg_signature=477715d11cdb4164915debcba66cb864d751f3e6&timestamp=1409659813&nonce=1372623149"
A2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUk"
    "SUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ek"
    "UNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+"
    "rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R"
    "07+qN+E7Q=="
)
A2_BODY = (
    "<xml>\n  <ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n"
    f"  <Encrypt><![CDATA[{A2_ENCRYPT}]]></Encrypt>\n  <AgentID><![CDATA[218]]></AgentID>\n</xml>"
).encode()

URL = f"/wecom/callback/{A_CORPID}/"


def _add_event(
    external_userid: str = "wmCustomer0001", userid: str = "wangfang", create_time: int = 1700000000
) -> str:
    return event_xml(
        "change_external_contact",
        "add_external_contact",
        create_time=create_time,
        UserID=userid,
        ExternalUserID=external_userid,
        State="web-home",
        WelcomeCode="WELCOMECODE",
    )


def test_get_answers_url_verification_with_vector_a1(client):
    # given the official sample's corp and its URL-encoded echostr, exactly as WeCom sends it
    callback_corp()
    # when WeCom verifies the URL
    response = client.get(f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}")
    # then the answer is the decrypted echostr and nothing else: no quotes, no BOM, no newline
    assert response.status_code == 200
    assert response.content == A1_REPLY
    assert response["Content-Type"].startswith("text/plain")


def test_get_tolerates_an_unencoded_plus_in_echostr(client):
    # given an echostr whose "+" was not URL-encoded (it arrives as a space after decoding)
    callback_corp()
    raw = A1_ECHOSTR_URLENCODED.replace("%2B", "+")
    # when
    response = client.get(f"{URL}?{urlencode(A1)}&echostr={raw}")
    # then the "+" is put back before base64 decoding
    assert response.status_code == 200
    assert response.content == A1_REPLY


def test_get_with_a_wrong_signature_is_refused(client):
    callback_corp()
    response = client.get(
        f"{URL}?{urlencode({**A1, 'msg_signature': '0' * 40})}&echostr={A1_ECHOSTR_URLENCODED}"
    )
    assert response.status_code == 403
    assert A1_REPLY not in response.content


def test_post_of_vector_a2_is_stored_once_without_its_contents(client):
    # given the official POST sample, a text message sent to the app
    callback_corp()
    # when WeCom delivers it, then redelivers it
    first = client.post(f"{URL}?{A2_QUERY}", data=A2_BODY, content_type="text/xml")
    again = client.post(f"{URL}?{A2_QUERY}", data=A2_BODY, content_type="text/xml")
    # then both are acknowledged with an empty 200, and one row records it — without the chat text
    assert (first.status_code, first.content) == (200, b"")
    assert (again.status_code, again.content) == (200, b"")
    row = InboxEvent.objects.get()
    assert row.event == "text"
    assert row.status == InboxEvent.Status.IGNORED
    assert row.message == ""
    assert "hello" not in row.outcome


def test_an_event_is_stored_before_the_acknowledgement(client):
    # given
    corp, crypto = callback_corp()
    # when
    response = post_callback(client, crypto, _add_event())
    # then the row is there, pending for the worker, with what the worker needs to order it
    assert (response.status_code, response.content) == (200, b"")
    row = InboxEvent.objects.for_corp(corp).get()
    assert row.status == InboxEvent.Status.PENDING
    assert (row.event, row.change_type) == ("change_external_contact", "add_external_contact")
    assert row.ordering_key == "contact:wmCustomer0001"
    assert row.event_time is not None and int(row.event_time.timestamp()) == 1700000000
    assert "wmCustomer0001" in row.message


def test_redeliveries_are_stored_once(client):
    # given one event delivered three times, each encrypted afresh (new random prefix, nonce, signature),
    # as WeCom does when our answer is slow
    corp, crypto = callback_corp()
    plaintext = _add_event()
    # when
    statuses = [post_callback(client, crypto, plaintext).status_code for _ in range(3)]
    # then every delivery is acknowledged and one row exists
    assert statuses == [200, 200, 200]
    assert InboxEvent.objects.for_corp(corp).count() == 1


def test_two_events_that_differ_only_in_time_are_two_rows(client):
    # every customer-contact event has FromUserName=sys: the key is the message, not FromUserName+CreateTime
    corp, crypto = callback_corp()
    post_callback(client, crypto, _add_event(create_time=1700000000))
    post_callback(client, crypto, _add_event(create_time=1700000001))
    post_callback(client, crypto, _add_event(external_userid="wmOther", create_time=1700000000))
    assert InboxEvent.objects.for_corp(corp).count() == 3


def test_a_stored_event_wakes_the_worker_once_per_second(client, django_capture_on_commit_callbacks):
    # given
    cache.clear()
    _corp, crypto = callback_corp()
    # when three events arrive in a burst
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            post_callback(client, crypto, _add_event(external_userid=f"wmBurst{n}"))
    # then at most two drains are queued (this second's and the next second's), not one per event
    tasks = list(DBTaskResult.objects.values_list("task_path", flat=True))
    assert 1 <= len(tasks) <= 2
    assert set(tasks) == {"siyu.wecom.inbox.drain_inbox_task"}


def test_a_bad_signature_is_refused_and_nothing_is_stored(client):
    # given
    _corp, crypto = callback_corp()
    query, body = envelope(crypto, _add_event().encode())
    query["msg_signature"] = "f" * 40
    # when
    response = client.post(f"{URL}?{urlencode(query)}", data=body, content_type="text/xml")
    # then
    assert response.status_code == 403
    assert not InboxEvent.objects.exists()


def test_an_event_for_another_corp_is_refused(client):
    # given corp B configured with the same Token and key as corp A: only the receiveid tells them apart
    _corp_a, crypto_a = callback_corp()
    corp_b, _crypto_b = callback_corp(corpid="wwsecondcorp0001")
    # when a message encrypted for corp A is posted to corp B's URL
    response = post_callback(client, crypto_a, _add_event(), corpid=corp_b.corpid)
    # then B refuses it (receiveid mismatch) and nothing is stored
    assert response.status_code == 403
    assert not InboxEvent.objects.exists()


def test_an_unknown_corp_is_404(client):
    callback_corp()
    response = client.post(
        "/wecom/callback/wwnobody/?msg_signature=x&timestamp=1&nonce=1",
        data=b"<xml/>",
        content_type="text/xml",
    )
    assert response.status_code == 404


def test_a_corp_without_callback_configuration_is_404(client):
    from siyu.corps.services import create_corp

    create_corp(name="未配置", corpid="wwnocallback01")
    response = client.get("/wecom/callback/wwnocallback01/?msg_signature=x&timestamp=1&nonce=1&echostr=x")
    assert response.status_code == 404


def test_an_oversized_body_is_413_and_not_read(client, settings):
    # given a limit of 1 KiB
    settings.SIYU = {**settings.SIYU, "WECOM_CALLBACK_MAX_BYTES": 1024}
    _corp, crypto = callback_corp()
    query, _body = envelope(crypto, _add_event().encode())
    # when a 2 KiB body arrives
    response = client.post(
        f"{URL}?{urlencode(query)}", data=b"<xml>" + b"x" * 2048 + b"</xml>", content_type="text/xml"
    )
    # then
    assert response.status_code == 413
    assert not InboxEvent.objects.exists()


def test_entity_expansion_is_refused(client):
    # given a "billion laughs" envelope: defusedxml refuses entity declarations
    callback_corp()
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
        b"<xml><Encrypt>&lol2;</Encrypt></xml>"
    )
    # when
    response = client.post(f"{URL}?{A2_QUERY}", data=bomb, content_type="text/xml")
    # then
    assert response.status_code == 400
    assert not InboxEvent.objects.exists()


def test_a_malformed_envelope_is_400(client):
    callback_corp()
    response = client.post(f"{URL}?{A2_QUERY}", data=b"<xml><Encrypt>", content_type="text/xml")
    assert response.status_code == 400
    response = client.post(f"{URL}?{A2_QUERY}", data=b"<xml><Nothing/></xml>", content_type="text/xml")
    assert response.status_code == 400


def test_only_get_and_post_are_allowed(client):
    callback_corp()
    assert client.put(URL).status_code == 405


def test_database_down_answers_5xx_and_the_redelivery_is_stored(client):
    # given
    corp, crypto = callback_corp()
    plaintext = _add_event()
    # when the inbox insert fails as it does when the database is down
    with mock.patch.object(InboxEvent.objects, "create", side_effect=OperationalError("database is down")):
        down = post_callback(client, crypto, plaintext)
    # then WeCom is told to retry, and nothing was stored
    assert down.status_code == 503
    assert not InboxEvent.objects.exists()
    # when WeCom redelivers after the database is back
    again = post_callback(client, crypto, plaintext)
    # then it is stored, once
    assert again.status_code == 200
    assert InboxEvent.objects.for_corp(corp).count() == 1


def test_a_changed_token_takes_effect_at_once(client):
    # given a verified callback configuration that is then changed
    corp, _crypto_old = callback_corp()
    assert client.get(f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}").status_code == 200
    from siyu.core import crypto as field_crypto

    corp.token_encrypted = field_crypto.encrypt("NewToken1")
    corp.save(update_fields=["token_encrypted"])
    # when the old signature arrives
    response = client.get(f"{URL}?{urlencode(A1)}&echostr={A1_ECHOSTR_URLENCODED}")
    # then it no longer verifies (the cached cipher is keyed on the stored configuration)
    assert response.status_code == 403
    assert _crypto.cache_info().currsize >= 2
