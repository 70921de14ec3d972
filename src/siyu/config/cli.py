"""The ``siyu`` command line: demo, serve, receiver, worker, seed, createadmin, corp, apikey, simulator,
manage."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siyu.config.settings")
    import django

    django.setup()


def _data_dir() -> Path:
    from django.conf import settings

    path = Path(settings.DATA_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _manage(argv: Sequence[str]) -> None:
    from django.core.management import execute_from_command_line

    execute_from_command_line(["siyu manage", *argv])


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# --- commands -------------------------------------------------------------------------------------------


def cmd_manage(args: argparse.Namespace) -> int:
    _setup_django()
    _data_dir()
    _manage(args.rest)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    _setup_django()
    from django.conf import settings

    _data_dir()
    workers = args.workers or int(os.environ.get("WEB_CONCURRENCY", "2"))
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        workers = min(workers, 2)  # SQLite serialises writes; more processes only wait on its lock
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "siyu.config.wsgi:application",
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        str(workers),
        "--threads",
        # 16: the callback receiver's group commit needs requests in flight to fill its batches (a commit
        # waits ~10 ms for the disk), and each thread may keep a database connection, so workers × threads
        # must stay under PostgreSQL's max_connections (100 by default). See bench/callbacks.py.
        os.environ.get("WEB_THREADS", "16"),
        "--graceful-timeout",
        "5",
    ]
    if args.access_log:
        # Only when asked: gunicorn formats every access line even for /dev/null, under a lock the request
        # threads queue on (bench/callbacks.py).
        command += ["--access-logfile", "-"]
    os.execv(sys.executable, command)  # noqa: S606 - replaces this process with gunicorn on purpose
    return 0  # pragma: no cover


def cmd_receiver(args: argparse.Namespace) -> int:
    _setup_django()
    from django.conf import settings

    from siyu.wecom.receiver_app import run

    # One process per core by default: one event loop does the protocol's work for a few thousand callbacks a
    # second, and with PostgreSQL on the same 2 cores two of them still took 40% more (bench/callbacks.py).
    workers = args.workers or int(os.environ.get("RECEIVER_WORKERS", "0")) or (os.cpu_count() or 1)
    if workers < 1:
        return _fail("--workers must be 1 or more")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        workers = 1  # SQLite takes one writer at a time: more processes only wait on its lock
    run(host=args.host, port=args.port, workers=workers)
    return 0


def worker_command() -> list[str]:
    """The worker process: the configured queue's worker plus the periodic beat (``siyu_worker``)."""
    return [sys.executable, "-m", "siyu.config.cli", "manage", "siyu_worker"]


def cmd_worker(args: argparse.Namespace) -> int:
    _setup_django()
    command = worker_command()
    os.execv(sys.executable, command)  # noqa: S606
    return 0  # pragma: no cover


def cmd_seed(args: argparse.Namespace) -> int:
    _setup_django()
    from django.core.management import call_command

    from siyu.core.errors import DomainError
    from siyu.corps.seed import seed

    if args.customers < 0:
        return _fail("--customers must be 0 or more")
    _data_dir()
    call_command("migrate", interactive=False, verbosity=0)
    try:
        report = seed(
            customers=args.customers,
            seed_value=args.seed,
            corpid=args.corpid,
            name=args.name,
            progress=not args.quiet,
        )
    except DomainError as exc:  # e.g. the corp already exists: say so, exit 2
        return _fail(exc.message)
    print(report.summary())
    return 0


def _ensure_admin(username: str, password: str | None, corpid: str | None) -> tuple[str, str | None]:
    from django.contrib.auth import get_user_model

    from siyu.corps.models import Corp, Role
    from siyu.corps.services import set_membership

    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    created_password = None
    if user is None:
        created_password = password or secrets.token_urlsafe(9)
        user = user_model.objects.create_superuser(username=username, password=created_password, email="")
    elif password:
        user.set_password(password)
        user.save(update_fields=["password"])
        created_password = password
    corp = Corp.objects.filter(corpid=corpid).first() if corpid else Corp.objects.order_by("id").first()
    if corp is not None:
        set_membership(corp=corp, user=user, role=Role.ADMIN)
    return username, created_password


def cmd_createadmin(args: argparse.Namespace) -> int:
    _setup_django()
    username, password = _ensure_admin(args.username, args.password, args.corp)
    if password:
        print(f"admin user: {username}\npassword: {password}")
    else:
        print(f"admin user {username} already exists (pass --password to reset it)")
    return 0


