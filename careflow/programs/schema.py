"""The JSON Schema of programme files, generated from the model so editors and loader agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from careflow.programs.model import Program

SCHEMA_ID = "https://careflow.dev/schemas/care-program.schema.json"


def program_json_schema() -> dict[str, Any]:
    schema = Program.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def render() -> str:
    return json.dumps(program_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write(path: Path) -> None:
    path.write_text(render(), encoding="utf-8")
