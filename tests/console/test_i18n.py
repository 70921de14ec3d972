"""The console speaks Simplified Chinese by default and English on request, from a complete catalogue.

``scripts/check_translations.py`` (``make lint``) catches strings added to the code without a translation;
these tests check the committed catalogue: every entry translated, the shipped ``.mo`` compiled from the
``.po`` as it stands, and the pages actually switching language.
"""

from __future__ import annotations

import ast
import gettext
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tests.conftest import World

CATALOGUE = Path(settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"
PO = CATALOGUE / "django.po"
MO = CATALOGUE / "django.mo"
LIST = reverse("customers:list")
# msgfmt's placeholders: python-format (%(name)s, %(n)d) and brace-format ({0}, {name}).
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|\{\w*\}")


@dataclass
class Entry:
    """One message of a .po file."""

    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def read_po(path: Path) -> list[Entry]:
    """Entries of a .po file, header first, obsolete (``#~``) ones left out: enough of the format for ours."""
    entries: list[Entry] = []
    current: Entry | None = None
    key: tuple[str, int] = ("", 0)
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip() or line.startswith("#~"):
            if current is not None:
                entries.append(current)
                current = None
            continue
        if current is None:
            current = Entry()
        if line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        elif line.startswith('"'):
            append(current, key, ast.literal_eval(line))
        else:
            keyword, _, value = line.partition(" ")
            match = re.fullmatch(r"msgstr\[(\d+)\]", keyword)
            key = ("msgstr", int(match.group(1))) if match else (keyword, 0)
            append(current, key, ast.literal_eval(value))
    return entries


def append(entry: Entry, key: tuple[str, int], text: str) -> None:
    name, index = key
    if name == "msgstr":
        entry.msgstr[index] = entry.msgstr.get(index, "") + text
    elif name == "msgid":
        entry.msgid += text
    elif name == "msgctxt":
        entry.msgctxt = (entry.msgctxt or "") + text
    elif name == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + text
    else:
        raise ValueError(f"unexpected .po keyword {name!r}")


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return read_po(PO)


def messages(entries: list[Entry]) -> list[Entry]:
    return [e for e in entries if e.msgid]


def label(entry: Entry) -> str:
    return f"{entry.msgctxt}|{entry.msgid}" if entry.msgctxt else entry.msgid


def test_the_catalogue_has_a_utf8_chinese_header_with_one_plural_form(entries: list[Entry]) -> None:
    # given
    header = entries[0]

    # then
    assert header.msgid == "" and "fuzzy" not in header.flags
    fields = dict(line.split(": ", 1) for line in header.msgstr[0].splitlines())
    assert fields["Language"] == "zh_Hans"
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == "nplurals=1; plural=0;"
    assert "@" not in header.msgstr[0]  # no one's e-mail address


def test_every_message_is_translated_and_none_is_fuzzy(entries: list[Entry]) -> None:
    # when
    untranslated = [label(e) for e in messages(entries) if not e.msgstr or not all(e.msgstr.values())]
    fuzzy = [label(e) for e in messages(entries) if "fuzzy" in e.flags]

    # then
    assert len(messages(entries)) > 400
    assert untranslated == []
    assert fuzzy == []


def test_plural_messages_have_the_one_form_chinese_has(entries: list[Entry]) -> None:
    # when
    wrong = [label(e) for e in messages(entries) if e.msgid_plural is not None and set(e.msgstr) != {0}]

    # then
    assert wrong == []


def test_translations_keep_their_placeholders_and_markup(entries: list[Entry]) -> None:
    # when
    broken = []
    for entry in messages(entries):
        source = set(PLACEHOLDER.findall(entry.msgid + (entry.msgid_plural or "")))
        for text in entry.msgstr.values():
            if set(PLACEHOLDER.findall(text)) != source or text.count("<") != entry.msgid.count("<"):
                broken.append((label(entry), text))

    # then
    assert broken == []


def test_the_shipped_mo_is_compiled_from_the_po_as_it_stands(entries: list[Entry]) -> None:
    # given
    with MO.open("rb") as fp:
        compiled = gettext.GNUTranslations(fp)

    # when
    stale = []
    for entry in messages(entries):
        if entry.msgid_plural is not None:
            got = [compiled.ngettext(entry.msgid, entry.msgid_plural, n) for n in (1, 2)]
            want = [entry.msgstr[0]] * 2
        elif entry.msgctxt is not None:
            got, want = [compiled.pgettext(entry.msgctxt, entry.msgid)], [entry.msgstr[0]]
        else:
            got, want = [compiled.gettext(entry.msgid)], [entry.msgstr[0]]
        if got != want:
            stale.append(label(entry))
    keys = {k for k in compiled._catalog if k != ""}  # type: ignore[attr-defined]

    # then
    assert stale == [], "the .mo is out of date: run `django-admin compilemessages` in src/siyu"
    assert len(keys) == len(messages(entries)), "the .mo holds messages the .po no longer has"


def login(client: Client, world: World) -> None:
    client.force_login(get_user_model().objects.get(pk=world.admin.user_id))


def test_the_console_is_in_chinese_by_default(client: Client, world: World) -> None:
    # given
    login(client, world)

    # when
    html = client.get(LIST).content.decode()

    # then
    assert '<html lang="zh-hans">' in html
    for text in ("客户", "标签", "导出 CSV", "退出登录", "跟进人", "审计日志"):
        assert text in html
    for text in ("Customers", "Export CSV", "Log out", "Following staff", "Audit log"):
        assert text not in html


def test_switching_to_english_shows_english_and_switching_back_shows_chinese(
    client: Client, world: World
) -> None:
    # given
    login(client, world)

    # when
    english = client.post("/i18n/setlang/", {"language": "en", "next": LIST}, follow=True).content.decode()
    chinese = client.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": LIST}, follow=True
    ).content.decode()

    # then
    assert '<html lang="en">' in english
    for text in ("Customers", "Export CSV", "Log out", "Following staff", "Audit log"):
        assert text in english
    for text in ("导出 CSV", "退出登录", "跟进人", "审计日志"):
        assert text not in english
    assert '<html lang="zh-hans">' in chinese and "导出 CSV" in chinese and "Export CSV" not in chinese


@pytest.mark.parametrize(
    ("accept_language", "lang", "logout"),
    [
        ("zh-CN,zh;q=0.9", "zh-hans", "退出登录"),
        ("en-US,en;q=0.9", "en", "Log out"),
        ("fr-FR", "zh-hans", "退出登录"),
    ],
)
def test_a_browser_without_a_choice_gets_its_own_language_or_chinese(
    client: Client, world: World, accept_language: str, lang: str, logout: str
) -> None:
    # given
    login(client, world)

    # when
    html = client.get(LIST, headers={"Accept-Language": accept_language}).content.decode()

    # then
    assert f'<html lang="{lang}">' in html
    assert logout in html
