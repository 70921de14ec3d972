"""Helpers for the inbound tests: a corp with a callback configuration, WeCom-shaped events, signed POSTs."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.test import Client

from siyu.corps.models import Corp
from siyu.corps.services import create_corp
from siyu.wecom.crypto import CallbackCrypto
from siyu.wecom.inbox import DrainReport, drain_inbox

# Vector A of the protocol reference (wecom-api.md §2.6): the official sample's configuration.
A_CORPID = "wx5823bf96d3bd56c7"
A_TOKEN = "QDG6eK"
A_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"

_nonces = itertools.count(1000)


def callback_corp(
    *,
    corpid: str = A_CORPID,
    token: str = A_TOKEN,
    aes_key: str = A_AES_KEY,
    secret: str = "corp-app-secret",  # noqa: S107 - a test corp's fake secret
) -> tuple[Corp, CallbackCrypto]:
    corp = create_corp(name=f"回调 {corpid}", corpid=corpid, secret=secret, token=token, aes_key=aes_key)
    return corp, CallbackCrypto(token=token, encoding_aes_key=aes_key, receive_id=corpid)


def event_xml(
    event: str, change_type: str | None = None, *, create_time: int | None = None, **fields: Any
) -> str:
    """A decrypted event as WeCom sends it (§3): header, Event, ChangeType, then the given fields in order."""
    parts = [
        "<xml>",
        "<ToUserName><![CDATA[toUser]]></ToUserName>",
        "<FromUserName><![CDATA[sys]]></FromUserName>",
        f"<CreateTime>{create_time if create_time is not None else int(time.time())}</CreateTime>",
        "<MsgType><![CDATA[event]]></MsgType>",
        f"<Event><![CDATA[{event}]]></Event>",
    ]
    if change_type is not None:
        parts.append(f"<ChangeType><![CDATA[{change_type}]]></ChangeType>")
    for name, value in fields.items():
        if isinstance(value, list):
            parts.append(f"<{name}>" + "".join(f"<Item><![CDATA[{v}]]></Item>" for v in value) + f"</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    parts.append("</xml>")
    return "\n".join(parts)


def envelope(
    crypto: CallbackCrypto, plaintext: bytes, *, agent_id: str = "1000002"
) -> tuple[dict[str, str], bytes]:
    """Encrypt and sign a message like WeCom: the query parameters and the POST body."""
    encrypt = crypto.encrypt(plaintext)
    timestamp = str(int(time.time()))
    nonce = str(next(_nonces))
    query = {"msg_signature": crypto.sign(timestamp, nonce, encrypt), "timestamp": timestamp, "nonce": nonce}
    body = (
        f"<xml><ToUserName><![CDATA[{crypto.receive_id}]]></ToUserName>\n"
        f"<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n<AgentID><![CDATA[{agent_id}]]></AgentID>\n</xml>"
    ).encode()
    return query, body


def post_callback(
    client: Client, crypto: CallbackCrypto, plaintext: str | bytes, *, corpid: str | None = None
) -> Any:
    """POST one encrypted callback to the receiver, as WeCom would."""
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    query, body = envelope(crypto, data)
    path = f"/wecom/callback/{corpid or crypto.receive_id}/?" + "&".join(f"{k}={v}" for k, v in query.items())
    return client.post(path, data=body, content_type="text/xml")


# --- a simulated WeCom whose callbacks reach the real receiver ----------------------------------------------


@dataclass
class WeComEnv:
    """The simulator, a corp configured like it, and delivery of its callbacks through the receiver.

    The simulator posts its encrypted callbacks to a recording endpoint; ``deliver`` forwards each one to
    ``/wecom/callback/<corpid>/`` exactly as received (query and body), so every event goes through signature
    check, decryption and the inbox like one from WeCom.
    """

    sim: Any
    receiver: Any
    corp: Corp
    client: Client
    forwarded: int = 0
    responses: list[int] = field(default_factory=list)

    def deliver(self, minimum: int = 1, quiet: float = 0.15, timeout: float = 10.0) -> int:
        """Forward callbacks that arrived since last time (at least ``minimum``, then until quiet)."""
        self.receiver.wait_for(self.forwarded + minimum, timeout=timeout)
        seen = -1
        while seen != len(self.receiver.posts()):
            seen = len(self.receiver.posts())
            time.sleep(quiet)
        posts = self.receiver.posts()[self.forwarded :]
        for post in posts:
            response = self.client.post(
                f"/wecom/callback/{self.corp.corpid}/?{urlencode(post.query)}",
                data=post.body,
                content_type="text/xml",
            )
            self.responses.append(response.status_code)
        self.forwarded += len(posts)
        return len(posts)

    def work(self) -> DrainReport:
        """Drain the corp's inbox with the real worker function."""
        return drain_inbox(corp_id=self.corp.pk)

    def act(self, action: str, minimum: int = 1, **kwargs: Any) -> Any:
        """Do a client-side action in the simulator, deliver its callbacks and work them."""
        result = getattr(self.sim.actions, action)(**kwargs)
        self.deliver(minimum)
        self.work()
        return result


@contextlib.contextmanager
def simulated_wecom(settings: Any, **overrides: Any) -> Iterator[WeComEnv]:
    """A running simulator with a matching Siyu corp; WECOM_API_BASE points at it."""
    from siyu.simulator.testing import CallbackReceiver, running_simulator
    from siyu.wecom import tokens

    values = {"staff": 5, "customers": 30, "groups": 3, **overrides}
    with CallbackReceiver() as receiver, running_simulator(callback_url=receiver.url, **values) as sim:
        settings.WECOM_API_BASE = sim.api_base
        tokens.forget_cached()
        config = sim.config
        corp = create_corp(
            name=config.corp_name,
            corpid=config.corpid,
            secret=config.secret,
            token=config.token,
            aes_key=config.aes_key,
        )
        yield WeComEnv(sim=sim, receiver=receiver, corp=corp, client=Client())
        tokens.forget_cached()
