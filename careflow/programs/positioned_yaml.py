"""YAML read with every node's position, so each problem an author makes points at file:line:column.

Programmes, stratification rules and the access policy are all authored as YAML and all report
their problems the same way. The reading itself (ruamel.yaml in round-trip mode, duplicate keys
refused, a file that is not UTF-8 or not a mapping turned into a Problem rather than a traceback)
lives here once, so a fix to it (say, a scalar the constructor cannot convert) reaches every kind
of file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, NoReturn

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

Loc = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


Raise = Callable[[list[Problem]], Exception]
"""The error class of the kind of file being read (ProgramError, RuleSetError): built from the problems."""


def yaml_parser() -> YAML:
    y = YAML(typ="rt")
    y.allow_duplicate_keys = False
    return y


def position(root: Any, loc: Loc) -> tuple[int, int, Loc]:
    """Line/column (1-based) of the deepest node of ``loc`` that exists, and the part of loc that exists."""
    node, line, col, found = root, 1, 1, []
    if isinstance(root, (CommentedMap, CommentedSeq)):
        line, col = root.lc.line + 1, root.lc.col + 1
    for part in loc:
        if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
            kl, kc = node.lc.key(part)
            line, col = kl + 1, kc + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            il, ic = node.lc.item(part)
            line, col = il + 1, ic + 1
            node = node[part]
        else:
            break
        found.append(part)
    return line, col, tuple(found)


def dotted_path(loc: Loc) -> str:
    """``("rules", 2, "when")`` as ``rules[2].when``, the way authors read their file."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fail(error: Raise, filename: str, line: int, column: int, message: str) -> NoReturn:
    raise error([Problem(filename, line, column, "", message)]) from None


def load_mapping(text: str, filename: str, error: Raise, what: str) -> CommentedMap:
    """The document of ``text`` as a positioned mapping; ``error`` with one Problem when it is not
    YAML or not a mapping (``what`` says what a file of this kind must be)."""
    try:
        data = yaml_parser().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        said = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in said.lower() or "found duplicate key" in str(exc):
            said = "duplicate key " + (said.split('"')[1].join('""') if '"' in said else "")
        _fail(error, filename, line, col, f"not valid YAML: {said}")
    except YAMLError as exc:
        _fail(error, filename, 1, 1, f"not valid YAML: {exc}")
    except ValueError as exc:  # a scalar the constructor cannot convert, e.g. an integer of 5000 digits
        _fail(error, filename, 1, 1, f"not valid YAML: {exc}")
    if not isinstance(data, CommentedMap):
        _fail(error, filename, 1, 1, what)
    return data


def read_source(path: str | Path, error: Raise) -> str:
    """The UTF-8 text of ``path``; ``error`` with one Problem when it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        _fail(error, str(p), 1, 1, f"cannot read the file: {exc.strerror or exc}")
    except UnicodeDecodeError:
        _fail(error, str(p), 1, 1, "the file is not UTF-8 text")


def yaml_files(paths: Iterable[str | Path]) -> list[Path]:
    """YAML files named directly, or found in the folders named (schema.json and friends ignored)."""
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        files.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml")) if p.is_dir() else [p])
    return files
