"""Reading decrypted callback messages: the fields and lists handlers use, and nothing unsafe parsed."""

from __future__ import annotations

import pytest

from siyu.wecom.messages import MessageError, parse_message


def test_a_message_reads_its_top_level_fields_trimmed_and_its_item_lists():
    message = parse_message(
        "<xml><Event><![CDATA[change_external_chat]]></Event><ChatId> wrOgQh </ChatId>"
        "<MemChangeList><Item>wm1</Item><Item> wm2 </Item></MemChangeList>"
        "<Name><![CDATA[张三]]></Name><Empty/></xml>".encode()
    )
    assert message.get("Event") == "change_external_chat"
    assert message.get("ChatId") == "wrOgQh"
    assert message.get("Name") == "张三"
    assert message.get("Empty") == ""
    assert message.items("MemChangeList") == ["wm1", "wm2"]
    assert message.get("MemChangeList") == ""


def test_a_list_sent_as_comma_separated_text_reads_as_the_same_list():
    assert parse_message(b"<xml><MemChangeList>wm1, wm2,</MemChangeList></xml>").items("MemChangeList") == [
        "wm1",
        "wm2",
    ]


def test_a_child_with_elements_keeps_only_its_own_leading_text_and_a_repeated_child_the_last_value():
    message = parse_message(b"<xml><A>first</A><B>own<C>inner</C>tail</B><A>second</A></xml>")
    assert message.fields == {"A": "second", "B": "own"}
    assert message.lists == {}


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><A>&b;</A></xml>',
        b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><A>1</A></xml>',
        b'<!DOCTYPE xml [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>',
        b"<!DOCTYPE xml><xml><A>1</A></xml>",
        b"<xml><A>&undeclared;</A></xml>",
        b"<xml><A>1</A>",
        b"",
        b"not xml",
    ],
)
def test_documents_with_declarations_entities_or_broken_markup_are_refused(document: bytes):
    with pytest.raises(MessageError):
        parse_message(document)
