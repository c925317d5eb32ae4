"""`python -m reminders`: the service as deployed (what `oppstream serve reminders` runs), and
the backtest; for process tests and for running the service without the `oppstream` CLI."""

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from chassis.auth import AuthFileError

DEFAULT_PORT = 8002


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reminders", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve = commands.add_parser("serve", help="run the service (the default)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    simulate = commands.add_parser("simulate", help="backtest a rules file on the history")
    simulate.add_argument("--rules", type=Path, required=True)
    simulate.add_argument("--from", dest="start", type=date.fromisoformat, required=True)
    simulate.add_argument("--to", dest="end", type=date.fromisoformat, required=True)
    simulate.add_argument("--source", default=None, help="the opportunity service's URL")
    simulate.add_argument("--token", default=None, help="a service or admin token")
    args = parser.parse_args(argv)
    if args.command == "simulate":
        return _simulate(args)
    return _serve(getattr(args, "host", "127.0.0.1"), getattr(args, "port", DEFAULT_PORT))


def _serve(host: str, port: int) -> int:
    from chassis.serving import serve
    from reminders.main import SERVICE

    return serve(SERVICE, host, port, program="reminders")


def _simulate(args: argparse.Namespace) -> int:
    from reminders.adapters.history import service_token
    from reminders.entrypoints.backtest import run
    from reminders.settings import Settings

    try:
        settings = Settings()
        token = args.token or service_token(settings.auth_file)
    except (ValidationError, AuthFileError, LookupError) as exc:
        print(f"reminders: {exc}", file=sys.stderr)
        return 2
    source = args.source or settings.opportunity_url
    return run(args.rules, args.start, args.end, source, token, zone=settings.zone)
