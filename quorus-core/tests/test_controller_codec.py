"""The codec's compiled decoders and encoders: the paths and messages of every refusal, the
choices among a union's options, and caches that never mix two classes up."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from quorus.core.controller import AssignJob, JobRecord, JobState
from quorus.core.controller.codec import SECRET, SHOWN_AS, RecordFormatError, from_plain, to_plain


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True, slots=True)
class Leaf:
    n: int
    colour: Colour = Colour.RED

    def __post_init__(self) -> None:
        if self.n == 13:
            raise ValueError("13 is unlucky")


@dataclass(frozen=True, slots=True)
class Tree:
    name: str
    groups: Mapping[str, tuple[Leaf, ...]] = field(default_factory=dict)
    size: int | float = 0
    ratio: float = 1.0
    parent: str | None = None
    pair: tuple[str, int] = ("", 0)
    counts: dict[int, str] = field(default_factory=dict)
    flag: bool = False
    either: int | str | None = None


# typing holds ``int | float == float | int``: a cache keyed by the hint would decode one class
# with the other's order.
@dataclass(frozen=True, slots=True)
class IntFirst:
    value: int | float
    values: tuple[int | float, ...] = ()


@dataclass(frozen=True, slots=True)
class FloatFirst:
    value: float | int
    values: tuple[float | int, ...] = ()


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    children: tuple[Node, ...] = ()
    parent: Node | None = None


@dataclass(frozen=True, slots=True)
class Loose:
    name: str
    extra: Any = None


@dataclass(frozen=True, slots=True)
class Shown:
    token: str = field(metadata={SECRET: True})
    options: Mapping[str, str] = field(
        default_factory=dict, metadata={SHOWN_AS: lambda plain: sorted(plain)})
    colour: Colour = Colour.BLUE
    leaves: tuple[Leaf, ...] = ()


def refusal(cls: type, data: Any, *, path: str = "") -> str:
    with pytest.raises(RecordFormatError) as caught:
        from_plain(cls, data, path=path)
    return str(caught.value)


def test_a_refusal_deep_inside_names_the_whole_path() -> None:
    data = {"name": "t", "groups": {"a": [{"n": 1}, {"n": "2"}]}}
    assert refusal(Tree, data) == "Tree.groups['a'][1].n: expected an integer, got str"
    assert refusal(Tree, data, path="tree 't'") == (
        "tree 't'.groups['a'][1].n: expected an integer, got str")
    assert refusal(Tree, {"name": "t", "groups": {"a": [{"n": 1, "colour": "green"}]}}) == (
        "Tree.groups['a'][0].colour: 'green' is not one of red, blue")
    assert refusal(Tree, {"name": "t", "counts": {"1": "one"}}) == (
        "Tree.counts key: expected an integer, got str")
    assert refusal(Tree, {"name": "t", "groups": {"a": {"n": 1}}}) == (
        "Tree.groups['a']: expected a list, got dict")


def test_a_post_init_refusal_is_wrapped_with_its_path() -> None:
    assert refusal(Tree, {"name": "t", "groups": {"a": [{"n": 1}, {"n": 13}]}}) == (
        "Tree.groups['a'][1]: 13 is unlucky")
    assert refusal(Leaf, {"n": 13}) == "Leaf: 13 is unlucky"
    assert refusal(AssignJob, {"job_id": "j", "agent_id": "a", "attempt": 0, "at": 1.0},
                   path="assign-job") == "assign-job: attempt numbers start at 1, not 0"


def test_unknown_fields_are_listed_sorted_before_anything_else_is_checked() -> None:
    assert refusal(Leaf, {"n": "bad", "zeta": 1, "alpha": 2, 7: 3}) == (
        "Leaf: unknown field(s) 7, alpha, zeta")
    assert refusal(Leaf, {"colour": "red"}) == "Leaf: missing field n"
    assert refusal(Leaf, ["n", 1]) == "Leaf: expected a map, got list"
    assert refusal(Leaf, None) == "Leaf: expected a map, got nothing"


def test_scalars_are_strict() -> None:
    assert refusal(Leaf, {"n": True}) == "Leaf.n: expected an integer, got bool"
    assert refusal(Leaf, {"n": 1.0}) == "Leaf.n: expected an integer, got float"
    assert refusal(Tree, {"name": "t", "ratio": False}) == "Tree.ratio: expected a number, got bool"
    assert refusal(Tree, {"name": "t", "ratio": float("inf")}) == (
        "Tree.ratio: expected a finite number, got inf")
    assert refusal(Tree, {"name": "t", "flag": 1}) == "Tree.flag: expected true or false, got int"
    assert refusal(Tree, {"name": 5}) == "Tree.name: expected a string, got int"
    ratio = from_plain(Tree, {"name": "t", "ratio": 2}).ratio
    assert ratio == 2.0 and type(ratio) is float


def test_optional_and_union_values() -> None:
    assert from_plain(Tree, {"name": "t", "parent": None}).parent is None
    assert from_plain(Tree, {"name": "t", "parent": "p"}).parent == "p"
    assert refusal(Tree, {"name": "t", "parent": 3}) == "Tree.parent: expected a string, got int"
    assert from_plain(Tree, {"name": "t", "either": "x"}).either == "x"
    assert from_plain(Tree, {"name": "t", "either": None}).either is None
    assert refusal(Tree, {"name": "t", "either": 1.5}) == "Tree.either: float is not a valid value"
    assert refusal(Tree, {"name": "t", "size": True}) == "Tree.size: bool is not a valid value"
    assert refusal(Tree, {"name": "t", "size": None}) == "Tree.size: nothing is not a valid value"
    size = from_plain(Tree, {"name": "t", "size": 3}).size
    assert size == 3 and type(size) is int
    assert type(from_plain(Tree, {"name": "t", "size": 3.5}).size) is float


def test_a_union_takes_the_first_option_that_fits_in_each_class() -> None:
    int_first = from_plain(IntFirst, {"value": 3, "values": [1, 2.5]})
    float_first = from_plain(FloatFirst, {"value": 3, "values": [1, 2.5]})
    assert type(int_first.value) is int and [type(v) for v in int_first.values] == [int, float]
    assert type(float_first.value) is float and [type(v) for v in float_first.values] == [
        float, float]
    # And again, now both are compiled.
    assert type(from_plain(IntFirst, {"value": 4}).value) is int
    assert type(from_plain(FloatFirst, {"value": 4}).value) is float


def test_fixed_tuples_check_their_length_and_each_item() -> None:
    assert from_plain(Tree, {"name": "t", "pair": ["a", 1]}).pair == ("a", 1)
    assert refusal(Tree, {"name": "t", "pair": ["a"]}) == "Tree.pair: expected 2 items, got 1"
    assert refusal(Tree, {"name": "t", "pair": ["a", "b"]}) == (
        "Tree.pair[1]: expected an integer, got str")


def test_the_same_hint_in_two_classes_and_a_class_inside_itself() -> None:
    tree = from_plain(Tree, {"name": "t", "groups": {"a": [{"n": 1}]}})
    shown = from_plain(Shown, {"token": "x", "leaves": [{"n": 2, "colour": "blue"}]})
    assert tree.groups == {"a": (Leaf(1),)} and shown.leaves == (Leaf(2, Colour.BLUE),)
    assert refusal(Shown, {"token": "x", "leaves": [{"n": 1}, {"n": 13}]}) == (
        "Shown.leaves[1]: 13 is unlucky")
    node = from_plain(Node, {"name": "r", "children": [{"name": "c", "parent": {"name": "r"}}]})
    assert node == Node("r", (Node("c", parent=Node("r")),))
    assert refusal(Node, {"name": "r", "children": [{"name": "c", "children": [{}]}]}) == (
        "Node.children[0].children[0]: missing field name")


def test_decoding_after_a_refusal_starts_afresh() -> None:
    bad = {"name": "t", "groups": {"a": [{"n": "x"}]}}
    assert refusal(Tree, bad) == "Tree.groups['a'][0].n: expected an integer, got str"
    assert from_plain(Tree, {"name": "t", "groups": {"a": [{"n": 1}]}}).groups == {
        "a": (Leaf(1),)}
    assert refusal(Tree, bad) == "Tree.groups['a'][0].n: expected an integer, got str"
    assert refusal(Leaf, {"n": "x"}) == "Leaf.n: expected an integer, got str"


def test_an_unsupported_hint_is_refused_when_a_value_needs_it() -> None:
    assert from_plain(Loose, {"name": "x"}) == Loose("x")
    with pytest.raises(TypeError, match=r"^loose\.extra: unsupported type hint typing\.Any$"):
        from_plain(Loose, {"name": "x", "extra": 1}, path="loose")


def test_records_decode_what_they_encode() -> None:
    job = JobRecord(id="j", source="/a", destination="/b", source_display="/a",
                    destination_display="/b", source_scheme="file", destination_scheme="file",
                    sequence=1, submitted_at=1.0, state=JobState.RUNNING, agent_id="a")
    assert from_plain(JobRecord, to_plain(job)) == job
    assert to_plain(job) == to_plain(job) and to_plain(job)["state"] == "running"


def test_to_plain_json_leaves_secrets_out_and_shows_fields_through_their_function() -> None:
    shown = Shown("hunter2", {"b": "1", "a": "2"}, leaves=(Leaf(1),))
    for _ in range(2):  # the second time through the cached encoder
        assert to_plain(shown) == {"token": "hunter2", "options": {"b": "1", "a": "2"},
                                   "colour": "blue", "leaves": [{"n": 1, "colour": "red"}]}
        assert to_plain(shown, json=True) == {"options": ["a", "b"], "colour": "blue",
                                              "leaves": [{"n": 1, "colour": "red"}]}
    assert to_plain({1: (Colour.RED, None), "k": [2.5, True]}) == {
        "1": ["red", None], "k": [2.5, True]}
    for _ in range(2):
        with pytest.raises(TypeError, match="cannot convert object to plain data"):
            to_plain([object()])
