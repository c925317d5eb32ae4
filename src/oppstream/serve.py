"""Run one service under uvicorn, refusing to start on a bad rules, auth or settings file.

Each service package offers `<service>.settings.Settings` (an `OppstreamSettings`) and
`<service>.main.build_app(settings, *, rules, principals)`.
"""

import importlib
import sys

import uvicorn
from pydantic import ValidationError

from contracts.principals import AuthFileError, auth_file_path, load_principals
from contracts.rules import RulebookError, load_rulebook

SERVICES = ("opportunity", "projections", "reminders")


def serve(service: str, host: str, port: int) -> int:
    settings_module = importlib.import_module(f"{service}.settings")
    main_module = importlib.import_module(f"{service}.main")
    try:
        settings = settings_module.Settings()
        rules = load_rulebook(settings.rules_file)
        principals = load_principals(auth_file_path(settings.auth_file))
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
    app = main_module.build_app(settings, rules=rules, principals=principals)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    return 0
