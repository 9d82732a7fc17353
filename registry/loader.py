"""Safe YAML loading that remembers where every key was written.

PyYAML's own loaders silently keep the last of two duplicate keys (a classic
lost-configuration bug), construct arbitrary objects from tags unless told not
to, and expand aliases without bound (billion laughs). This loader composes the
node tree with libyaml when available, then builds plain Python data itself so it
can refuse all three, honour ``<<`` merge keys, and answer "where is
``models.x.device_configs.4``?" for error messages long after loading.

Nothing here is registry-specific: any YAML file with a JSON Schema can use
:func:`load_yaml_document` and :func:`schema_errors`.
"""

from __future__ import annotations

import difflib
import gc
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from registry.errors import ConfigError, Location, UsageError, format_key_path

_TAG = "tag:yaml.org,2002:"
STR, SEQ, MAP, MERGE, INT = (_TAG + name for name in ("str", "seq", "map", "merge", "int"))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's composer with a memoized implicit-tag resolver.

    Even the C loader resolves every plain scalar's tag in Python with a chain of
    regular expressions, about half its time on a large registry; configuration
    files repeat the same keys and values, so the answer is remembered.
    """

    _tags: ClassVar[dict[str, str]] = {}

    def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
        if kind is not ScalarNode:
            return SEQ if kind is SequenceNode else MAP
        if not implicit[0]:
            return STR
        tag = self._tags.get(value)
        if tag is None:
            tag = super().resolve(kind, value, implicit)
            if len(self._tags) < 100_000:
                self._tags[value] = tag
        return tag


# Aliases may re-use a subtree; past this many re-used nodes the document is
# refused (a billion-laughs document would otherwise exhaust memory).
MAX_ALIAS_NODES = 1_000_000

_SCALAR_TAGS = {_TAG + name for name in ("null", "bool", "int", "float", "timestamp")}
_scalar_constructor = yaml.constructor.SafeConstructor()


@dataclass
class YamlDocument:
    """Plain data from a YAML file plus the node tree to locate any key path in it."""

    file: str
    data: Any
    root: Node | None = field(default=None, repr=False)
    _key_index: dict[int, dict[str, tuple[Node, Node]]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def location(self, key_path: tuple[Any, ...] | list[Any]) -> Location:
        """The position of the deepest key of ``key_path`` found in the file.

        A path that leaves the document (a key inherited from elsewhere, a
        missing key) stops at its nearest written ancestor, which is where a
        fix would go.
        """
        node = self.root
        if node is None:
            return Location(self.file)
        mark = node.start_mark
        for key in key_path:
            if isinstance(node, MappingNode):
                found = self._find_key(node, key)
                if found is None:
                    break
                key_node, node = found
                mark = key_node.start_mark
            elif isinstance(node, SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
                node = node.value[key]
                mark = node.start_mark
            else:
                break
        return Location(self.file, mark.line + 1, mark.column + 1)

    def _find_key(self, node: MappingNode, key: Any) -> tuple[Node, Node] | None:
        """Explicit keys first, then ``<<`` merge sources (as YAML resolves them).

        Each mapping's keys are indexed on first use, so locating every entry of
        a 10,000-model file stays linear.
        """
        index = self._key_index.get(id(node))
        if index is None:
            index = {}
            for key_node, value_node in node.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != MERGE:
                    index.setdefault(str(_scalar_value(key_node)), (key_node, value_node))
            self._key_index[id(node)] = index
        found = index.get(str(key))
        if found is not None:
            return found
        for key_node, source in node.value:
            if key_node.tag != MERGE:
                continue
            for mapping in source.value if isinstance(source, SequenceNode) else [source]:
                if isinstance(mapping, MappingNode):
                    found = self._find_key(mapping, key)
                    if found is not None:
                        return found
        return None

    def at(self, key_path: tuple[Any, ...] | list[Any], message: str) -> str:
        """One problem line: ``file:line:col: key.path: message``."""
        prefix = str(self.location(key_path))
        if key_path:
            prefix += ": " + format_key_path(tuple(key_path))
        return f"{prefix}: {message}"


def _scalar_value(node: ScalarNode) -> Any:
    if node.tag == STR:
        return node.value
    if node.tag in _SCALAR_TAGS:
        return _scalar_constructor.yaml_constructors[node.tag](_scalar_constructor, node)
    return node.value


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building large acyclic data.

    Loading a 10,000-model file allocates a few hundred thousand nodes, marks
    and containers, none of them in reference cycles; every collection the
    allocations trigger re-walks all of them, which more than doubles the load
    time. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_yaml_document(path: str | Path, *, text: str | None = None) -> YamlDocument:
    """Load one YAML document safely; every problem found is raised as one :class:`ConfigError`.

    ``text`` lets callers validate content that is not (yet) a file; ``path``
    then only names it in messages. An empty document loads as ``None``.
    """
    name = str(path)
    if text is None:
        text = _read(file_path(path))
    with gc_paused():
        return _load(name, text)


def _load(name: str, text: str) -> YamlDocument:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        raise ConfigError([f"{where}: invalid YAML: {error.problem or error.context}"]) from error
    except yaml.YAMLError as error:
        raise ConfigError([f"{name}: invalid YAML: {error}"]) from error
    if root is None:
        return YamlDocument(name, None, None)
    builder = _Builder(name)
    try:
        data = builder.build(root)
    except RecursionError:
        raise ConfigError([f"{name}: the document is nested too deeply to load"]) from None
    if builder.problems:
        raise ConfigError(builder.problems)
    return YamlDocument(name, data, root)


def file_path(value: Any, name: str = "path") -> Path:
    """``value`` as a Path; anything else (a number, bytes, None) is named as the caller's argument.

    Library callers pass paths too, and ``Path(42)`` would surface as a bare
    TypeError from deep inside pathlib.
    """
    if isinstance(value, str) or (isinstance(value, os.PathLike) and isinstance(os.fspath(value), str)):
        return Path(value)
    raise UsageError(f"{name}: expected a file path (str or os.PathLike), found {value!r}")


def _read(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: expected a YAML file, found a directory"]) from None
    except OSError as error:
        raise ConfigError([f"{path}: cannot read it: {error.strerror or error}"]) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            [f"{path}: expected UTF-8 text, found an undecodable byte at offset {error.start}"]
        ) from None


class _AliasBomb(Exception):
    pass


class _Builder:
    """Builds plain data from a node tree, collecting every problem instead of stopping at the first."""

    def __init__(self, name: str):
        self.name = name
        self.problems: list[str] = []
        self._built: set[int] = set()
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0

    def build(self, root: Node) -> Any:
        try:
            return self._node(root, False)
        except _AliasBomb as bomb:
            self.problems = [str(bomb)]
            return None

    def _where(self, node: Node) -> str:
        return f"{self.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"

    def _node(self, node: Node, counted: bool) -> Any:
        cls = node.__class__
        if cls is ScalarNode:
            tag = node.tag
            if tag == STR:
                return node.value
            value = node.value
            if tag == INT and value.isdigit() and (value[0] != "0" or value == "0"):
                return int(value)  # the common case; octal, hex, signs and "_" go the long way
            if tag in _SCALAR_TAGS:
                try:
                    return _scalar_constructor.yaml_constructors[tag](_scalar_constructor, node)
                except (ValueError, yaml.constructor.ConstructorError):
                    self.problems.append(
                        f"{self._where(node)}: cannot read {node.value!r} as {tag[len(_TAG) :]}"
                    )
                    return None
            self._bad_tag(node)
            return None
        if not counted:
            ident = id(node)
            if ident in self._built:  # an alias: its whole subtree is built again
                self._alias_nodes += self._size(node, set())
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise _AliasBomb(
                        f"{self._where(node)}: aliases expand past {MAX_ALIAS_NODES:,} nodes; "
                        "refusing the document (write the repeated content out, or use fewer nested aliases)"
                    )
                counted = True
            else:
                self._built.add(ident)
        if cls is SequenceNode:
            if node.tag != SEQ:
                self._bad_tag(node)
            return [self._node(item, counted) for item in node.value]
        if cls is MappingNode:
            if node.tag != MAP:
                self._bad_tag(node)
            return self._mapping(node, counted)
        self._bad_tag(node)
        return None

    def _size(self, node: Node, active: set[int]) -> int:
        """Nodes in the fully expanded subtree, memoized so that nested aliases cost nothing."""
        ident = id(node)
        if ident in self._sizes:
            return self._sizes[ident]
        if ident in active:
            raise _AliasBomb(
                f"{self._where(node)}: a recursive alias (an anchor used inside itself) is not allowed"
            )
        if isinstance(node, ScalarNode):
            return 1
        active.add(ident)
        children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
        size = 1 + sum(self._size(child, active) for child in children)
        active.discard(ident)
        self._sizes[ident] = size
        return size

    def _mapping(self, node: MappingNode, counted: bool) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        merged: list[dict[Any, Any]] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                merged.extend(self._merge_sources(value_node, counted))
                continue
            if not isinstance(key_node, ScalarNode):
                self.problems.append(
                    f"{self._where(key_node)}: expected a plain key, found a {_kind(key_node)}"
                )
                continue
            key = self._node(key_node, counted)
            try:
                hash(key)
            except TypeError:
                self.problems.append(f"{self._where(key_node)}: expected a plain key, found {key!r}")
                continue
            line = key_node.start_mark.line + 1
            if key in first_line:
                self.problems.append(
                    f"{self._where(key_node)}: duplicate key {key!r} (first defined on line "
                    f"{first_line[key]}); YAML would silently keep only the last one"
                )
            else:
                first_line[key] = line
            result[key] = self._node(value_node, counted)
        if merged:
            # Explicit keys win over merged ones; earlier merge sources win over later ones.
            base: dict[Any, Any] = {}
            for source in reversed(merged):
                base.update(source)
            base.update(result)
            return base
        return result

    def _merge_sources(self, node: Node, counted: bool) -> list[dict[Any, Any]]:
        nodes = node.value if isinstance(node, SequenceNode) else [node]
        sources = []
        for item in nodes:
            if not isinstance(item, MappingNode):
                self.problems.append(f"{self._where(item)}: '<<' expects a mapping or a list of mappings")
                continue
            sources.append(self._node(item, counted))
        return sources

    def _bad_tag(self, node: Node) -> None:
        self.problems.append(
            f"{self._where(node)}: tag {node.tag!r} is not allowed; only plain YAML (mappings, lists, "
            "strings, numbers, booleans, null) is loaded"
        )


def _kind(node: Node) -> str:
    return {MappingNode: "mapping", SequenceNode: "list"}.get(type(node), "scalar")


# --- JSON Schema -----------------------------------------------------------------------------------------


def schema_errors(
    document: YamlDocument, schema: Mapping[str, Any], *, root: tuple[Any, ...] = ()
) -> list[str]:
    """Every JSON Schema (draft 2020-12) violation of ``document`` as ``file:line:col: key.path: ...``.

    ``root`` validates only the subtree at that key path (its messages still
    carry full paths). A quick structural check runs first; jsonschema, which is
    much slower, only runs to explain a document that failed it.
    """
    instance = document.data
    for key in root:
        instance = instance[key]
    if quick_valid(instance, schema):
        return []
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems: list[tuple[Location, str]] = []
    for error in validator.iter_errors(_jsonable(instance)):
        for path, message in _describe(error, _enclosing_expected(schema, error)):
            full = (*root, *path)
            problems.append((document.location(full), document.at(full, message)))
    problems.sort(key=lambda item: (item[0].line or 0, item[0].column or 0))
    return list(dict.fromkeys(text for _, text in problems))


def _jsonable(value: Any) -> Any:
    """Mapping keys as strings: JSON Schema only knows string keys (``4:`` is written as an int key)."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _enclosing_expected(schema: Mapping[str, Any], error: Any) -> str | None:
    """The ``x-expected`` nearest above the failing keyword, following ``$ref``s from the root.

    A rule written as ``not: {required: [...]}`` inside a branch has no words of
    its own; the branch's ``x-expected`` says what the user should write instead.
    """
    node: Any = schema
    found = None
    try:
        for key in error.absolute_schema_path:
            # jsonschema leaves ``$ref`` out of the path: step through it when the key is not here.
            while isinstance(node, Mapping) and key not in node and "$ref" in node:
                found = node.get("x-expected") or found
                node = _resolve_ref(schema, node["$ref"])
            found = (node.get("x-expected") if isinstance(node, Mapping) else None) or found
            node = node[key]
    except (KeyError, IndexError, TypeError, _Unsupported):
        pass
    return None if found is None else str(found)


