"""URL verification (GET, §2.3) and redelivery (§2.5): 5 s timeout, up to 3 more tries, the same request."""

from __future__ import annotations

import socket
import time

from siyu.simulator.app import Simulator
from siyu.simulator.testing import CallbackReceiver, Received, running_simulator
from siyu.wecom.crypto import CallbackCrypto, CallbackCryptoError


def echo_with(crypto: CallbackCrypto):  # type: ignore[no-untyped-def]
    """A receiver's GET handler, as Siyu's must be: verify, decrypt, answer the plaintext alone."""

    def reply(record: Received) -> bytes:
        query = record.query
        try:
            return crypto.verify_and_decrypt(
                query["msg_signature"], query["timestamp"], query["nonce"], query["echostr"]
            )
        except CallbackCryptoError:
            return b"rejected"

    return reply


def test_url_verification_against_a_receiver_that_checks(sim: Simulator) -> None:
    # given
    crypto = CallbackCrypto(sim.config.token, sim.config.aes_key, sim.config.corpid)
    with CallbackReceiver(behaviour=["echo"], reply=echo_with(crypto)) as rx:
        sim.config.callback_url = rx.url
        # when
        result = sim.sender.verify_url()
        # then
        assert result == {"ok": True, "http_status": 200, "error": None}
        request = rx.received[0]
        assert request.method == "GET"
        assert set(request.query) == {"msg_signature", "timestamp", "nonce", "echostr"}
        decrypted = crypto.decrypt(request.query["echostr"])
        assert decrypted.isdigit()


def test_url_verification_fails_when_the_receiver_has_another_token(sim: Simulator) -> None:
    # given
    wrong = CallbackCrypto("SomeOtherToken", sim.config.aes_key, sim.config.corpid)
    with CallbackReceiver(behaviour=["echo"], reply=echo_with(wrong)) as rx:
        sim.config.callback_url = rx.url
        # when
        result = sim.sender.verify_url()
    # then
    assert result["ok"] is False


def test_a_timeout_is_redelivered_three_more_times_then_given_up(
    sim: Simulator, receiver: CallbackReceiver
) -> None:
    # given: the receiver never answers within the (shortened) timeout
    receiver.behaviour = ["slow"]
    # when
    delivery = sim.sender.send("<xml><Event>x</Event></xml>", "test")
    assert sim.sender.wait_idle(10)
    posts = receiver.posts()
    # then
    assert delivery is not None
    assert len(posts) == 4
    assert delivery.status == "failed" and delivery.attempts == 4 and delivery.errors == ["timeout"] * 4
    assert len({(p.body, tuple(sorted(p.query.items()))) for p in posts}) == 1  # the very same request


def test_a_late_answer_then_a_quick_one_is_delivered(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    receiver.behaviour = ["slow", "ok"]
    # when
    delivery = sim.sender.send("<xml/>", "test")
    sim.sender.wait_idle(10)
    # then
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert len(receiver.posts()) == 2


def test_a_dropped_connection_is_redelivered(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    receiver.behaviour = ["drop", "drop", "ok"]
    # when
    delivery = sim.sender.send("<xml/>", "test")
    sim.sender.wait_idle(10)
    # then
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert delivery.errors[0].startswith("connection error")


def test_a_refused_connection_is_retried_then_given_up() -> None:
    # given: a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with running_simulator(callback_url=f"http://127.0.0.1:{port}/cb", callback_retry_interval=0.01) as sim:
        # when
        delivery = sim.sender.send("<xml/>", "test")
        sim.sender.wait_idle(10)
    # then
    assert delivery is not None
    assert (delivery.status, delivery.attempts) == ("failed", 4)
    assert sim.sender.counts["failed"] == 1


def test_non_200_is_not_retried_unless_configured(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    receiver.behaviour = ["500"]
    # when
    plain = sim.sender.send("<xml/>", "test")
    sim.sender.wait_idle(10)
    sim.config.callback_retry_on_non_200 = True
    retried = sim.sender.send("<xml/>", "test")
    sim.sender.wait_idle(10)
    # then
    assert plain is not None and retried is not None
    assert (plain.status, plain.attempts, plain.http_status) == ("failed", 1, 500)
    assert (retried.status, retried.attempts) == ("failed", 4)


def test_the_retry_count_and_interval_are_configurable(sim: Simulator, receiver: CallbackReceiver) -> None:
    # given
    receiver.behaviour = ["drop"]
    sim.config.callback_retries = 1
    sim.config.callback_retry_interval = 0.3
    # when
    started = time.monotonic()
    delivery = sim.sender.send("<xml/>", "test")
    sim.sender.wait_idle(10)
    elapsed = time.monotonic() - started
    # then
    assert delivery is not None and delivery.attempts == 2
    assert elapsed >= 0.3


def test_no_callback_url_means_no_callbacks() -> None:
    with running_simulator() as sim:
        # when
        result = sim.actions.scan_contact_way(state="web-home")
        # then
        assert result["welcome_code"]
        assert sim.sender.counts["queued"] == 0 and list(sim.sender.log) == []
