"""Decrypted callback messages: safe parsing and the few facts the inbox needs about each one.

Parsing uses ``defusedxml`` (no entities, no DTDs, no external references). A message is flat XML
(``<xml><Event>…</Event><ChangeType>…</ChangeType>…</xml>``); the only nested element WeCom sends in the
events we handle is ``MemChangeList`` (``<Item>`` children, or comma-separated text in some deliveries).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

CONTACT_EVENT = "change_external_contact"
CHAT_EVENT = "change_external_chat"
TAG_EVENT = "change_external_tag"
ORG_EVENT = "change_contact"


class MessageError(ValueError):
    """The bytes are not a WeCom XML message."""


def parse_xml(data: bytes | str) -> Element:
    """Parse untrusted XML safely; anything unsafe or malformed is a ``MessageError``."""
    try:
        return fromstring(data)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise MessageError(f"not a well-formed, safe XML document: {type(exc).__name__}") from exc


@dataclass(frozen=True)
class Message:
    """A decrypted callback message: its top-level fields as text, and lists for ``<Item>`` containers."""

    fields: dict[str, str]
    lists: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default)

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.fields.get(name, "").strip()
        try:
            return int(value) if value else default
        except ValueError:
            return default

    def items(self, name: str) -> list[str]:
        """A list field: ``<Item>`` children, or the comma-separated text some deliveries use."""
        if name in self.lists:
            return self.lists[name]
        text = self.fields.get(name, "")
        return [part.strip() for part in text.split(",") if part.strip()]

    @property
    def msg_type(self) -> str:
        return self.get("MsgType")

    @property
    def event(self) -> str:
        """The Event of an event message, else the MsgType (text, image…)."""
        return self.get("Event") if self.msg_type == "event" else self.msg_type

    @property
    def change_type(self) -> str:
        return self.get("ChangeType")

    @property
    def create_time(self) -> dt.datetime | None:
        seconds = self.get_int("CreateTime")
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC) if seconds else None

    @property
    def ordering_key(self) -> str:
        """Messages with one key are worked in arrival order: a customer, a group, all tags, the org."""
        if self.event == CONTACT_EVENT and self.get("ExternalUserID"):
            return f"contact:{self.get('ExternalUserID')}"[:160]
        if self.event == CHAT_EVENT and self.get("ChatId"):
            return f"chat:{self.get('ChatId')}"[:160]
        if self.event == TAG_EVENT:
            return "tags"  # a group and its tags are created and reordered together
        if self.event == ORG_EVENT:
            return "org"  # a department before its members, a member before their userid changes
        return f"other:{self.event}"[:160]


def parse_message(data: bytes | str) -> Message:
    """Read a decrypted callback message."""
    root = parse_xml(data)
    fields: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for child in root:
        items = [(item.text or "").strip() for item in child if item.tag == "Item"]
        if items:
            lists[child.tag] = items
        fields[child.tag] = (child.text or "").strip()
    return Message(fields=fields, lists=lists)