def _resolve_ref(schema: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise _Unsupported(ref)
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target[part]
    return target


def _describe(error: Any, enclosing: str | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """Turn one jsonschema error into (key path, "expected ..., found ...") pairs."""
    path = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in error.absolute_path)
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if "propertyNames" in error.relative_schema_path:
        expected = schema.get("x-expected") or _expected(error)
        return [((*path, error.instance), f"unexpected key: expected {expected}, found {error.instance!r}")]
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        allowed = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        out = []
        for key in error.instance:
            if key in allowed or any(re.search(p, str(key)) for p in patterns):
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(allowed)}"
            out.append(((*path, key), f"unknown key {key!r}{hint}"))
        return out
    if error.validator == "required":
        missing = re.match(r"'([^']*)'", error.message)
        return [(path, f"missing required key {missing.group(1) if missing else error.message!r}")]
    if error.validator == "not" and enclosing:
        banned = error.validator_value.get("required") if isinstance(error.validator_value, Mapping) else None
        present = banned and isinstance(error.instance, Mapping) and all(k in error.instance for k in banned)
        found = f"key {', '.join(map(repr, banned))}" if present else _found(error.instance)
        return [(path, f"expected {enclosing}, found {found}")]
    return [(path, f"expected {_expected(error)}, found {_found(error.instance)}")]


_TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


def _expected(error: Any) -> str:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if schema.get("x-expected"):
        return str(schema["x-expected"])
    value = error.validator_value
    kind = error.validator
    if kind == "type":
        types = value if isinstance(value, list) else [value]
        return " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    if kind == "enum":
        return "one of " + ", ".join(repr(v) for v in value)
    if kind == "const":
        return repr(value)
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[kind]
        return f"a number {sign} {value}"
    if kind == "minItems":
        return f"at least {value} item{'s' if value != 1 else ''}"
    if kind == "maxItems":
        return f"at most {value} item{'s' if value != 1 else ''}"
    if kind == "minLength":
        return "a non-empty string" if value == 1 else f"a string of at least {value} characters"
    if kind == "pattern":
        return f"a string matching {value}"
    if kind in ("oneOf", "anyOf") and error.context:
        from jsonschema.exceptions import best_match

        return _expected(best_match(error.context))
    return error.message


def _found(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return f"a list of {len(value)} item{'s' if len(value) != 1 else ''}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- quick validation --------------------------------------------------------------------------------------

_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "x-expected", "$defs"}
)


class _Unsupported(Exception):
    """A keyword the quick check does not know: defer to jsonschema."""


def quick_valid(instance: Any, schema: Mapping[str, Any]) -> bool:
    """True only when ``instance`` certainly satisfies ``schema``.

    Handles the subset of JSON Schema that configuration schemas use, about
    50x faster than jsonschema; anything it does not know answers False, which
    merely sends the document through jsonschema.
    """
    try:
        return _check(instance, schema, schema)
    except (_Unsupported, KeyError, TypeError, re.error):
        return False


