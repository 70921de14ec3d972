"""Everything about a simulated corp that can be set from the command line or the admin interface."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

# The demo corp's corpid (siyu.corps.seed uses it too): `siyu simulator` and `siyu demo` match by default.
DEFAULT_CORPID = "wwsiyudemo0000001"
# Fixed, public, fake credentials: the simulator is a stand-in, and the demo must be reproducible.
DEFAULT_SECRET = "SiyuSimulatorSecret0000000000000000000000000"  # noqa: S105 - public fake
DEFAULT_TOKEN = "SiyuSimToken2024"  # noqa: S105 - public fake; WeCom: ≤ 32 letters/digits
DEFAULT_AES_KEY = "SiyuSimulatorEncodingAESKey0000000000000000"  # WeCom: exactly 43 letters/digits
DEFAULT_AGENTID = 1000002

QUOTA_POLICIES = ("days_in_month", "7_per_week", "1_per_day", "4_per_month")
# Settings that shape the corp or the server: fixed once the simulator has started.
FIXED = ("host", "port", "corpid", "seed", "staff", "customers", "groups", "state_file")


@dataclass
class SimulatorConfig:
    """Knobs of one simulated corp; values that mirror a WeCom rule say which (wecom-api.md section)."""

    host: str = "127.0.0.1"
    port: int = 8900
    corpid: str = DEFAULT_CORPID
    secret: str = DEFAULT_SECRET
    agentid: int = DEFAULT_AGENTID
    corp_name: str = "思域模拟科技有限公司"
    # Callbacks (§2): none are sent without a URL.
    callback_url: str | None = None
    token: str = DEFAULT_TOKEN
    aes_key: str = DEFAULT_AES_KEY
    callback_timeout: float = 5.0  # §2.5 "五秒内收不到响应会断掉连接"
    callback_retries: int = 3  # §2.5 "总共重试三次": three redeliveries after the first try (unconfirmed)
    callback_retry_interval: float = 1.0  # unconfirmed upstream; seconds between tries
    callback_retry_on_non_200: bool = (
        False  # 90930 retries only on timeout/connection error; 90238 on any non-200
    )
    callback_workers: int = 16  # concurrent deliveries, as WeCom pushes events in parallel
    callback_queue_size: int = 20000
    # The corp: loaded from a state file (siyu.simulator.statefile) when set, else generated from the seed.
    state_file: str | None = None
    # Generated corp.
    seed: int = 1
    staff: int = 20
    customers: int = 1000
    groups: int | None = None  # default: one group per ~100 customers, at least 3, at most 500
    # Time rules.
    token_ttl: int = 7200  # §1 expires_in
    welcome_code_ttl: int = 20  # §4.4 "20秒内"
    msg_confirm_delay: float = 10.0  # seconds before the simulated staff confirms a mass send or moment
    # Staff do not all confirm at once: each confirms a uniformly random 0..spread seconds after the delay.
    msg_confirm_spread: float = 0.0
    # Share of staff who confirm a mass send by themselves; the others wait until they are reminded
    # (remind_groupmsg_send), then confirm after the delay.
    msg_confirm_share: float = 1.0
    msg_dispatch_delay: float = 0.0  # §4.5 41063 while a new mass send is "being dispatched"; 0 = never
    moment_job_delay: float = 1.0  # add_moment_task is asynchronous (§4.6 status 1→3)
    transfer_delay: float = 24 * 3600  # §4.8 "待24小时后自动接替"
    transfer_refuse_rate: float = 0.0  # share of customers who refuse a transfer (transfer_fail)
    takeover_customer_limit: int = 50000  # a member's customer cap; a takeover past it fails (status 4)
    quota_policy: str = "days_in_month"  # §4.5 receive quota per customer
    legacy_contact_way_array: bool = False  # answer get_contact_way with the old array shape (§4.3)
    # Limits (§6): per corp, per API.
    rate_per_minute: int = 10000
    rate_per_hour: int = 150000
    concurrency_limit: int | None = None  # concurrent calls per API before 45033; unpublished upstream
    latency_ms: float = 0.0  # added to every /cgi-bin/ answer
    latency_jitter_ms: float = 0.0
    # Traffic driver: adds per minute (0 = off).
    traffic: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def update(self, values: dict[str, Any]) -> list[str]:
        """Change knobs at run time (admin interface); returns the names changed. Unknown names raise."""
        names = {f.name: f for f in dataclasses.fields(self)}
        changed = []
        for key, value in values.items():
            if key not in names or key in FIXED:
                raise ValueError(f"unknown or fixed setting {key!r}")
            current = getattr(self, key)
            if isinstance(current, bool):
                value = bool(value)
            elif isinstance(current, int) and value is not None and not isinstance(current, bool):
                value = int(value)
            elif isinstance(current, float):
                value = float(value)
            if key == "quota_policy" and value not in QUOTA_POLICIES:
                raise ValueError(f"quota_policy must be one of {', '.join(QUOTA_POLICIES)}")
            setattr(self, key, value)
            changed.append(key)
        return changed

    def public(self) -> dict[str, Any]:
        """The settings as JSON, for the admin interface."""
        return dataclasses.asdict(self)
