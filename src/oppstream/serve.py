"""Run a service under uvicorn, refusing to start on a bad rules, auth or settings file."""

import sys

import uvicorn
from pydantic import ValidationError

from contracts.principals import AuthFileError, load_principals
from contracts.rules import RulebookError, load_rulebook


def serve(service: str, host: str, port: int, announce: bool = False) -> int:
    from opportunity.main import auth_file, build_app
    from opportunity.settings import Settings

    try:
        settings = Settings()
        rules = load_rulebook(settings.rules_file)
        path = auth_file(settings)
        principals = load_principals(path)
    except ValidationError as exc:
        problems = "; ".join(
            f"OPPSTREAM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        print(f"oppstream: bad configuration: {problems}", file=sys.stderr)
        return 2
    except (RulebookError, AuthFileError) as exc:
        print(f"oppstream: {exc}", file=sys.stderr)
        return 2
    if announce:
        print(f"{service} service: http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
        print(f"dev principals (from {path}); send Authorization: Bearer <token>")
        for principal in principals.all:
            team = principal.team_id or "-"
            print(f"  {principal.id:<14} {principal.role.value:<8} {team:<6} {principal.token}")
    app = build_app(settings, rules=rules, principals=principals)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    return 0
