"""`oppstream`: the one command line of the system (SPEC §6)."""

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

DEFAULT_PORTS = {"opportunity": 8000, "projections": 8001, "reminders": 8002}
MAX_WORKERS = 32  # as OPPSTREAM_WORKERS allows


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oppstream", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run one service, as deployed")
    serve.add_argument("service", choices=list(DEFAULT_PORTS))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=None)
    serve.add_argument(
        "--workers",
        type=_workers,
        default=None,
        help="processes serving the port (default OPPSTREAM_WORKERS or 1; >1 needs PostgreSQL)",
    )
    serve.set_defaults(run=_serve)

    up = commands.add_parser("up", help="the embedded default: every service on this machine")
    up.set_defaults(run=_up)

    demo = commands.add_parser("demo", help="`up` plus a simulated sales team; prints the funnel")
    demo.add_argument("--deals", type=_positive, default=300, help="opportunities of the last year")
    demo.add_argument("--minutes", type=float, default=1.0, help="minutes of live activity")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--exit", action="store_true", help="stop after printing (no dashboard)")
    demo.set_defaults(run=_demo)

    projections = commands.add_parser("projections", help="the read model")
    projections_commands = projections.add_subparsers(required=True, metavar="ACTION")
    rebuild = projections_commands.add_parser(
        "rebuild", help="replay the event history into fresh tables, then switch over"
    )
    _source_arguments(rebuild)
    rebuild.set_defaults(run=_rebuild)

    reminders = commands.add_parser("reminders", help="reminder rules")
    reminders_commands = reminders.add_subparsers(required=True, metavar="ACTION")
    simulate = reminders_commands.add_parser(
        "simulate", help="what a candidate rules file would have fired, publishing nothing"
    )
    simulate.add_argument("--rules", type=_existing_file, required=True, help="rules file")
    simulate.add_argument("--from", dest="start", type=_date, required=True, help="YYYY-MM-DD")
    simulate.add_argument("--to", dest="end", type=_date, required=True, help="YYYY-MM-DD")
    _source_arguments(simulate)
    simulate.set_defaults(run=_simulate)

    rules = commands.add_parser("rules", help="the rules file")
    rules_commands = rules.add_subparsers(required=True, metavar="ACTION")
    show = rules_commands.add_parser(
        "show", help="print the effective rules file (OPPSTREAM_RULES_FILE, else the default)"
    )
    show.set_defaults(run=_rules_show)
    check = rules_commands.add_parser("check", help="validate a rules file; exit 1 if bad")
    check.add_argument("file", type=Path)
    check.set_defaults(run=_rules_check)

    contracts = commands.add_parser("contracts", help="message contracts")
    contracts_commands = contracts.add_subparsers(required=True, metavar="ACTION")
    export = contracts_commands.add_parser("export", help="write JSON Schemas and AsyncAPI")
    export.add_argument("directory", type=Path)
    export.set_defaults(run=_export)
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--port: {text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"--port: {port} is not between 1 and 65535")
    return port


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def _workers(text: str) -> int:
    value = _positive(text)
    if value > MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"--workers: {value} is more than {MAX_WORKERS}")
    return value


def _serve(args: argparse.Namespace) -> int:
    from oppstream.serve import serve

    return serve(args.service, args.host, args.port or DEFAULT_PORTS[args.service], args.workers)


def _up(_: argparse.Namespace) -> int:
    from oppstream.up import run_up

    return run_up()


def _source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default=os.environ.get("OPPSTREAM_OPPORTUNITY_URL", "http://127.0.0.1:8000"),
        help="the opportunity service whose /notifications feed is replayed",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("OPPSTREAM_TOKEN"),
        help="a service or admin bearer token (default: OPPSTREAM_TOKEN, else the dev file's)",
    )


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    from chassis.auth import auth_file_path, load_principals
    from contracts.rules import Role

    configured = os.environ.get("OPPSTREAM_AUTH_FILE")
    principals = load_principals(auth_file_path(Path(configured) if configured else None))
    found = next((c for c in principals.credentials if c.role in (Role.SERVICE, Role.ADMIN)), None)
    if found is None:
        raise SystemExit("oppstream: --token: no service or admin principal to read the feed")
    return found.token


def _rebuild(args: argparse.Namespace) -> int:
    from projections.entrypoints.rebuild import run

    return run(args.source, _token(args))


def _simulate(args: argparse.Namespace) -> int:
    from reminders.entrypoints.backtest import run
    from reminders.settings import Settings

    if args.end < args.start:
        raise SystemExit("oppstream: --to is before --from")
    return run(args.rules, args.start, args.end, args.source, _token(args), zone=Settings().zone)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text!r} is not a readable file")
    return path


def _demo(args: argparse.Namespace) -> int:
    from oppstream.demo import run_demo

    return run_demo(args.deals, args.minutes, args.seed, stay=not args.exit)


def _rules_show(_: argparse.Namespace) -> int:
    """The effective rules file as it is written (its comments too), to start a custom one
    from; one that would not load is refused as a service start refuses it."""
    from contracts.rules import DEFAULT_RULES_FILE, RulebookError, load_rulebook

    named = os.environ.get("OPPSTREAM_RULES_FILE")
    path = Path(named) if named else DEFAULT_RULES_FILE
    try:
        load_rulebook(path)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0


def _rules_check(args: argparse.Namespace) -> int:
    from contracts.rules import RulebookError, load_rulebook

    try:
        rules = load_rulebook(args.file)
    except RulebookError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(
        f"{args.file}: valid (rules version {rules.version}, {len(rules.pipelines)} pipelines, "
        f"{len(rules.reminders.rules)} reminder rules)"
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from contracts.export import export

    for path in export(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
