"""The response class for FHIR JSON: orjson, ``application/fhir+json``, raw bytes passed through.

Stored resources can be handed over as already-serialised bytes so a read does not parse and
re-serialise JSON the store kept as text.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from careflow.fhir import exact_json

FHIR_JSON = "application/fhir+json"


def dumps(content: Any) -> bytes:
    """Serialise to compact JSON; ``bytes`` are assumed to be JSON already."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    return exact_json.dumps(content)  # decimals with the digits they were written with


class FhirResponse(Response):
    media_type = f"{FHIR_JSON}; charset=utf-8"

    def render(self, content: Any) -> bytes:
        if content is None:
            return b""
        return dumps(content)
