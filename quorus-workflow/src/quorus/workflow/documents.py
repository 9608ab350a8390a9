"""YAML definition files to :class:`Document`s: plain JSON-like bodies plus the line and column
of every key and list item, so that every later check can point at the text a person wrote.

Problems (syntax, duplicate keys, non-text keys, alias bombs, oversized files) are collected as
:class:`Issue`s over all files given and raised together as one :class:`DefinitionError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from quorus.core.errors import QuorusError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    from yaml import CSafeLoader as _Loader
except ImportError:  # PyYAML built without libyaml: same results, only slower
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

__all__ = [
    "MAX_FILE_BYTES", "MAX_NESTING", "MAX_VALUES", "DefinitionError", "DocPath", "Document",
    "Issue", "Position", "format_path", "load_file", "load_paths", "load_text", "read_paths",
]

MAX_FILE_BYTES = 16 * 1024 * 1024
# Values one document may expand to once aliases are followed: far above any real definition
# (a 5,000-transfer group is ~100,000), far below what a "billion laughs" file asks for.
MAX_VALUES = 2_000_000
MAX_NESTING = 100

DocPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
# Something that may be an alias (`*name` where a value starts). Without one no node can be
# shared, so the expansion count (a walk over every node) is skipped; a `*` inside quoted
# text only costs that walk.
_ALIAS = re.compile(r"(?:^|[\s\[{,])\*[^\s\[\]{},]", re.MULTILINE)
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_SCALARS = SafeConstructor()
_JSON_TYPE = {"int": "integer", "float": "number", "bool": "boolean", "null": "null"}


@dataclass(frozen=True, slots=True)
class Position:
    """Where something starts in a file, 1-based."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in a definition. ``line`` 0 means the whole file (it could not be read);
    ``path`` is where inside the document, like ``spec.transfers[1].dependsOn``."""

    file: str
    line: int
    column: int
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} (did you mean {self.hint!r}?)" if self.hint else text

    @property
    def sort_key(self) -> tuple[str, int, int, str, str, str]:
        return (self.file, self.line, self.column, self.path, self.message, self.hint or "")

    def __lt__(self, other: Issue) -> bool:
        return self.sort_key < other.sort_key


class DefinitionError(QuorusError):
    """Workflow definitions that cannot be used, with every problem found in them."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(sorted(issues))
        count = len(self.issues)
        head = f"{count} problem{'' if count == 1 else 's'} in workflow definitions:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


def format_path(path: DocPath) -> str:
    """``("spec", "transfers", 1, "dependsOn")`` → ``spec.transfers[1].dependsOn``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _SIMPLE_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{part!r}]"
    return text


@dataclass(frozen=True, slots=True)
class Document:
    """One YAML document of a file: its body as plain data and where every part of it starts.

    ``positions`` maps the path of every mapping value (to its key's position, so a complaint
    about a field points at the field's name), every list item and the root to a position."""

    file: str
    index: int
    body: dict[str, Any]
    positions: Mapping[DocPath, Position] = field(repr=False)

    @property
    def kind(self) -> str | None:
        kind = self.body.get("kind")
        return kind if isinstance(kind, str) else None

    @property
    def api_version(self) -> str | None:
        version = self.body.get("apiVersion")
        return version if isinstance(version, str) else None

    @property
    def name(self) -> str | None:
        metadata = self.body.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        return name if isinstance(name, str) else None

    def position(self, path: DocPath) -> Position:
        """Where ``path`` starts, or where its nearest known ancestor does (for a field that
        is missing, its parent's)."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def issue(self, path: DocPath, message: str, hint: str | None = None) -> Issue:
        """An :class:`Issue` about ``path`` in this document."""
        where = self.position(path)
        return Issue(self.file, where.line, where.column, format_path(path), message, hint)


class _Refused(Exception):
    """A document that cannot be built at all; carries the issue saying why."""

    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


def _children(node: Node) -> Iterator[Node]:
    if isinstance(node, MappingNode):
        for key, value in node.value:
            yield key
            yield value
    elif isinstance(node, SequenceNode):
        yield from node.value


def _measure(root: Node) -> tuple[int, Node | None]:
    """(values after following aliases, a node containing itself or None), counted over
    distinct nodes so that an alias bomb is measured without being expanded."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        if finished:
            open_nodes.discard(id(node))
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in _children(node))
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            return 0, node
        open_nodes.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_nodes:
                return 0, child
            if id(child) not in sizes:
                stack.append((child, False))
    return sizes[id(root)], None


