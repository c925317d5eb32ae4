"""Keeps bench/RESULTS.md: one section per bench script, replaced on each run."""

import platform
import re
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Bench results\n\nEach section is written by its script; rerun with `make bench`.\n"


def write_section(title: str, command: str, body: str) -> None:
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else HEADER
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"## {title}\n\n`{command}` — {stamp}, {platform.machine()}, Python "
        f"{platform.python_version()}\n\n{body}\n"
    )
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else f"{text}\n{section}"
    RESULTS.write_text(text, encoding="utf-8")
