"""docs/plugin-authors.md documents every hook with its exact signature and every
entry-point group, so adding a hook or a group without documenting it fails here."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from quorus.core import hookspecs
from quorus.core.plugins import GROUPS

PLUGIN_AUTHORS = Path(__file__).resolve().parents[2] / "docs" / "plugin-authors.md"


class _Annotation:
    """An annotation kept as the text written in the source.

    ``hookspecs`` postpones evaluation of annotations (their types are imported only for
    type checking), so they arrive as strings, which ``inspect`` would print quoted.
    """

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _unquoted(annotation: Any) -> Any:
    if annotation is inspect.Parameter.empty or not isinstance(annotation, str):
        return annotation
    return _Annotation(annotation)


def hook_specs() -> dict[str, Callable[..., Any]]:
    """Every function in ``hookspecs`` marked as a hook spec."""
    marker = f"{hookspecs.hookspec.project_name}_spec"
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def signature_text(function: Callable[..., Any]) -> str:
    """``def name(param: Type, ...) -> Return`` as the source declares it."""
    signature = inspect.signature(function)
    signature = signature.replace(
        parameters=[p.replace(annotation=_unquoted(p.annotation))
                    for p in signature.parameters.values()],
        return_annotation=_unquoted(signature.return_annotation),
    )
    return f"def {function.__name__}{signature}"


def normalise(text: str) -> str:
    """Drop whitespace and trailing commas, so line wrapping in the docs does not matter."""
    return re.sub(r",\)", ")", re.sub(r"\s+", "", text))


def undocumented_hooks(specs: dict[str, Callable[..., Any]], document: str) -> list[str]:
    """Signatures of the hooks in ``specs`` that ``document`` does not show exactly."""
    documented = normalise(document)
    return [signature_text(fn) for fn in specs.values()
            if normalise(signature_text(fn)) not in documented]


@pytest.fixture(scope="module")
def document() -> str:
    assert PLUGIN_AUTHORS.is_file(), f"{PLUGIN_AUTHORS} is missing"
    return PLUGIN_AUTHORS.read_text(encoding="utf-8")


def test_there_are_hooks_to_check() -> None:
    # Guards against the lookup silently finding nothing (e.g. a renamed marker).
    assert "quorus_transfer_finished" in hook_specs()


@pytest.mark.parametrize("name", sorted(hook_specs()))
def test_hook_documented_with_exact_signature(name: str, document: str) -> None:
    spec = hook_specs()[name]
    assert undocumented_hooks({name: spec}, document) == [], (
        f"document {signature_text(spec)} in {PLUGIN_AUTHORS.name}"
    )


def test_documented_hooks_exist(document: str) -> None:
    """A hook renamed or removed in code must not live on in the docs."""
    mentioned = set(re.findall(r"\bdef\s+(quorus_\w+)\s*\(", document))
    assert mentioned, "the hook section lists no hook"
    assert mentioned - set(hook_specs()) == set()


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_entry_point_group_documented(group: str, document: str) -> None:
    row = re.compile(rf"^\|\s*`{re.escape(group)}`\s*\|", re.MULTILINE)
    assert row.search(document), f"add a table row for `{group}` to {PLUGIN_AUTHORS.name}"


def test_check_catches_a_new_undocumented_hook(document: str) -> None:
    """The comparison fails for a hook that is not in the docs, and for a changed signature."""

    def quorus_agent_lost(agent_id: str, last_seen: float) -> None:
        """A hook that does not exist (yet)."""

    def quorus_transfer_finished(request: int, result: int) -> None:
        """The real hook's name with other parameter types."""

    fake: dict[str, Callable[..., Any]] = {"quorus_agent_lost": quorus_agent_lost,
            "quorus_transfer_finished": quorus_transfer_finished}
    assert undocumented_hooks(fake, document) == [
        "def quorus_agent_lost(agent_id: str, last_seen: float) -> None",
        "def quorus_transfer_finished(request: int, result: int) -> None",
    ]


def test_signature_text_keeps_annotations_as_written() -> None:
    def quorus_example(name: str, labels: Mapping[str, str], *, weight: float = 1.0) -> None:
        """Postponed annotations print as written, without quotes."""

    assert signature_text(quorus_example) == (
        "def quorus_example(name: str, labels: Mapping[str, str], *, weight: float = 1.0) -> None"
    )
