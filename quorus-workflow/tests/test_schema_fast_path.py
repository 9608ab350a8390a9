"""The fast schema check agrees with jsonschema: it accepts exactly what jsonschema accepts,
on the design's examples and on random mutations of them."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quorus.workflow.documents import load_file
from quorus.workflow.schema import conforms, validator_for

DESIGN = Path(__file__).parent / "data" / "design"
EXAMPLES = {doc.kind: doc.body for f in sorted(DESIGN.glob("*.yaml")) for doc in load_file(f)}


def _agree(kind: str, body: Any) -> bool:
    slow_ok = not any(True for _ in validator_for(kind).iter_errors(body))
    return conforms(kind, body) == slow_ok


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_design_examples_conform(kind: str) -> None:
    assert conforms(kind, EXAMPLES[kind])


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*path, index))
    return found


VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=False),
                   st.sampled_from(["", "x", "300s", "10MB", "sequential", "exponential",
                                    "https://a/b", "/abs/path", "a b", "${X}"]),
                   st.just([]), st.just({}), st.just({"unknownField": 1}))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(sorted(EXAMPLES)), data=st.data())
def test_fast_check_agrees_with_jsonschema_on_mutations(kind: str, data: st.DataObject) -> None:
    body = copy.deepcopy(EXAMPLES[kind])
    paths = [p for p in _paths(body) if p]
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        parent: Any = body
        try:
            for part in path[:-1]:
                parent = parent[part]
            action = data.draw(st.sampled_from(["replace", "delete", "add"]))
            if action == "delete" and isinstance(parent, dict):
                parent.pop(path[-1], None)
            elif action == "add" and isinstance(parent, dict):
                parent[data.draw(st.sampled_from(["extra", "name", "retyr", "dependsOn"]))] = \
                    data.draw(VALUES)
            else:
                parent[path[-1]] = data.draw(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    assert _agree(kind, body)