def _is_type(value: Any, name: str) -> bool:
    if name == "string":
        return isinstance(value, str)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if name == "number":
        return isinstance(value, (int, float))
    raise _Unsupported(name)


def _check(value: Any, schema: Any, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    for keyword, arg in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if not _KEYWORDS.get(keyword, _unsupported)(value, arg, schema, root):
            return False
    return True


def _unsupported(value: Any, arg: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    raise _Unsupported


def _k_type(value, arg, schema, root):
    return any(_is_type(value, t) for t in arg) if isinstance(arg, list) else _is_type(value, arg)


def _k_properties(value, arg, schema, root):
    if not isinstance(value, dict):
        return True
    return all(_check(value[k], sub, root) for k, sub in arg.items() if k in value)


def _k_pattern_properties(value, arg, schema, root):
    if not isinstance(value, dict):
        return True
    return all(
        _check(v, sub, root)
        for pattern, sub in arg.items()
        for k, v in value.items()
        if re.search(pattern, str(k))
    )


def _k_additional(value, arg, schema, root):
    if not isinstance(value, dict):
        return True
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for k, v in value.items():
        if k in props or (patterns and any(re.search(p, str(k)) for p in patterns)):
            continue
        if not _check(v, arg, root):
            return False
    return True


def _k_property_names(value, arg, schema, root):
    return not isinstance(value, dict) or all(_check(str(k), arg, root) for k in value)


def _k_required(value, arg, schema, root):
    return not isinstance(value, dict) or all(k in value for k in arg)


def _k_items(value, arg, schema, root):
    if not isinstance(value, list):
        return True
    start = len(schema.get("prefixItems", ()))
    return all(_check(v, arg, root) for v in value[start:])


def _k_prefix_items(value, arg, schema, root):
    return not isinstance(value, list) or all(_check(v, sub, root) for v, sub in zip(value, arg))


def _k_min_items(value, arg, schema, root):
    return not isinstance(value, list) or len(value) >= arg


def _k_max_items(value, arg, schema, root):
    return not isinstance(value, list) or len(value) <= arg


def _k_min_properties(value, arg, schema, root):
    return not isinstance(value, dict) or len(value) >= arg


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _k_minimum(value, arg, schema, root):
    return not _number(value) or value >= arg


def _k_maximum(value, arg, schema, root):
    return not _number(value) or value <= arg


def _k_exclusive_minimum(value, arg, schema, root):
    return not _number(value) or value > arg


def _k_min_length(value, arg, schema, root):
    return not isinstance(value, str) or len(value) >= arg


def _k_pattern(value, arg, schema, root):
    return not isinstance(value, str) or re.search(arg, value) is not None


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _k_enum(value, arg, schema, root):
    return any(_same(value, option) for option in arg)


def _k_const(value, arg, schema, root):
    return _same(value, arg)


def _k_if(value, arg, schema, root):
    branch = "then" if _check(value, arg, root) else "else"
    return branch not in schema or _check(value, schema[branch], root)


def _ignored(value, arg, schema, root):
    return True  # ``then`` / ``else`` are evaluated by ``if``


# (id(root schema), ref) -> (root schema, target); holding the root keeps its id from being reused.
_ref_targets: dict[tuple[int, str], tuple[Any, Any]] = {}


def _k_ref(value, arg, schema, root):
    cached = _ref_targets.get((id(root), arg))
    if cached is None:
        if not arg.startswith("#/"):
            raise _Unsupported(arg)
        target = root
        for part in arg[2:].split("/"):
            target = target[part]
        cached = _ref_targets[(id(root), arg)] = (root, target)
    return _check(value, cached[1], root)


def _k_one_of(value, arg, schema, root):
    return sum(1 for sub in arg if _check(value, sub, root)) == 1


def _k_any_of(value, arg, schema, root):
    return any(_check(value, sub, root) for sub in arg)


def _k_all_of(value, arg, schema, root):
    return all(_check(value, sub, root) for sub in arg)


def _k_not(value, arg, schema, root):
    return not _check(value, arg, root)


_KEYWORDS = {
    "type": _k_type,
    "properties": _k_properties,
    "patternProperties": _k_pattern_properties,
    "additionalProperties": _k_additional,
    "propertyNames": _k_property_names,
    "required": _k_required,
    "items": _k_items,
    "prefixItems": _k_prefix_items,
    "minItems": _k_min_items,
    "maxItems": _k_max_items,
    "minProperties": _k_min_properties,
    "minimum": _k_minimum,
    "maximum": _k_maximum,
    "exclusiveMinimum": _k_exclusive_minimum,
    "minLength": _k_min_length,
    "pattern": _k_pattern,
    "enum": _k_enum,
    "const": _k_const,
    "$ref": _k_ref,
    "oneOf": _k_one_of,
    "anyOf": _k_any_of,
    "allOf": _k_all_of,
    "not": _k_not,
    "if": _k_if,
    "then": _ignored,
    "else": _ignored,
}
