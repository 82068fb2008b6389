"""The JSON Schema of stratification rule files, generated from the model so editors and loader agree."""

from __future__ import annotations

import json
from typing import Any

from careflow.population.model import RuleSet

SCHEMA_ID = "https://careflow.dev/schemas/population-rules.schema.json"


def rules_json_schema() -> dict[str, Any]:
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **RuleSet.model_json_schema(mode="validation")}


def render() -> str:
    return json.dumps(rules_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


CASE_SCHEMA_ID = "https://careflow.dev/schemas/case-finding.schema.json"


def case_rules_json_schema() -> dict[str, Any]:
    from careflow.population.case_model import CaseFindingSet

    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": CASE_SCHEMA_ID,
            **CaseFindingSet.model_json_schema(mode="validation")}


def render_case() -> str:
    return json.dumps(case_rules_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