def cmd_corp_create(args: argparse.Namespace) -> int:
    _setup_django()
    from siyu.core.errors import DomainError
    from siyu.corps.services import create_corp

    try:
        corp = create_corp(
            name=args.name, corpid=args.corpid, secret=args.secret, token=args.token, aes_key=args.aes_key
        )
    except DomainError as exc:
        return _fail(exc.message)
    print(f"created corp {corp.name} ({corp.corpid}), id {corp.pk}")
    return 0


def cmd_apikey_create(args: argparse.Namespace) -> int:
    _setup_django()
    from siyu.core.errors import DomainError
    from siyu.corps.models import Corp
    from siyu.corps.services import create_api_key

    corp = Corp.objects.filter(corpid=args.corp).first()
    if corp is None and args.corp.isdigit():
        corp = Corp.objects.filter(pk=int(args.corp)).first()
    if corp is None:
        return _fail(f"no corp with corpid or id {args.corp!r}")
    staff = None
    if args.staff:
        from siyu.corps.models import Staff

        staff = Staff.objects.for_corp(corp).filter(userid=args.staff).first()
        if staff is None:
            return _fail(f"no staff member with userid {args.staff!r} in {corp.corpid}")
    try:
        new = create_api_key(corp=corp, name=args.name, role=args.role, staff=staff)
    except DomainError as exc:
        return _fail(exc.message)
    print(f"API key for {corp.corpid} (role {new.api_key.role}); shown once, store it now:")
    print(new.plaintext)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Set up the demo corp, export it to the WeCom simulator, run console + worker + simulator (Ctrl-C)."""
    _setup_django()
    from siyu.config.demo import DemoError, run_demo

    try:
        return run_demo(args, data_dir=_data_dir())
    except DemoError as exc:
        return _fail(str(exc))


def cmd_simulator(args: argparse.Namespace) -> int:
    from siyu.simulator.cli import run

    return run(args)


def cmd_sync(args: argparse.Namespace) -> int:
    """Sync a corp with WeCom in the foreground: a reconciliation, or with --full everything."""
    _setup_django()
    from siyu.core.errors import DomainError
    from siyu.corps.models import Corp
    from siyu.wecom.models import SyncRun
    from siyu.wecom.sync import run_sync, start_sync, sync_progress

    corp = Corp.objects.filter(corpid=args.corp).first()
    if corp is None:
        return _fail(f"no corp with corpid {args.corp!r}")
    kind = SyncRun.Kind.FULL if args.full else SyncRun.Kind.RECONCILE
    try:
        run = start_sync(corp=corp, kind=kind, enqueue=False, reason="command line")
    except DomainError as exc:
        return _fail(exc.message)
    print(f"{run.get_kind_display()} #{run.pk} of {corp.corpid} started", flush=True)
    while True:
        turn = run_sync(run.pk, max_seconds=2.0)
        run = turn.run
        progress = sync_progress(run)
        counts = ", ".join(f"{k} {v}" for k, v in run.counts.items())
        print(f"  {progress.percent:3d}%  {run.stage:<12} {counts}", flush=True)
        if run.status in (SyncRun.Status.DONE, SyncRun.Status.FAILED):
            break
        if turn.continue_at is not None:
            from siyu.core.clock import now

            time.sleep(max(0.0, (turn.continue_at - now()).total_seconds()))
        elif turn.busy:
            time.sleep(1.0)
    repairs = ", ".join(f"{k} {v}" for k, v in run.repairs.items()) or "none"
    print(f"{run.get_status_display()}: repairs {repairs}")
    if run.error:
        print(f"error: {run.error}", file=sys.stderr)
    return 0 if run.status == SyncRun.Status.DONE else 1


def cmd_segments_rebuild(args: argparse.Namespace) -> int:
    """Rebuild segment indexes from the tables and save them (every process loads the new copy)."""
    _setup_django()
    from siyu.corps.models import Corp
    from siyu.segments.upkeep import rebuild_indexes

    corp_id = None
    if args.corp:
        corp = Corp.objects.filter(corpid=args.corp).first()
        if corp is None:
            return _fail(f"no corp with corpid {args.corp!r}")
        corp_id = corp.pk
    started = time.monotonic()
    done = rebuild_indexes(corp_id=corp_id)
    print(f"rebuilt {done} segment index(es) in {time.monotonic() - started:.1f} s")
    return 0


def cmd_channels_rebuild_stats(args: argparse.Namespace) -> int:
    """Recompute the channel analytics rollup from the adds (all corps, or one)."""
    _setup_django()
    from siyu.channels.rollups import rebuild
    from siyu.corps.models import Corp

    corps = Corp.objects.order_by("id")
    if args.corp:
        corps = corps.filter(corpid=args.corp)
        if not corps.exists():
            return _fail(f"no corp with corpid {args.corp!r}")
    for corp in corps:
        started = time.monotonic()
        rows = rebuild(corp)
        print(f"{corp.corpid}: {rows} rollup rows in {time.monotonic() - started:.1f} s")
    return 0


# --- parser ---------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siyu", description="Siyu (私域): an open-source SCRM for WeCom.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="set up (migrate, demo data, admin) and run console + worker + a simulated WeCom"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--customers", type=int, default=5000, help="demo customers on first run (default 5000)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the demo data")
    p.add_argument("--sim-port", type=int, default=8900, help="port of the WeCom simulator (default 8900)")
    p.add_argument(
        "--traffic",
        type=float,
        default=20,
        help="new customers a minute the simulator adds, with deletions, tag and remark edits and group "
        "activity in proportion (default 20; 0 turns it off)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "serve", help="run the web console and API (gunicorn); it answers WeCom's callbacks too"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=0, help="processes (default $WEB_CONCURRENCY or 2)")
    p.add_argument("--access-log", action="store_true", help="print an access log line per request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "receiver", help="run the asynchronous WeCom callback receiver (route /wecom/callback/ to it)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.add_argument(
        "--workers", type=int, default=0, help="processes (default $RECEIVER_WORKERS, else one per core)"
    )
    p.set_defaults(func=cmd_receiver)

    p = sub.add_parser("worker", help="run a background worker (database queue, or Redis with REDIS_URL)")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("seed", help="load a realistic demo corp")
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1, help="random seed; the same seed gives the same data")
    p.add_argument("--corpid", default=None, help="corpid of the demo corp (default the demo corpid)")
    p.add_argument("--name", default=None, help="name of the demo corp")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_seed)

    p = sub.add_parser("createadmin", help="create (or reset) a superuser with the admin role")
    p.add_argument("--username", default="admin")
    p.add_argument("--password", default=None, help="default: a random password, printed")
    p.add_argument("--corp", default=None, help="corpid to give the admin role in (default: the first corp)")
    p.set_defaults(func=cmd_createadmin)

    corp = sub.add_parser("corp", help="tenants").add_subparsers(
        dest="corp_command", required=True, metavar="ACTION"
    )
    p = corp.add_parser("create", help="create a corp (tenant)")
    p.add_argument("--name", required=True)
    p.add_argument("--corpid", required=True)
    p.add_argument("--secret", default="", help="the customer-contact secret")
    p.add_argument("--token", default="", help="callback Token (≤ 32 letters/digits)")
    p.add_argument("--aes-key", default="", help="callback EncodingAESKey (43 letters/digits)")
    p.set_defaults(func=cmd_corp_create)

    apikey = sub.add_parser("apikey", help="REST API keys").add_subparsers(
        dest="apikey_command", required=True, metavar="ACTION"
    )
    p = apikey.add_parser("create", help="create an API key; the key is printed alone on the last line")
    p.add_argument("--corp", required=True, help="corpid (or numeric id)")
    p.add_argument("--name", default="")
    p.add_argument("--role", default="operator", choices=["admin", "operator", "manager", "staff"])
    p.add_argument("--staff", default="", help="userid of the staff member a manager/staff key acts as")
    p.set_defaults(func=cmd_apikey_create)

    from siyu.simulator.cli import add_arguments as add_simulator_arguments

    p = sub.add_parser("simulator", help="run a simulated WeCom server (API + callbacks) for demo and tests")
    add_simulator_arguments(p)
    p.set_defaults(func=cmd_simulator)

    p = sub.add_parser("sync", help="sync a corp with WeCom (reconciliation; --full loads everything)")
    p.add_argument("--corp", required=True, help="corpid")
    p.add_argument("--full", action="store_true", help="departments, staff, tags, customers and groups")
    p.set_defaults(func=cmd_sync)

    segments = sub.add_parser("segments", help="segment indexes").add_subparsers(
        dest="segments_command", required=True, metavar="COMMAND"
    )
    p = segments.add_parser("rebuild", help="rebuild segment indexes from the tables (all corps, or --corp)")
    p.add_argument("--corp", metavar="CORPID", help="only this corp")
    p.set_defaults(func=cmd_segments_rebuild)

    channels = sub.add_parser("channels", help="channel live codes").add_subparsers(
        dest="channels_command", required=True, metavar="COMMAND"
    )
    p = channels.add_parser(
        "rebuild-stats", help="recompute the channel analytics rollup from the adds (all corps, or --corp)"
    )
    p.add_argument("--corp", metavar="CORPID", help="only this corp")
    p.set_defaults(func=cmd_channels_rebuild_stats)

    p = sub.add_parser("manage", help="Django's own commands (siyu manage migrate, shell, …)", add_help=False)
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_manage)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
