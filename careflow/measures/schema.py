"""The JSON Schema of quality-indicator files, generated from the model so editors and loader agree."""

from __future__ import annotations

import json
from typing import Any

from careflow.measures.model import MeasureSet

SCHEMA_ID = "https://careflow.dev/schemas/measures.schema.json"


def measures_json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **MeasureSet.model_json_schema(mode="validation")}


def render() -> str:
    return json.dumps(measures_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
