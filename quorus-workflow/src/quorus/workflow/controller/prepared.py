"""From the YAML text of submitted files to what an execution on the quorum runs: documents
parsed and validated, definitions built, one workflow selected and planned, and a binder over
the values the client bound. The REST routes use it to answer 400 before proposing anything;
the state module uses it again, deterministically, when it applies the submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from quorus.core.errors import QuorusError
from quorus.workflow.binding import Binder, RunContext
from quorus.workflow.documents import DefinitionError, Document, Issue, load_text
from quorus.workflow.model import WorkflowDefinition
from quorus.workflow.planner import Plan
from quorus.workflow.prepare import prepare as prepare_documents

#: What one submission may hold.
MAX_FILES = 64
MAX_FILE_CHARS = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Prepared:
    """A workflow ready to execute: its definition, plan and binder."""

    workflow: WorkflowDefinition
    plan: Plan
    binder: Binder


class SubmissionError(QuorusError):
    """A submission that cannot run: ``issues`` lists every problem found in its files (empty
    when the problem is not in one place of a file, such as an unknown workflow name)."""

    def __init__(self, message: str, issues: tuple[Issue, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.issues = issues


def prepare(files: Mapping[str, str], *, workflow: str | None, environment: str | None,
            sets: Mapping[str, str], bindings: Mapping[str, Any], execution_id: str,
            started_at: float, needs_triggers: bool = False) -> Prepared:
    """Parse, validate, build, select, plan and bind; raises :class:`SubmissionError`."""
    if not files:
        raise SubmissionError("no files given: send the workflow's YAML files by name")
    if len(files) > MAX_FILES:
        raise SubmissionError(f"{len(files)} files given; at most {MAX_FILES} per submission")
    documents: list[Document] = []
    issues: list[Issue] = []
    for name, text in files.items():
        if len(text) > MAX_FILE_CHARS:
            issues.append(Issue(name, 0, 0, "", f"the file holds {len(text)} characters; at "
                                f"most {MAX_FILE_CHARS} are accepted"))
            continue
        try:
            documents.extend(load_text(text, name))
        except DefinitionError as exc:
            issues.extend(exc.issues)
    try:
        # The same checks as a local run: schema, references, conditions, dependencies and
        # results read before they exist, every problem of every file at once.
        prepared = prepare_documents(documents, name=workflow, sets=sets, load_issues=issues)
        definitions, selected, planned = prepared.definitions, prepared.workflow, prepared.plan
        context = RunContext(started_at=started_at, execution_id=execution_id,
                             environment=environment, sets=dict(sets),
                             tenants=definitions.tenants, bound=dict(bindings))
        binder = Binder(selected, context)
    except DefinitionError as exc:
        raise _definition_error(exc) from None
    except QuorusError as exc:
        raise SubmissionError(getattr(exc, "message", None) or str(exc)) from None
    if selected.dry_run or selected.virtual_run:
        raise SubmissionError(f"workflow {selected.name!r} asks for a dry or virtual run "
                              "(spec.execution): those run where the files are, with "
                              "quorus workflow run")
    refused = [f"{where}: {n.message}" for where, n in selected.all_notices()
               if n.level == "error"]
    if refused:
        raise SubmissionError("this workflow cannot run here: " + "; ".join(refused))
    # Triggers that cannot be used were refused with the other issues above, by the check
    # quorus workflow validate makes.
    if needs_triggers and not selected.triggers:
        raise SubmissionError(
            f"workflow {selected.name!r} has no triggers: register a workflow whose "
            "spec.triggers lists a cron or fileSystem trigger, or submit it to run once")
    return Prepared(selected, planned, binder)


def _definition_error(exc: DefinitionError) -> SubmissionError:
    return SubmissionError(str(exc), exc.issues)


__all__ = ["MAX_FILES", "Prepared", "SubmissionError", "prepare"]
