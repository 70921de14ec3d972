"""Fail when the code's user-facing strings and the zh_Hans catalogue disagree (``make lint``).

Django's ``makemessages`` runs on a temporary copy of ``src/siyu``: it writes scratch files next to the
templates it reads, so never in the working tree. It merges the committed catalogue into what it extracts. A
msgid that comes out untranslated or fuzzy is a string someone added without translating it; a committed msgid
that no longer comes out is stale. Either way the fix is the same three steps, printed on failure. Needs GNU
gettext (``xgettext``, ``msgmerge``), as ``makemessages`` itself does.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "siyu"
CATALOGUE = Path("locale") / "zh_Hans" / "LC_MESSAGES" / "django.po"
LOCALE = "zh_Hans"
# The simulator stands in for WeCom in demos and tests; it is not Siyu's user interface.
IGNORE = ["simulator/*"]
FIX = f"""To fix it:
  cd src/siyu
  ../../.venv/bin/django-admin makemessages -l {LOCALE} --settings=siyu.config.settings \\
      --ignore 'simulator/*' --no-obsolete
  # translate every new entry in {CATALOGUE} (no empty msgstr, no "fuzzy" flag), then
  ../../.venv/bin/django-admin compilemessages --settings=siyu.config.settings --ignore 'simulator/*'
  # and commit both django.po and django.mo."""


@dataclass
class Entry:
    """One message of a .po file: its key (context and msgid), translations and flags."""

    msgctxt: str | None = None
    msgid: str = ""
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"{self.msgctxt} | {self.msgid}" if self.msgctxt is not None else self.msgid


def read_po(path: Path) -> dict[str, Entry]:
    """The messages of a .po file by key, without the header and obsolete (``#~``) entries."""
    entries: dict[str, Entry] = {}
    current = Entry()
    part = ""
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if not line.strip() or line.startswith("#~"):
            if current.msgid:
                entries[current.key] = current
            current, part = Entry(), ""
        elif line.startswith("#,"):
            current.flags |= {flag.strip() for flag in line[2:].split(",")}
        elif line.startswith("#"):
            continue
        else:
            if not line.startswith('"'):
                part, _, line = line.partition(" ")
            text = ast.literal_eval(line)
            if part == "msgctxt":
                current.msgctxt = (current.msgctxt or "") + text
            elif part == "msgid":
                current.msgid += text
            elif match := re.fullmatch(r"msgstr(?:\[(\d+)\])?", part):
                index = int(match.group(1) or 0)
                current.msgstr[index] = current.msgstr.get(index, "") + text
    return entries


def extract(workdir: Path) -> Path:
    """Run makemessages on a copy of the sources in ``workdir``; the path of the merged catalogue it wrote."""
    copy = workdir / "siyu"
    shutil.copytree(
        SRC, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "var", "static", "simulator", "*.mo")
    )
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
    os.environ.setdefault("SIYU_DATA_DIR", str(workdir / "var"))
    import django
    from django.core.management import call_command
    from django.test.utils import override_settings

    django.setup()
    here = Path.cwd()
    os.chdir(copy)
    try:
        with override_settings(LOCALE_PATHS=[copy / "locale"]):
            call_command(
                "makemessages", locale=[LOCALE], ignore_patterns=IGNORE, no_obsolete=True, verbosity=0
            )
    finally:
        os.chdir(here)
    return copy / CATALOGUE


def main() -> int:
    missing = [tool for tool in ("xgettext", "msgmerge") if shutil.which(tool) is None]
    if missing:
        tools = ", ".join(missing)
        print(f"check_translations: {tools} not found; install GNU gettext (apt-get install gettext).")
        return 2
    committed = read_po(SRC / CATALOGUE)
    with tempfile.TemporaryDirectory(prefix="siyu-i18n-") as workdir:
        extracted = read_po(extract(Path(workdir)))
    untranslated = sorted(k for k, e in extracted.items() if not e.msgstr or not all(e.msgstr.values()))
    fuzzy = sorted(k for k, e in extracted.items() if "fuzzy" in e.flags)
    stale = sorted(set(committed) - set(extracted))
    problems = [
        ("strings in the code without a translation", untranslated),
        ("translations guessed from a similar string (fuzzy)", fuzzy),
        ("catalogue entries the code no longer uses", stale),
    ]
    if not any(keys for _, keys in problems):
        print(f"check_translations: {len(extracted)} messages, all translated.")
        return 0
    for title, keys in problems:
        if keys:
            print(f"{len(keys)} {title}:")
            for key in keys:
                print(f"  {key!r}")
    print(FIX)
    return 1


if __name__ == "__main__":
    sys.exit(main())
