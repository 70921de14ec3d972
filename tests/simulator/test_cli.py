"""``siyu simulator``: starts, prints where it listens and with which credentials, serves, stops on SIGINT."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx

from siyu.config.cli import build_parser
from siyu.simulator.cli import config_from_args
from siyu.simulator.config import DEFAULT_CORPID, DEFAULT_SECRET


def test_defaults_and_options_make_the_config() -> None:
    # when
    defaults = config_from_args(build_parser().parse_args(["simulator"]))
    custom = config_from_args(
        build_parser().parse_args(
            [
                "simulator",
                "--port",
                "9911",
                "--customers",
                "10",
                "--quota-policy",
                "1_per_day",
                "--retry-on-non-200",
            ]
        )
    )
    # then
    assert (defaults.host, defaults.port, defaults.corpid, defaults.secret) == (
        "127.0.0.1",
        8900,
        DEFAULT_CORPID,
        DEFAULT_SECRET,
    )
    assert defaults.callback_url is None and defaults.traffic == 0
    assert (custom.port, custom.customers, custom.quota_policy) == (9911, 10, "1_per_day")
    assert custom.callback_retry_on_non_200 is True


def test_the_command_serves_until_interrupted() -> None:
    # given
    command = [
        sys.executable,
        "-m",
        "siyu.config.cli",
        "simulator",
        "--port",
        "0",
        "--staff",
        "3",
        "--customers",
        "20",
        "--fault",
        "externalcontact/get:errcode:errcode=-1",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # when
        lines = []
        deadline = time.monotonic() + 30
        api_base = None
        while time.monotonic() < deadline and process.stdout is not None:
            line = process.stdout.readline()
            lines.append(line)
            match = re.search(r"API base:\s+(\S+)", line)
            if match:
                api_base = match.group(1)
            if "Ctrl-C" in line:
                break
        assert api_base, "".join(lines)
        answer = httpx.get(
            f"{api_base}gettoken",
            params={"corpid": DEFAULT_CORPID, "corpsecret": DEFAULT_SECRET},
            trust_env=False,
        ).json()
        faulty = httpx.get(
            f"{api_base}externalcontact/get", params={"access_token": answer["access_token"]}, trust_env=False
        ).json()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
    # then
    output = "".join(lines)
    assert answer["errcode"] == 0
    assert faulty["errcode"] == -1
    assert code == 0
    for shown in ("corpid:", "secret:", "token:", "aes key:", "callback URL:"):
        assert shown in output
