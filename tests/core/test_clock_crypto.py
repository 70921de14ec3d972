from __future__ import annotations

import datetime as dt

import pytest

from siyu.core import clock, crypto


def test_frozen_clock_moves_only_when_told():
    moment = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with clock.frozen_at(moment):
        assert clock.now() == moment
        clock.advance(dt.timedelta(hours=2))
        assert clock.now() == moment + dt.timedelta(hours=2)
    assert clock.now() != moment
    with pytest.raises(RuntimeError):
        clock.advance(dt.timedelta(seconds=1))


def test_encrypt_round_trips_and_is_not_plaintext(settings):
    token = crypto.encrypt("secret-value")
    assert "secret-value" not in token
    assert crypto.decrypt(token) == "secret-value"
    assert crypto.encrypt("") == "" and crypto.decrypt("") == ""


def test_decrypt_with_another_key_is_a_clear_error(settings):
    token = crypto.encrypt("secret-value")
    settings.FIELD_ENCRYPTION_KEY = "a-different-key"
    with pytest.raises(ValueError, match="cannot be decrypted"):
        crypto.decrypt(token)
