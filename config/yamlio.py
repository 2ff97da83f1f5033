"""Safe loading of YAML/JSON artifact files, keeping the position of every value.

PyYAML's C composer (libyaml) builds the node graph; we construct plain Python
values from it ourselves so that we can:

* report duplicate keys (``yaml.safe_load`` silently keeps the last one);
* bound the number of nodes visited, which defuses alias bombs ("billion
  laughs") because aliases are only expanded while we walk;
* remember the line/column of every key and value, so schema errors name
  ``path:line:col``.

Size, emptiness, encoding and the file's type are checked before parsing
(``config.textfile``, re-exported here with ``LoadError``).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml

from config.problems import Problem, dotted
from config.textfile import MAX_FILE_BYTES, LoadError, read_checked, read_text  # noqa: F401 - re-exported

try:  # libyaml is normally present; fall back to the pure-Python composer.
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_NODES = 100_000
MAX_DEPTH = 64

Loc = tuple[str | int, ...]


class Loaded:
    """A parsed document plus the 1-based (line, col) of every key and value path.

    Positions are only needed when something is wrong, so for documents read
    by the fast path they are computed on first use, by composing the text again.
    """

    def __init__(self, path: str, data: Any, positions: dict[Loc, tuple[int, int]] | None = None,
                 text: str | None = None):
        self.path = path
        self.data = data
        self._positions = positions
        self._text = text

    @property
    def positions(self) -> dict[Loc, tuple[int, int]]:
        if self._positions is None:
            try:
                self._positions = _compose(self._text or "", self.path).positions
            except LoadError:  # YAML 1.1 rejects a few valid JSON texts; fall back to the file
                self._positions = {(): (1, 1)}
        return self._positions

    def locate(self, loc: Sequence[str | int]) -> tuple[int, int]:
        """Return the position of ``loc`` or of its nearest ancestor that exists."""
        positions = self.positions
        key = tuple(loc)
        while key:
            pos = positions.get(key)
            if pos:
                return pos
            key = key[:-1]
        return positions.get((), (1, 1))

    def problem(self, loc: Sequence[str | int], message: str, **kw: Any) -> Problem:
        """Return a Problem anchored at ``loc`` in this file."""
        line, col = self.locate(loc)
        return Problem(self.path, line, col, dotted(loc), message, **kw)


T = TypeVar("T")


def memo_by_file(load: Callable[[Path, Any], T]) -> Callable[[Path, Any], T]:
    """Return ``load`` memoized on (absolute path, second argument, size, mtime).

    Lint, validate and plan read the same files; in one process (a local run, a
    pre-commit hook, the tests) each should be parsed once. An edited file has a
    new key, so it is re-read; a LoadError is remembered and raised again.
    ``cache_clear()`` forgets everything, as a fresh process would.
    """

    @lru_cache(maxsize=8192)
    def cached(path: str, arg: Any, size: int, mtime_ns: int) -> T | LoadError:
        try:
            return load(Path(path), arg)
        except LoadError as exc:
            return exc

    @functools.wraps(load)
    def wrapper(path: Path, arg: Any) -> T:
        try:
            st = path.stat()
        except OSError:
            return load(path, arg)  # reports the unreadable file itself
        result = cached(os.path.abspath(path), arg, st.st_size, st.st_mtime_ns)
        if isinstance(result, LoadError):
            raise LoadError(result.problems)
        return result

    wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
    return wrapper


def nesting_depth(value: Any) -> int:
    """Return how deeply ``value`` nests (a scalar is 0), without recursion (the input is untrusted)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((c, depth + 1) for c in children)
    return deepest


class _Builder:
    """Turns a composed node graph into Python values, recording positions."""

    def __init__(self, display: str):
        self.display = display
        self.positions: dict[Loc, tuple[int, int]] = {}
        self.problems: list[Problem] = []
        self.visited = 0
        self.scalars = yaml.constructor.SafeConstructor()

    def _pos(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def build(self, node: yaml.Node, loc: Loc, depth: int = 0) -> Any:
        self.visited += 1
        if self.visited > MAX_NODES:
            raise LoadError([Problem(self.display, *self._pos(node), dotted(loc),
                                     f"document expands to more than {MAX_NODES} values "
                                     "(alias bomb?)")])
        if depth > MAX_DEPTH:
            raise LoadError([Problem(self.display, *self._pos(node), dotted(loc),
                                     f"nesting deeper than {MAX_DEPTH} levels")])
        self.positions.setdefault(loc, self._pos(node))
        if node.tag not in PLAIN_TAGS:
            self.problems.append(Problem(self.display, *self._pos(node), dotted(loc), _tag_message(node.tag)))
            return None
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self.problems.append(Problem(self.display, *self._pos(key_node), dotted(loc),
                                                 "YAML merge keys ('<<') are not supported"))
                    continue
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(self.display, *self._pos(key_node), dotted(loc),
                                                 "mapping keys must be plain scalars"))
                    continue
                if key_node.tag not in PLAIN_TAGS:
                    self.problems.append(Problem(self.display, *self._pos(key_node), dotted(loc),
                                                 _tag_message(key_node.tag)))
                    continue
                key = self.scalars.construct_object(key_node)
                if not isinstance(key, str | int | float | bool) and key is not None:
                    key = str(key)
                if key in out:
                    first = self.positions.get((*loc, key), (0, 0))
                    self.problems.append(Problem(
                        self.display, *self._pos(key_node), dotted((*loc, key)),
                        f"duplicate key '{key}' (first defined at line {first[0]}); "
                        "YAML would silently keep only the last one"))
                    continue
                self.positions[(*loc, key)] = self._pos(key_node)
                out[key] = self.build(value_node, (*loc, key), depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        value = self.scalars.construct_object(node)
        # Timestamps and binary are YAML-isms that JSON-shaped artifacts never mean.
        if not isinstance(value, str | int | float | bool) and value is not None:
            value = node.value
        return value


_CORE = "tag:yaml.org,2002:"
# The tags a JSON-shaped document can carry (the resolver's implicit ones included); timestamps and
# binary are read back as their text. Anything else (``!Ref``, ``!!python/...``) is a tag promptci
# would otherwise drop or misread, so it is an error at its line.
PLAIN_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq",
                                           "timestamp", "binary"))


