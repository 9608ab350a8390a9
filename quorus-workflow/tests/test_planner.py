"""The planner: levels for chains, diamonds, group dependencies and strategies; missing
names with "did you mean", self-dependencies and cycles named in order; a large plan."""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from quorus.workflow.documents import DefinitionError, load_text
from quorus.workflow.model import (
    Endpoint,
    GroupDefinition,
    Origin,
    TransferStep,
    WorkflowDefinition,
    build_definitions,
)
from quorus.workflow.planner import Plan, plan


def transfer(name: str, *deps: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "source": {"path": f"/src/{name}"},
                            "destination": {"path": f"/dst/{name}"}}
    if deps:
        spec["dependsOn"] = list(deps)
    return spec


def group(name: str, *transfers: dict[str, Any], after: tuple[str, ...] = (),
          strategy: str = "parallel") -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "transferGroup": {"spec": {
        "execution": {"strategy": strategy}, "transfers": list(transfers)}}}
    if after:
        entry["dependsOn"] = list(after)
    return entry


def planned(*groups: dict[str, Any]) -> Plan:
    text = yaml.safe_dump({"apiVersion": "quorus.dev/v1", "kind": "TransferWorkflow",
                           "metadata": {"name": "wf"}, "spec": {"groups": list(groups)}},
                          sort_keys=False)
    return plan(build_definitions(load_text(text, "wf.yaml")).select())


def problems(*groups: dict[str, Any]) -> list[str]:
    with pytest.raises(DefinitionError) as caught:
        planned(*groups)
    return [str(issue) for issue in caught.value.issues]


def levels(p: Plan) -> list[list[str]]:
    return [[s.step_id for s in level] for level in p.levels]


def test_a_chain_has_one_step_per_level() -> None:
    p = planned(group("G", transfer("c", "b"), transfer("a"), transfer("b", "a")))
    assert levels(p) == [["G/a"], ["G/b"], ["G/c"]]
    assert [s.step_id for s in p.steps] == ["G/a", "G/b", "G/c"]
    assert p.by_id()["G/c"].after == ("G/b",)


def test_a_diamond_puts_both_branches_on_one_level() -> None:
    p = planned(group("G", transfer("top"), transfer("left", "top"), transfer("right", "top"),
                      transfer("bottom", "left", "right")))
    assert levels(p) == [["G/top"], ["G/left", "G/right"], ["G/bottom"]]


def test_the_level_is_the_longest_path_not_the_shortest() -> None:
    p = planned(group("G", transfer("a"), transfer("b", "a"), transfer("c", "b"),
                      transfer("d", "a", "c")))
    assert p.by_id()["G/d"].level == 3


def test_a_group_starts_after_every_step_of_the_group_it_depends_on() -> None:
    p = planned(group("A", transfer("a1"), transfer("a2", "a1")),
                group("B", transfer("b"), after=("A",)),
                group("C", transfer("c")))
    assert levels(p) == [["A/a1", "C/c"], ["A/a2"], ["B/b"]]
    assert p.group_after == {"A": (), "B": ("A",), "C": ()}
    assert p.to_json()["groups"] == [{"name": "A", "after": []}, {"name": "B", "after": ["A"]},
                                     {"name": "C", "after": []}]


def test_groups_are_ordered_by_dependency_not_as_written() -> None:
    p = planned(group("late", transfer("x"), after=("early",)), group("early", transfer("y")))
    assert p.group_order == ("early", "late")
    assert levels(p) == [["early/y"], ["late/x"]]


def test_a_sequential_group_orders_its_steps_declared_dependencies_first() -> None:
    p = planned(group("S", transfer("one", "three"), transfer("two"), transfer("three"),
                      strategy="sequential"))
    assert [s.step_id for s in p.steps] == ["S/two", "S/three", "S/one"]
    assert levels(p) == [["S/two"], ["S/three"], ["S/one"]]
    by_id = p.by_id()
    assert by_id["S/three"].after == ("S/two",)
    assert by_id["S/one"].after == ("S/three",)
    # The implicit order is in ``after`` only: the declared dependencies stay as written.
    assert by_id["S/three"].step.depends_on == ()


def test_parallel_and_mixed_groups_keep_independent_steps_on_one_level() -> None:
    for strategy in ("parallel", "mixed"):
        p = planned(group("P", transfer("a"), transfer("b"), transfer("c", "a"),
                          strategy=strategy))
        assert levels(p) == [["P/a", "P/b"], ["P/c"]], strategy


def test_a_missing_dependency_is_named_with_a_close_match() -> None:
    found = problems(group("G", transfer("users"), transfer("orders", "user")))
    assert len(found) == 1
    assert "transfer 'orders' depends on 'user', which is not defined here" in found[0]
    assert found[0].endswith("(did you mean 'users'?)")
    assert found[0].startswith("wf.yaml:")


def test_a_missing_group_dependency_is_named() -> None:
    found = problems(group("extract", transfer("a")),
                     group("load", transfer("b"), after=("extrac",)))
    assert any("group 'load' depends on 'extrac'" in f and "'extract'" in f for f in found)


def test_self_dependency_is_reported_for_transfers_and_groups() -> None:
    found = problems(group("G", transfer("a", "a"), after=("G",)))
    assert any("transfer 'a' depends on itself" in f for f in found)
    assert any("group 'G' depends on itself" in f for f in found)


def test_a_transfer_cycle_is_named_in_dependency_order() -> None:
    found = problems(group("G", transfer("a", "b"), transfer("b", "c"), transfer("c", "a"),
                           transfer("free")))
    assert len(found) == 1
    assert "dependency cycle among transfers of group 'G': a → b → c → a" in found[0]


def test_a_group_cycle_is_named() -> None:
    found = problems(group("A", transfer("x"), after=("C",)),
                     group("B", transfer("y"), after=("A",)),
                     group("C", transfer("z"), after=("B",)))
    assert any("dependency cycle among groups: A → C → B → A" in f for f in found)


def test_every_problem_is_reported_at_once() -> None:
    found = problems(group("A", transfer("a", "b"), transfer("b", "a"), transfer("c", "zz")),
                     group("B", transfer("x"), after=("nope",)))
    assert len(found) == 3


def test_a_five_thousand_transfer_plan_is_built() -> None:
    origin = Origin("big.yaml", "spec")
    groups = []
    for g in range(50):
        steps = tuple(
            TransferStep(name=f"t{i}", group=f"g{g}", source=Endpoint(f"/s/{g}/{i}", True),
                         destination=Endpoint(f"/d/{g}/{i}", True), origin=origin,
                         depends_on=(f"t{i - 1}", f"t{i // 2}") if i > 1 else ())
            for i in range(100))
        groups.append(GroupDefinition(
            name=f"g{g}", transfers=steps, origin=origin, strategy="mixed",
            depends_on=(f"g{g - 1}",) if g % 5 else ()))
    workflow = WorkflowDefinition("big", "TransferWorkflow", tuple(groups), origin)
    began = time.perf_counter()
    p = plan(workflow)
    took = time.perf_counter() - began
    print(f"planned 5000 transfers in {took * 1000:.1f} ms")
    assert len(p.steps) == 5000
    # Each chain of five groups is 5 * 99 levels deep (t0, t1 then a chain).
    assert len(p.levels) == 5 * 99
    assert p.by_id()["g4/t99"].level == 5 * 99 - 1
