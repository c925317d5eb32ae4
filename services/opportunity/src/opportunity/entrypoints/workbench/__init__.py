"""The workbench at `/app/` (SPEC §10.1): a few static files (HTML, one script, the vendored
Alpine.js and ECharts) that sign in with a bearer token and act only through the public HTTP
API, and `/app/config.json`, which tells the page where a browser reaches the projections and
reminders services."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.staticfiles import StaticFiles

NO_CACHE = {"Cache-Control": "no-cache"}
STATIC = Path(__file__).parent / "static"


def page_config(projections_url: str, reminders_url: str) -> dict[str, Any]:
    """What `/app/config.json` answers: the other services' public addresses."""
    return {"projections_url": projections_url, "reminders_url": reminders_url}


class _Static(StaticFiles):
    """The workbench's files, read again when they change (no stale script after an upgrade)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        answer = super().file_response(*args, **kwargs)
        answer.headers.update(NO_CACHE)
        return answer


def install_workbench(service: FastAPI, projections_url: str, reminders_url: str) -> None:
    """Serve `/app/config.json` and the files under `/app/`; the routes of the API are untouched."""
    config = page_config(projections_url, reminders_url)

    @service.get("/app/config.json", include_in_schema=False)
    async def workbench_config() -> JSONResponse:
        return JSONResponse(config, headers=NO_CACHE)

    service.mount("/app", _Static(directory=STATIC, html=True), name="workbench")
