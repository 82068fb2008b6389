"""A document attached to a completed Task: what is accepted, and the DocumentReference it becomes.

Completing a Task can record its output as a file (a letter, a scanned form, a photo of a wound). The
file is checked by its own first bytes, not by the name or type the browser sends (PDF, PNG or JPEG,
at most :data:`MAX_BYTES`), and stored as one DocumentReference with the bytes inline
(``content.attachment.data``), in the same unit of work as the Task update that names it in
``Task.output`` (``valueReference``): both are written or neither. Being an ordinary resource of the
patient's record, it is encrypted at rest, audited and narrowed like any other: the access matrix
lets each discipline that sees Tasks see these documents (``DocumentReference?category=`` the
task-output category below, in ``careflow/access/policy.yaml``), and the download page serves one
only to whoever may read both it and the Task it belongs to.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

MAX_BYTES = 4 * 1024 * 1024
# the first bytes of each accepted type: what the file is, whatever its name says
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
ACCEPT = ",".join(sorted({t for _, t in SIGNATURES}) + [".pdf", ".png", ".jpg", ".jpeg"])
CATEGORY_SYSTEM = "https://careflow.dev/fhir/CodeSystem/document-category"
TASK_OUTPUT = {"system": CATEGORY_SYSTEM, "code": "task-output", "display": "Output of a care-plan task"}
OUTPUT_TYPE = {"text": "Attached document"}


class AttachmentProblem(ValueError):
    """A file that is not taken; ``status`` is the HTTP status of the page saying why."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def content_type(data: bytes) -> str | None:
    """The accepted type these bytes are (by their signature), or None."""
    return next((kind for magic, kind in SIGNATURES if data.startswith(magic)), None)


def check(data: bytes) -> str:
    """The content type of an acceptable file, else :class:`AttachmentProblem` (413 too large, 415 a
    type not taken, 400 empty). The messages are the English source texts of the page's wording."""
    if not data:
        raise AttachmentProblem("The file is empty.", 400)
    if len(data) > MAX_BYTES:
        raise AttachmentProblem("The file is too large: attach at most {size} MB.", 413)
    kind = content_type(data)
    if kind is None:
        raise AttachmentProblem("Only PDF, PNG or JPEG files can be attached.", 415)
    return kind


def safe_name(filename: str | None) -> str:
    """The file's own name, without a path and with only harmless characters (it is shown and sent back
    in a Content-Disposition header)."""
    base = re.split(r"[\\/]", filename or "")[-1]
    cleaned = re.sub(r"[^\w.\- ]+", "_", base, flags=re.UNICODE).strip(" .")[:120]
    return cleaned or "document"


def document_reference(task: dict[str, Any], data: bytes, kind: str, filename: str, author: str | None,
                       now: str) -> dict[str, Any]:
    """The DocumentReference of a file attached to ``task``: the same patient, the Task in
    ``context.related``, the bytes inline with their size and SHA-1 (R4's ``attachment.hash``)."""
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "status": "current",
        "category": [{"coding": [TASK_OUTPUT]}],
        "subject": task.get("for") or {},
        "date": now,
        "description": f"Output of {((task.get('code') or {}).get('text') or 'a task')}"[:200],
        "content": [{"attachment": {
            "contentType": kind,
            "data": base64.b64encode(data).decode("ascii"),
            "size": len(data),
            "hash": base64.b64encode(hashlib.sha1(data).digest()).decode("ascii"),  # noqa: S324 - R4 names SHA-1
            "title": filename,
            "creation": now,
        }}],
        "context": {"related": [{"reference": f"Task/{task['id']}"}]},
    }
    if author:
        doc["author"] = [{"reference": author}]
    return doc


def output(document_id: str, filename: str) -> dict[str, Any]:
    """The ``Task.output`` naming the attached document."""
    return {"type": OUTPUT_TYPE, "valueReference": {"reference": f"DocumentReference/{document_id}", "display": filename}}


def attached(task: dict[str, Any]) -> list[tuple[str, str]]:
    """(DocumentReference id, name) of each document a Task's outputs name."""
    out = []
    for item in task.get("output") or ():
        ref = ((item or {}).get("valueReference") or {}).get("reference")
        if isinstance(ref, str) and ref.startswith("DocumentReference/"):
            out.append((ref.split("/", 1)[1], str(item["valueReference"].get("display") or "document")))
    return out


def payload(doc: dict[str, Any]) -> tuple[bytes, str, str] | None:
    """(bytes, content type, name) of a task-output DocumentReference, None when it holds no file of
    an accepted type (its bytes are checked again: what is served is what was accepted)."""
    for content in doc.get("content") or ():
        attachment = (content or {}).get("attachment") or {}
        raw = attachment.get("data")
        if not isinstance(raw, str):
            continue
        try:
            data = base64.b64decode(raw, validate=True)
        except ValueError:
            return None
        kind = content_type(data)
        if kind is None or kind != attachment.get("contentType"):
            return None
        return data, kind, safe_name(attachment.get("title"))
    return None
