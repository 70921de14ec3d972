"""The ``siyu`` command line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from siyu.config.cli import main
from siyu.corps.models import Corp
from siyu.corps.services import authenticate_api_key

AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # vector A of the WeCom protocol reference


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "siyu.config.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["corp"],
        ["apikey"],
        ["serve"],
        ["receiver"],
        ["worker"],
        ["seed"],
        ["demo"],
        ["createadmin"],
        ["corp", "create"],
    ],
)
def test_help_everywhere(args):
    result = run_cli(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage: siyu" in result.stdout


def test_production_refuses_the_default_secret(tmp_path):
    result = run_cli(
        "manage", "check", env={"SIYU_ENV": "production", "SECRET_KEY": "", "SIYU_DATA_DIR": str(tmp_path)}
    )
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.django_db
def test_corp_create_and_apikey_create(capsys):
    # when
    code = main(
        [
            "corp",
            "create",
            "--name",
            "演示",
            "--corpid",
            "wx5823bf96d3bd56c7",
            "--secret",
            "s",
            "--token",
            "QDG6eK",
            "--aes-key",
            AES_KEY,
        ]
    )
    # then
    assert code == 0
    corp = Corp.objects.get(corpid="wx5823bf96d3bd56c7")
    assert corp.aes_key == AES_KEY and corp.token == "QDG6eK"
    capsys.readouterr()
    assert main(["apikey", "create", "--corp", "wx5823bf96d3bd56c7", "--name", "erp"]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    key = authenticate_api_key(last_line)
    assert key is not None and key.corp == corp


@pytest.mark.django_db
def test_wrong_length_aes_key_is_refused_clearly(capsys):
    code = main(["corp", "create", "--name", "x", "--corpid", "wwbad", "--aes-key", AES_KEY[:40]])
    assert code == 2
    # The command line speaks the configured language (SIYU_LANGUAGE), Chinese by default.
    assert "EncodingAESKey 必须恰好为 43 个字符，当前为 40 个" in capsys.readouterr().err
    assert not Corp.objects.filter(corpid="wwbad").exists()


@pytest.mark.django_db
def test_apikey_for_unknown_corp(capsys):
    assert main(["apikey", "create", "--corp", "wwnone"]) == 2
    assert "no corp" in capsys.readouterr().err


@pytest.mark.django_db
def test_apikey_for_a_staff_member(world, capsys):
    assert (
        main(["apikey", "create", "--corp", world.corp.corpid, "--role", "staff", "--staff", "wangfang"]) == 0
    )
    key = authenticate_api_key(capsys.readouterr().out.strip().splitlines()[-1])
    assert key is not None and key.staff == world.wang and key.role == "staff"
    assert (
        main(["apikey", "create", "--corp", world.corp.corpid, "--role", "staff", "--staff", "nobody"]) == 2
    )
    assert "no staff member" in capsys.readouterr().err