class _Builder:
    """Builds one document's plain data from its node graph, recording positions and the
    problems that do not stop the rest of the document from being read."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.positions: dict[DocPath, Position] = {}
        self.issues: list[Issue] = []

    def _issue(self, node: Node, path: DocPath, message: str) -> None:
        where = _position(node)
        self.issues.append(Issue(self.file, where.line, where.column, format_path(path), message))

    def build(self, node: Node, path: DocPath) -> Any:
        if len(path) > MAX_NESTING:
            where = _position(node)
            raise _Refused(Issue(self.file, where.line, where.column, format_path(path[:3]),
                                 f"nested more than {MAX_NESTING} levels deep"))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                self._issue(node, path, f"unsupported tag {node.tag!r}: use a plain list")
            items = []
            for index, item in enumerate(node.value):
                self.positions[(*path, index)] = _position(item)
                items.append(self.build(item, (*path, index)))
            return items
        return self._scalar(node, path)

    def _scalar(self, node: Node, path: DocPath) -> Any:
        tag = node.tag
        if tag in (_TAG + "str", _TAG + "timestamp", _TAG + "merge", _TAG + "value"):
            # Dates stay text (JSON has none; `${date:...}` does the date work), and a lone
            # `<<` or `=` outside a key is just text.
            return node.value
        assert isinstance(node, ScalarNode)
        if tag == _TAG + "int":
            return _SCALARS.construct_yaml_int(node)
        if tag == _TAG + "float":
            return _SCALARS.construct_yaml_float(node)
        if tag == _TAG + "bool":
            return _SCALARS.construct_yaml_bool(node)
        if tag == _TAG + "null":
            return None
        self._issue(node, path, f"unsupported tag {tag!r}: definitions use plain YAML "
                                "(mappings, lists, text, numbers, booleans, null)")
        return None

    def _pairs(self, node: MappingNode, path: DocPath) -> list[tuple[Node, Node]]:
        """The mapping's own entries, followed by those merged in with ``<<`` that the mapping
        does not set itself (earlier merge sources win over later ones, as in YAML 1.1)."""
        own: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for key, value in node.value:
            if key.tag != _TAG + "merge":
                own.append((key, value))
                continue
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if isinstance(source, MappingNode):
                    merged.extend(self._pairs(source, path))
                else:
                    self._issue(source, path, "'<<' merges mappings only: give an alias to "
                                              "a mapping (<<: *defaults) or a list of them")
        return own + merged

    def _mapping(self, node: MappingNode, path: DocPath) -> dict[str, Any]:
        if node.tag != _TAG + "map":
            self._issue(node, path, f"unsupported tag {node.tag!r}: use a plain mapping")
        own_count = sum(1 for key, _ in node.value if key.tag != _TAG + "merge")
        result: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        for number, (key_node, value_node) in enumerate(self._pairs(node, path)):
            key = self._key(key_node, path)
            if key is None:
                continue
            if key in first_seen:
                if number < own_count:
                    line = first_seen[key].start_mark.line + 1
                    self._issue(key_node, (*path, key),
                                f"duplicate key {key!r} (first at line {line}): YAML would "
                                "silently keep only the last one; remove one of them")
                continue
            first_seen[key] = key_node
            self.positions[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result

    def _key(self, node: Node, path: DocPath) -> str | None:
        if not isinstance(node, ScalarNode):
            shape = "mapping" if isinstance(node, MappingNode) else "list"
            self._issue(node, path, f"a key must be text, not a {shape}")
            return None
        value = self._scalar(node, path)
        if isinstance(value, str):
            return value
        kind = _JSON_TYPE.get(node.tag.removeprefix(_TAG), node.tag)
        self._issue(node, path, f"key {node.value!r} is read as {kind} {json.dumps(value)}, "
                                f"not text: quote it ('{node.value}')")
        return None


def _build_document(root: Node, file: str, index: int,
                    may_alias: bool) -> tuple[Document | None, list[Issue]]:
    where = _position(root)

    def refuse(message: str) -> tuple[None, list[Issue]]:
        return None, [Issue(file, where.line, where.column, "", message)]

    if not isinstance(root, MappingNode):
        if isinstance(root, ScalarNode) and root.tag == _TAG + "null" and not root.value:
            return None, []  # an empty document (`---` and nothing else) says nothing
        shape = "a list" if isinstance(root, SequenceNode) else f"the value {root.value!r}"
        return refuse(f"document {index + 1} is {shape}, not a mapping: a definition is a "
                      "mapping starting with apiVersion, kind, metadata and spec")
    if may_alias:
        size, recursive = _measure(root)
        if recursive is not None:
            line = recursive.start_mark.line + 1
            return refuse(f"document {index + 1} contains itself through an alias (anchored "
                          f"at line {line}); definitions must be finite trees")
        if size > MAX_VALUES:
            return refuse(f"document {index + 1} expands to {size:,} values once aliases are "
                          f"followed, over the limit of {MAX_VALUES:,}; refusing to build it")
    builder = _Builder(file)
    builder.positions[()] = where
    try:
        body = builder.build(root, ())
    except _Refused as refused:
        return None, [refused.issue]
    return Document(file, index, body, builder.positions), builder.issues


def _syntax_issue(error: yaml.YAMLError, text: str, file: str) -> Issue:
    if isinstance(error, yaml.reader.ReaderError):
        before = text[: error.position]
        line = before.count("\n") + 1
        column = error.position - (before.rfind("\n") + 1) + 1
        return Issue(file, line, column, "", f"unreadable character: {error.reason}; remove it "
                                             "or write it as an escape in a quoted string")
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or "invalid YAML"
        mark = error.problem_mark or error.context_mark
        message = f"YAML syntax error: {problem}"
        if error.context and error.context_mark is not None:
            message = (f"YAML syntax error {error.context} that starts at line "
                       f"{error.context_mark.line + 1}: {problem}")
            if "end of stream" in problem:
                # An unclosed quote or bracket is noticed only at the end of the file; the
                # place to fix is where it was opened.
                mark = error.context_mark
        if mark is not None:
            return Issue(file, mark.line + 1, mark.column + 1, "", message)
        return Issue(file, 0, 0, "", message)
    return Issue(file, 0, 0, "", f"YAML error: {error}")


def _parse(text: str, file: str) -> tuple[list[Document], list[Issue]]:
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        return [], [_too_large(file, size)]
    documents: list[Document] = []
    issues: list[Issue] = []
    may_alias = _ALIAS.search(text) is not None
    try:
        for index, root in enumerate(yaml.compose_all(text, Loader=_Loader)):
            document, found = _build_document(root, file, index, may_alias)
            issues.extend(found)
            if document is not None:
                documents.append(document)
    except yaml.YAMLError as error:
        issues.append(_syntax_issue(error, text, file))
    except RecursionError:
        issues.append(Issue(file, 0, 0, "", f"nested too deeply to read (limit {MAX_NESTING})"))
    return documents, issues


def _too_large(file: str, size: int) -> Issue:
    return Issue(file, 0, 0, "", f"file is {size / 2**20:.1f} MiB, over the "
                                 f"{MAX_FILE_BYTES // 2**20} MiB limit for definitions; "
                                 "split it into several files")


def _read(path: Path) -> tuple[list[Document], list[Issue]]:
    file = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return [], [_too_large(file, size)]
        data = path.read_bytes()
    except OSError as error:
        return [], [Issue(file, 0, 0, "", f"cannot read: {error.strerror or error}")]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        return [], [Issue(file, line, column, "", f"not UTF-8 text (byte "
                                                  f"0x{data[error.start]:02x}); save the file "
                                                  "as UTF-8")]
    return _parse(text, file)


def _raise_if(issues: list[Issue]) -> None:
    if issues:
        raise DefinitionError(issues)


def load_text(text: str, file: str = "<string>") -> list[Document]:
    """The documents of YAML ``text``; ``file`` names it in issues.

    Raises :class:`DefinitionError` with every problem found."""
    documents, issues = _parse(text, file)
    _raise_if(issues)
    return documents


def load_file(path: Path | str) -> list[Document]:
    """The documents of one YAML file, in order. Raises :class:`DefinitionError`."""
    documents, issues = _read(Path(path))
    _raise_if(issues)
    return documents


def load_paths(paths: Iterable[Path | str]) -> list[Document]:
    """The documents of several files and directories (every ``*.yaml``/``*.yml`` below a
    directory, sorted), in order. Raises :class:`DefinitionError` with the problems of all
    files together, so one broken file does not hide another's."""
    documents, issues = read_paths(paths)
    _raise_if(issues)
    return documents


def read_paths(paths: Iterable[Path | str]) -> tuple[list[Document], list[Issue]]:
    """What :func:`load_paths` reads, without raising: the documents that could be read and
    the problems found, for callers that report them together with later checks."""
    documents: list[Document] = []
    issues: list[Issue] = []
    for given in paths:
        path = Path(given)
        files = (sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")
                        and p.is_file())
                 if path.is_dir() else [path])
        for file in files:
            found, problems = _read(file)
            documents.extend(found)
            issues.extend(problems)
    return documents, issues
