"""The access policy file is read like a programme: a broken one names file:line, never a traceback."""

from __future__ import annotations

import pytest

from careflow.access.policy import load_policy, parse_policy
from careflow.errors import ProgramError


def _problems(text: str) -> list[str]:
    with pytest.raises(ProgramError) as info:
        parse_policy(text, "policy.yaml")
    return [str(p) for p in info.value.problems]


def test_not_yaml_not_a_mapping_and_duplicate_keys():
    assert _problems("a: [unclosed\n")[0].startswith("policy.yaml:")
    assert _problems("- a\n") == ["policy.yaml:1:1: an access policy must be a mapping of keys"]
    assert _problems("a: 1\na: 2\n")[0].startswith("policy.yaml:2:1: not valid YAML: duplicate key")
    assert _problems(f"a: {'9' * 5000}\n")[0].startswith("policy.yaml:1:1: not valid YAML:")


def test_an_unreadable_file_is_one_problem(tmp_path):
    missing, latin = tmp_path / "missing.yaml", tmp_path / "latin.yaml"
    latin.write_bytes("caf\xe9: 1\n".encode("latin-1"))
    for path, said in ((missing, "cannot read the file"), (latin, "the file is not UTF-8 text")):
        with pytest.raises(ProgramError) as info:
            load_policy(path)
        (problem,) = info.value.problems
        assert str(problem).startswith(f"{path}:1:1: {said}")
