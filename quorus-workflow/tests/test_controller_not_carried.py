"""A workflow step whose settings a job cannot carry to an agent yet is refused when it is
submitted to the quorum, naming each setting, instead of being run without them."""

from __future__ import annotations

import pytest
from quorus.workflow.controller.prepared import SubmissionError, prepare

GROUP = """\
apiVersion: quorus.dev/v1
kind: TransferGroup
metadata: {name: g}
spec:
  transfers:
    - name: t
      source: {path: /in/a}
      destination: {path: /out/a, permissions: "640", createDirectories: false}
      validation: {expectedSize: {min: 1KB, max: 5GB}}
      streams: 4
"""


def test_settings_agents_cannot_honour_yet_are_refused() -> None:
    with pytest.raises(SubmissionError) as caught:
        prepare({"g.yaml": GROUP}, workflow=None, environment=None, sets={}, bindings={},
                execution_id="x1", started_at=0.0)
    message = caught.value.message
    for setting in ("permissions", "createDirectories", "expectedSize min/max", "streams"):
        assert setting in message, setting


def test_the_same_group_without_them_is_accepted() -> None:
    plain = "\n".join(line for line in GROUP.splitlines()
                      if "validation" not in line and "streams" not in line)
    plain = plain.replace(', permissions: "640", createDirectories: false', "")
    prepared = prepare({"g.yaml": plain}, workflow=None, environment=None, sets={},
                       bindings={}, execution_id="x1", started_at=0.0)
    assert [s.step_id for s in prepared.plan.steps] == ["g/t"]