def _tag_message(tag: str) -> str:
    """Return the problem text for an unsupported tag, naming it as the user wrote it."""
    shown = "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag
    if shown.startswith("!!python/"):
        return (f"YAML tag '{shown}' is refused: it asks to build Python objects (never done here); "
                "write plain YAML values")
    return f"unknown YAML tag '{shown}': promptci reads plain YAML (maps, lists, strings, numbers); remove the tag"


def _syntax_problem(display: str, exc: yaml.YAMLError) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    msg = f"YAML syntax error: {what}" + (f" ({context})" if context else "")
    return Problem(display, line, col, "", msg)


class _Slow(Exception):
    """The fast path met something only the positional builder reports well."""


class _FastLoader(_Loader):
    """libyaml + a constructor that refuses duplicate keys, merges and non-JSON types."""


def _fast_mapping(loader: Any, node: yaml.MappingNode) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            raise _Slow
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise _Slow
        out[key] = loader.construct_object(value_node, deep=True)
    return out


def _refuse(loader: Any, node: yaml.Node) -> Any:
    raise _Slow


_FastLoader.add_constructor("tag:yaml.org,2002:map", _fast_mapping)
_FastLoader.add_constructor("tag:yaml.org,2002:timestamp", _refuse)
_FastLoader.add_constructor("tag:yaml.org,2002:binary", _refuse)
_FastLoader.add_constructor("tag:yaml.org,2002:set", _refuse)
_FastLoader.add_constructor("tag:yaml.org,2002:omap", _refuse)
_FastLoader.add_constructor("tag:yaml.org,2002:pairs", _refuse)


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Slow
    return out


def _expanded_size(data: Any) -> int:
    """Return the number of values ``data`` has once aliases are expanded (shared nodes counted each time)."""
    memo: dict[int, int] = {}

    def size(obj: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise _Slow
        if isinstance(obj, dict):
            children: Any = obj.values()
        elif isinstance(obj, list):
            children = obj
        else:
            return 1
        key = id(obj)
        if key not in memo:
            memo[key] = 1 + sum(size(c, depth + 1) for c in children)
            if memo[key] > MAX_NODES:
                raise _Slow
        return memo[key]

    return size(data, 0)


def _compose(text: str, display: str) -> Loaded:
    """Return the document built node by node with positions; raise LoadError on any problem."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise LoadError([_syntax_problem(display, exc)]) from exc
    except RecursionError as exc:  # the composer recurses per nesting level
        raise LoadError([Problem(display, 1, 1, "", f"nesting deeper than {MAX_DEPTH} levels")]) from exc
    if node is None:
        raise LoadError([Problem(display, 1, 1, "", "empty document")])
    builder = _Builder(display)
    data = builder.build(node, ())
    if builder.problems:
        raise LoadError(builder.problems)
    return Loaded(display, data, builder.positions, text)


def parse_text(text: str, display: str, *, is_json: bool = False) -> Loaded:
    """Return the Loaded document for ``text``; raise LoadError for any syntax problem.

    Fast path: json/libyaml straight to Python values, positions deferred. Anything
    unusual (duplicate keys, merges, YAML-only types, alias expansion past the
    limit) takes the positional builder, which reports it with a line number.
    """
    try:
        if is_json:
            try:
                data = json.loads(text, object_pairs_hook=_json_pairs)
            except json.JSONDecodeError as exc:
                raise LoadError([Problem(display, exc.lineno, exc.colno, "",
                                         f"JSON syntax error: {exc.msg}")]) from exc
            except RecursionError as exc:
                raise LoadError([Problem(display, 1, 1, "", f"JSON nesting deeper than {MAX_DEPTH} levels")]) from exc
        else:
            try:
                data = yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a SafeLoader subclass
            except yaml.constructor.ConstructorError as exc:
                raise _Slow from exc
            except yaml.YAMLError as exc:
                raise LoadError([_syntax_problem(display, exc)]) from exc
            except RecursionError as exc:
                raise _Slow from exc
        if data is None:
            raise LoadError([Problem(display, 1, 1, "", "empty document")])
        if not is_json and "&" in text:  # only anchors can make a document expand
            _expanded_size(data)
        elif nesting_depth(data) > MAX_DEPTH:
            raise _Slow  # the positional builder reports where
        return Loaded(display, data, None, text)
    except _Slow:
        return _compose(text, display)


def load_file(path: Path, display: str | None = None, *, max_bytes: int = MAX_FILE_BYTES) -> Loaded:
    """Return the Loaded document at ``path``; raise LoadError naming file/line/field otherwise."""
    shown = display or str(path)
    text = read_text(path, shown, max_bytes)
    return parse_text(text, shown, is_json=is_json_path(path))


def is_json_path(path: Path) -> bool:
    """Return True for files parsed as JSON (strictly), not YAML."""
    return path.suffix.lower() == ".json"
