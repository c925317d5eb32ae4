"""The dashboard page at `/`: one self-contained HTML file (inline SVG charts, no CDN) that
signs in with a bearer token and reads the same JSON endpoints; stage labels in Chinese and
English come from the rules file."""

import json
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

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
    template = (
        files("projections.entrypoints").joinpath("dashboard.html").read_text(encoding="utf-8")
    )
    # "</" cannot end the script element from inside the JSON.
    config = json.dumps(labels, ensure_ascii=False).replace("</", "<\\/")
    return template.replace(PLACEHOLDER, config)


def build_dashboard(rules: Rulebook) -> APIRouter:
    router = APIRouter()
    rendered = page(rules)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(rendered, headers={"Cache-Control": "no-cache"})

    return router
