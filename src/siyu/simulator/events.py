"""Callback messages (decrypted XML, wecom-api.md §3) and the encrypted envelope (§2.4).

Layout follows the documented samples: one element per line, text in CDATA, numbers bare, members of
``MemChangeList`` as ``<Item>`` elements.
"""

from __future__ import annotations

from collections.abc import Sequence

Value = str | int | Sequence[str] | None


class Bare(str):
    """A string written without CDATA (the documented sample writes member versions bare)."""

    __slots__ = ()


def cdata(text: str) -> str:
    # "]]>" cannot appear inside CDATA: split it across two sections, as XML writers do.
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def element(name: str, value: Value) -> str:
    if isinstance(value, Bare):
        return f"<{name}>{value}</{name}>"
    if isinstance(value, int):
        return f"<{name}>{value}</{name}>"
    if isinstance(value, str):
        return f"<{name}>{cdata(value)}</{name}>"
    items = "".join(f"<Item>{cdata(item)}</Item>" for item in value or ())
    return f"<{name}>{items}</{name}>"


def message(corpid: str, create_time: int, event: str, fields: Sequence[tuple[str, Value]]) -> str:
    """A complete event message: the common header, then ``fields`` in order (``None`` values skipped)."""
    lines = [
        element("ToUserName", corpid),
        element("FromUserName", "sys"),
        element("CreateTime", create_time),
        element("MsgType", "event"),
        element("Event", event),
    ]
    lines.extend(element(name, value) for name, value in fields if value is not None)
    return "<xml>\n" + "\n".join(lines) + "\n</xml>"


def external_contact(
    corpid: str,
    create_time: int,
    change_type: str,
    *,
    userid: str,
    external_userid: str,
    state: str | None = None,
    welcome_code: str | None = None,
    source: str | None = None,
    fail_reason: str | None = None,
) -> str:
    """``change_external_contact`` (§3.1); ``transfer_fail`` puts FailReason first, as documented."""
    fields: list[tuple[str, Value]] = [("ChangeType", change_type)]
    if fail_reason is not None:
        fields.append(("FailReason", fail_reason))
    fields += [
        ("UserID", userid),
        ("ExternalUserID", external_userid),
        ("State", state or None),
        ("WelcomeCode", welcome_code),
        ("Source", source),
    ]
    return message(corpid, create_time, "change_external_contact", fields)


def external_chat(
    corpid: str,
    create_time: int,
    change_type: str,
    *,
    chat_id: str,
    update_detail: str | None = None,
    join_scene: int | None = None,
    quit_scene: int | None = None,
    members: Sequence[str] | None = None,
    last_version: str | None = None,
    current_version: str | None = None,
) -> str:
    """``change_external_chat`` (§3.2): create, update (with UpdateDetail) or dismiss."""
    if join_scene is not None or quit_scene is not None:
        # The documented sample carries both scenes on a member change; the other one is 0.
        join_scene, quit_scene = join_scene or 0, quit_scene or 0
    fields: list[tuple[str, Value]] = [
        ("ChatId", chat_id),
        ("ChangeType", change_type),
        ("UpdateDetail", update_detail),
        ("JoinScene", join_scene),
        ("QuitScene", quit_scene),
    ]
    if members is not None:
        fields += [("MemChangeCnt", len(members)), ("MemChangeList", members)]
    if last_version is not None:
        fields += [("LastMemVer", Bare(last_version)), ("CurMemVer", Bare(current_version or ""))]
    return message(corpid, create_time, "change_external_chat", fields)


def external_tag(
    corpid: str,
    create_time: int,
    change_type: str,
    *,
    item_id: str,
    tag_type: str | None,
    strategy_id: int | None = None,
) -> str:
    """``change_external_tag`` (§3.3); shuffle carries no TagType."""
    fields: list[tuple[str, Value]] = [
        ("Id", item_id),
        ("TagType", tag_type if change_type != "shuffle" else None),
        ("ChangeType", change_type),
        ("StrategyId", strategy_id),
    ]
    return message(corpid, create_time, "change_external_tag", fields)


def change_contact(
    corpid: str, create_time: int, change_type: str, fields: Sequence[tuple[str, Value]]
) -> str:
    """``change_contact`` (address-book changes made in the admin console)."""
    return message(corpid, create_time, "change_contact", [("ChangeType", change_type), *fields])


def envelope(corpid: str, encrypted: str, agentid: int | None) -> str:
    """The POST body around an encrypted message (§2.4, vector B2's layout)."""
    lines = [element("ToUserName", corpid), element("Encrypt", encrypted)]
    if agentid is not None:
        lines.append(element("AgentID", str(agentid)))
    return "<xml>" + "\n".join(lines) + "\n</xml>"
