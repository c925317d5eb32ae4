"""The dashboard page at `/`: an HTML file and its script (`/dashboard.js`), self-contained
(inline SVG charts, no CDN), that signs in with a bearer token and reads the same JSON
endpoints; stage labels in Chinese and English come from the rules file."""

import json
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from contracts.rules import Rulebook

PLACEHOLDER = '/*OPPSTREAM_CONFIG*/{"pipelines": []}/*END*/'


def page(rules: Rulebook) -> str:
    labels = {
        "pipelines": [
            {
                "id": p.id,
                "type": p.type.value,
                "stages": [
                    {"id": s.id, "labels": {"zh": s.label.zh, "en": s.label.en}} for s in p.stages
                ],
            }
            for p in rules.pipelines
        ]
    }
    template = _read("dashboard.html")
    # "</" cannot end the script element from inside the JSON.
    config = json.dumps(labels, ensure_ascii=False).replace("</", "<\\/")
    return template.replace(PLACEHOLDER, config)


def _read(name: str) -> str:
    return files("projections.entrypoints").joinpath(name).read_text(encoding="utf-8")


def build_dashboard(rules: Rulebook) -> APIRouter:
    router = APIRouter()
    rendered, script = page(rules), _read("dashboard.js")
    no_cache = {"Cache-Control": "no-cache"}

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(rendered, headers=no_cache)

    @router.get("/dashboard.js", include_in_schema=False)
    async def dashboard_script() -> Response:
        return Response(script, media_type="text/javascript", headers=no_cache)

    return router
