"""``siyu simulator``: run a simulated WeCom corp until Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from siyu.simulator.config import QUOTA_POLICIES, SimulatorConfig

_D = SimulatorConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options; defaults are SimulatorConfig's."""
    parser.add_argument("--host", default=_D.host)
    parser.add_argument("--port", type=int, default=_D.port)
    parser.add_argument("--corpid", default=_D.corpid)
    parser.add_argument("--secret", default=_D.secret, help="the app secret gettoken accepts")
    parser.add_argument("--agentid", type=int, default=_D.agentid)
    parser.add_argument(
        "--callback-url", default=None, help="where encrypted callbacks are POSTed (none: no callbacks)"
    )
    parser.add_argument("--token", default=_D.token, help="callback Token")
    parser.add_argument("--aes-key", default=_D.aes_key, help="callback EncodingAESKey (43 characters)")
    parser.add_argument(
        "--state",
        default=None,
        metavar="FILE",
        help="load the corp from this JSON state file instead of generating one (format: "
        "siyu.simulator.statefile); its corpid replaces --corpid; --staff, --customers, --groups are ignored",
    )
    parser.add_argument("--staff", type=int, default=_D.staff, help="members to generate")
    parser.add_argument("--customers", type=int, default=_D.customers, help="customers to generate")
    parser.add_argument(
        "--groups", type=int, default=None, help="customer groups (default ~1 per 100 customers)"
    )
    parser.add_argument(
        "--traffic", type=float, default=_D.traffic, help="adds per minute by the traffic driver"
    )
    parser.add_argument("--seed", type=int, default=_D.seed, help="the same seed gives the same corp")
    parser.add_argument("--quota-policy", choices=QUOTA_POLICIES, default=_D.quota_policy)
    parser.add_argument("--welcome-code-ttl", type=int, default=_D.welcome_code_ttl, help="seconds")
    parser.add_argument("--token-ttl", type=int, default=_D.token_ttl, help="access_token lifetime, seconds")
    parser.add_argument("--msg-confirm-delay", type=float, default=_D.msg_confirm_delay, help="seconds")
    parser.add_argument(
        "--msg-confirm-spread",
        type=float,
        default=_D.msg_confirm_spread,
        help="seconds of spread among staff",
    )
    parser.add_argument(
        "--msg-confirm-share",
        type=float,
        default=_D.msg_confirm_share,
        help="share of staff who confirm a mass send unreminded (0..1)",
    )
    parser.add_argument("--transfer-delay", type=float, default=_D.transfer_delay, help="seconds")
    parser.add_argument("--callback-timeout", type=float, default=_D.callback_timeout, help="seconds")
    parser.add_argument("--callback-retries", type=int, default=_D.callback_retries, help="redeliveries")
    parser.add_argument("--callback-retry-interval", type=float, default=_D.callback_retry_interval)
    parser.add_argument("--retry-on-non-200", action="store_true", help="also redeliver on a non-200 answer")
    parser.add_argument(
        "--rate-per-minute", type=int, default=_D.rate_per_minute, help="per API (45009 beyond)"
    )
    parser.add_argument("--rate-per-hour", type=int, default=_D.rate_per_hour, help="per API (45009 beyond)")
    parser.add_argument(
        "--concurrency-limit", type=int, default=None, help="concurrent calls per API (45033)"
    )
    parser.add_argument("--latency-ms", type=float, default=_D.latency_ms)
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="API:KIND[:k=v,...]",
        help="inject a fault, e.g. externalcontact/get:errcode:errcode=-1,probability=0.05 "
        "(kinds: errcode, timeout, http, disconnect, latency)",
    )
    parser.add_argument(
        "--verify-callback", action="store_true", help="check the callback URL (GET) at start"
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        corpid=args.corpid,
        secret=args.secret,
        agentid=args.agentid,
        callback_url=args.callback_url,
        token=args.token,
        aes_key=args.aes_key,
        staff=args.staff,
        customers=args.customers,
        groups=args.groups,
        traffic=args.traffic,
        seed=args.seed,
        state_file=args.state,
        quota_policy=args.quota_policy,
        welcome_code_ttl=args.welcome_code_ttl,
        token_ttl=args.token_ttl,
        msg_confirm_delay=args.msg_confirm_delay,
        msg_confirm_spread=args.msg_confirm_spread,
        msg_confirm_share=args.msg_confirm_share,
        transfer_delay=args.transfer_delay,
        callback_timeout=args.callback_timeout,
        callback_retries=args.callback_retries,
        callback_retry_interval=args.callback_retry_interval,
        callback_retry_on_non_200=args.retry_on_non_200,
        rate_per_minute=args.rate_per_minute,
        rate_per_hour=args.rate_per_hour,
        concurrency_limit=args.concurrency_limit,
        latency_ms=args.latency_ms,
    )


def run(args: argparse.Namespace) -> int:
    from siyu.simulator.app import Simulator
    from siyu.simulator.limits import parse_fault_spec
    from siyu.simulator.statefile import StateFileError
    from siyu.wecom.crypto import CallbackCryptoError, aes_key_from_encoding_key

    config = config_from_args(args)
    try:
        aes_key_from_encoding_key(config.aes_key)
    except CallbackCryptoError as exc:
        print(f"error: --aes-key: {exc.message}", file=sys.stderr)
        return 2
    if config.state_file:
        print(f"· loading the corp from {config.state_file} …", flush=True)
    else:
        print(
            f"· generating corp {config.corpid}: {config.staff} staff, {config.customers} customers …",
            flush=True,
        )
    try:
        sim = Simulator(config)
    except StateFileError as exc:
        print(f"error: --state: {exc}", file=sys.stderr)
        return 2
    try:
        for spec in args.fault:
            sim.limits.add_fault(**parse_fault_spec(spec))
    except ValueError as exc:
        print(f"error: --fault: {exc}", file=sys.stderr)
        return 2
    try:
        sim.start()
    except OSError as exc:  # most often: the port is taken (another simulator, or a demo still running)
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    counts = sim.state.snapshot_counts()
    origin = f"from {config.state_file}" if config.state_file else f"seed {config.seed}"
    print(
        "\n  WeCom simulator is running.\n"
        f"  API base:     {sim.api_base}   (use as WECOM_API_BASE)\n"
        f"  admin:        {sim.base_url}/_sim/state\n"
        f"  corpid:       {config.corpid}\n"
        f"  secret:       {config.secret}\n"
        f"  agentid:      {config.agentid}\n"
        f"  callback URL: {config.callback_url or '(none: no callbacks are sent)'}\n"
        f"  token:        {config.token}\n"
        f"  aes key:      {config.aes_key}\n"
        f"  corp:         {counts['staff']} staff, {counts['customers']} customers, "
        f"{counts['follows']} relations, "
        f"{counts['groups']} groups, {counts['tags']} tags, {counts['contact_ways']} contact ways "
        f"({origin}, {sim.generation_seconds:.1f} s)\n"
        f"  traffic:      {config.traffic:g} adds/min   quota policy: {config.quota_policy}\n"
        "  Ctrl-C stops it.\n",
        flush=True,
    )
    if args.verify_callback:
        result = sim.sender.verify_url()
        print(f"  callback URL check: {'ok' if result['ok'] else result}", flush=True)
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    stop.wait()
    sim.stop()
    print("stopped.")
    return 0
