"""Corp creation (validation, secrets encrypted at rest) and API keys."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import translation

from siyu.core.errors import Conflict, Invalid
from siyu.corps.models import ApiKey, AuditLog, Corp
from siyu.corps.services import audit, authenticate_api_key, create_api_key, create_corp, revoke_api_key

pytestmark = pytest.mark.django_db

# Vector B of the WeCom protocol reference: a real 43-character EncodingAESKey and a 32-character Token.
AES_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"


def test_create_corp_stores_secrets_encrypted():
    corp = create_corp(
        name="测试", corpid="ww1436e0e65a779aee", secret="s3cr3t-value", token=TOKEN, aes_key=AES_KEY
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_encrypted, token_encrypted, aes_key_encrypted FROM corps_corp WHERE id = %s",
            [corp.pk],
        )
        raw = " ".join(cursor.fetchone())
    assert "s3cr3t-value" not in raw and TOKEN not in raw and AES_KEY not in raw
    fresh = Corp.objects.get(pk=corp.pk)
    assert (fresh.secret, fresh.token, fresh.aes_key) == ("s3cr3t-value", TOKEN, AES_KEY)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"aes_key": AES_KEY[:-1]}, "aes_key", "exactly 43"),
        ({"aes_key": AES_KEY + "x"}, "aes_key", "exactly 43"),
        ({"aes_key": AES_KEY[:-1] + "_"}, "aes_key", "letters and digits"),
        ({"token": "t" * 33}, "token", "1–32"),
        ({"token": "bad token"}, "token", "1–32"),
        ({"corpid": "bad id!"}, "corpid", "corpid"),
        ({"name": "  "}, "name", "required"),
    ],
)
def test_create_corp_refuses_bad_input_clearly(kwargs, field, message):
    args = {"name": "测试", "corpid": "wwok", "secret": "s", "token": TOKEN, "aes_key": AES_KEY, **kwargs}
    with translation.override("en"), pytest.raises(Invalid) as error:
        create_corp(**args)
    assert error.value.field == field
    assert message in error.value.message
    assert not Corp.objects.exists()


def test_duplicate_corpid_is_a_conflict():
    create_corp(name="a", corpid="wwdup")
    with pytest.raises(Conflict):
        create_corp(name="b", corpid="wwdup")


def test_api_key_is_hashed_authenticates_and_can_be_revoked():
    corp = create_corp(name="a", corpid="wwkeys")
    new = create_api_key(corp=corp, name="ERP")
    assert new.plaintext.startswith("siyu_")
    assert new.plaintext not in new.api_key.key_hash
    assert authenticate_api_key(new.plaintext) == new.api_key
    assert authenticate_api_key(new.plaintext + "x") is None
    assert authenticate_api_key("Bearer nonsense") is None
    revoke_api_key(api_key=new.api_key)
    assert authenticate_api_key(new.plaintext) is None
    with pytest.raises(Invalid):
        create_api_key(corp=corp, role="god")
    assert ApiKey.objects.for_corp(corp).count() == 1


def test_audit_records_who_and_what():
    corp = create_corp(name="a", corpid="wwaudit")
    audit(corp=corp, action="customer.view", object_type="customer", object_id=7)
    entry = AuditLog.objects.for_corp(corp).get()
    assert (entry.action, entry.object_type, entry.object_id) == ("customer.view", "customer", "7")
