"""The safe YAML loader and the generic JSON Schema reporting (registry.loader)."""

from __future__ import annotations

import json
import time

import pytest

from registry.errors import ConfigError, Location
from registry.loader import MAX_ALIAS_NODES, load_yaml_document, quick_valid, schema_errors


def load(text: str, name: str = "t.yaml"):
    return load_yaml_document(name, text=text)


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return info.value.problems


def test_plain_document_and_key_locations():
    doc = load("version: 1\nmodels:\n  org/a:\n    device_configs:\n      4:\n        env_vars: {A: 1}\n")
    assert doc.data == {"version": 1, "models": {"org/a": {"device_configs": {4: {"env_vars": {"A": 1}}}}}}
    # Positions are of the key, 1-based: "      4:" is line 5, column 7.
    assert doc.location(("models", "org/a", "device_configs", 4)) == Location("t.yaml", 5, 7)
    assert doc.location(("models", "org/a", "device_configs", 4, "env_vars", "A")) == Location(
        "t.yaml", 6, 20
    )
    # A path that leaves the document stops at its nearest written ancestor.
    assert doc.location(("models", "org/a", "nope", "deeper")) == Location("t.yaml", 3, 3)


def test_sequence_items_are_located():
    doc = load("items:\n  - a\n  - {b: 2}\n")
    assert doc.location(("items", 1, "b")) == Location("t.yaml", 3, 6)


def test_empty_document_is_none():
    doc = load("")
    assert doc.data is None
    assert doc.location(("x",)) == Location("t.yaml")


def test_duplicate_keys_report_both_lines():
    problems = problems_of("a: 1\nb: 2\na: 3\n")
    assert problems == [
        "t.yaml:3:1: duplicate key 'a' (first defined on line 1); YAML would silently keep only the last one"
    ]


def test_all_problems_are_collected():
    problems = problems_of("a: 1\na: 2\nnested:\n  x: 1\n  x: 2\nbad: !!python/object:os.system {}\n")
    assert len(problems) == 3
    assert problems[0].startswith("t.yaml:2:1: duplicate key 'a'")
    assert problems[1].startswith("t.yaml:5:3: duplicate key 'x' (first defined on line 4)")
    assert "t.yaml:6:6: tag 'tag:yaml.org,2002:python/object:os.system' is not allowed" in problems[2]


@pytest.mark.parametrize(
    "text",
    [
        "x: !!python/object/apply:os.system ['echo hi']\n",
        "x: !!python/name:os.system\n",
        "x: !custom 3\n",
        "x: !!set {a, b}\n",
        "x: !!binary aGVsbG8=\n",
    ],
)
def test_non_standard_tags_are_refused(text):
    (problem,) = problems_of(text)
    assert problem.startswith("t.yaml:1:4: tag ")
    assert "is not allowed" in problem


def test_standard_explicit_tags_are_fine():
    assert load("a: !!str 4\nb: !!int '5'\nc: !!float 1\n").data == {"a": "4", "b": 5, "c": 1.0}


def test_merge_keys_and_anchors():
    text = "base: &b {p: 1, q: 2}\nother: &o {r: 5, q: 9}\nm:\n  <<: [*b, *o]\n  q: 3\n"
    doc = load(text)
    # Explicit keys win; among merge sources the earlier one wins.
    assert doc.data["m"] == {"p": 1, "q": 3, "r": 5}
    # A merged key is located where it is written: in the anchored mapping.
    assert doc.location(("m", "p")) == Location("t.yaml", 1, 11)
    assert doc.location(("m", "q")) == Location("t.yaml", 5, 3)


def test_merge_of_a_scalar_is_an_error():
    (problem,) = problems_of("a: &a 3\nm:\n  <<: *a\n")
    assert problem == "t.yaml:1:4: '<<' expects a mapping or a list of mappings"


def test_duplicate_key_next_to_merge_is_still_caught():
    problems = problems_of("b: &b {p: 1}\nm:\n  <<: *b\n  q: 1\n  q: 2\n")
    assert problems[0].startswith("t.yaml:5:3: duplicate key 'q' (first defined on line 4)")


def test_alias_bomb_is_refused_quickly():
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    (problem,) = problems_of("\n".join(lines) + "\n")
    elapsed = time.perf_counter() - start
    assert f"aliases expand past {MAX_ALIAS_NODES:,} nodes" in problem
    assert problem.startswith("t.yaml:")
    assert elapsed < 2.0, elapsed  # 9**9 nodes would take minutes and gigabytes


def test_moderate_aliases_are_fine():
    doc = load("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n")
    assert doc.data["b"] == [[1, 2, 3]] * 3


def test_recursive_alias_is_refused():
    (problem,) = problems_of("a: &a [1, *a]\n")
    assert "recursive alias" in problem


def test_invalid_yaml_names_line_and_column():
    (problem,) = problems_of("a: [1, 2\nb: 3\n")
    assert problem.startswith("t.yaml:2:")
    assert "invalid YAML" in problem


def test_missing_unreadable_and_binary_files(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_yaml_document(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="expected a YAML file, found a directory"):
        load_yaml_document(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="expected UTF-8 text, found an undecodable byte at offset 3"):
        load_yaml_document(binary)


def test_non_scalar_keys_are_refused():
    (problem,) = problems_of("? [a, b]\n: 1\n")
    assert problem == "t.yaml:1:3: expected a plain key, found a list"


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "size": {"type": "integer", "minimum": 1},
        "mode": {"enum": ["block", "layer"]},
        "blocks": {
            "oneOf": [{"type": "integer"}, {"type": "object"}],
            "x-expected": "an integer or a version map",
        },
        "sizes": {"type": "object", "propertyNames": {"pattern": "^[0-9]+$"}, "additionalProperties": True},
    },
}


def test_schema_errors_name_file_line_key_path_expected_and_found():
    doc = load("name: x\nsize: abc\nmode: blok\nblocks: [1]\nsise: 3\nsizes: {4: a, x: b}\n")
    assert schema_errors(doc, SCHEMA) == [
        "t.yaml:2:1: size: expected an integer, found 'abc'",
        "t.yaml:3:1: mode: expected one of 'block', 'layer', found 'blok'",
        "t.yaml:4:1: blocks: expected an integer or a version map, found a list of 1 item",
        "t.yaml:5:1: sise: unknown key 'sise'; did you mean 'size'?",
        "t.yaml:6:15: sizes.x: unexpected key: expected a string matching ^[0-9]+$, found 'x'",
    ]


def test_schema_missing_required_key_and_root_type():
    assert schema_errors(load("size: 2\n"), SCHEMA) == ["t.yaml:1:1: missing required key 'name'"]
    assert schema_errors(load("- 1\n"), SCHEMA) == ["t.yaml:1:1: expected a mapping, found a list of 1 item"]


def test_schema_errors_can_validate_a_subtree():
    doc = load("outer:\n  inner:\n    name: 3\n")
    assert schema_errors(doc, SCHEMA, root=("outer", "inner")) == [
        "t.yaml:3:5: outer.inner.name: expected a string, found 3"
    ]


@pytest.mark.parametrize(
    "instance",
    [
        {"name": "a"},
        {"name": "a", "size": 3, "mode": "layer", "blocks": {"x": 1}, "sizes": {"4": 1}},
        {"name": ""},
        {"name": "a", "size": 0},
        {"name": "a", "size": True},
        {"name": "a", "size": 2.0},
        {"name": "a", "blocks": True},
        {"name": "a", "extra": 1},
        {"size": 1},
        {"name": "a", "sizes": {"x": 1}},
    ],
)
def test_quick_check_agrees_with_jsonschema(instance):
    from jsonschema import Draft202012Validator

    expected = Draft202012Validator(SCHEMA).is_valid(json.loads(json.dumps(instance)))
    assert quick_valid(instance, SCHEMA) == expected


def test_quick_check_defers_on_unknown_keywords():
    assert quick_valid({"a": 1}, {"type": "object", "dependentRequired": {"a": ["b"]}}) is False


def test_a_not_rule_is_explained_by_the_enclosing_x_expected():
    schema = {
        "$defs": {
            "runtime": {
                "type": "object",
                "if": {"properties": {"cb": {"const": True}}},
                "then": {"not": {"required": ["warmup"]}, "x-expected": "cb: true without warmup"},
            }
        },
        "type": "array",
        "items": {"$ref": "#/$defs/runtime"},
    }
    doc = load("- {cb: true, warmup: 1}\n- 7\n")
    assert schema_errors(doc, schema) == [
        "t.yaml:1:3: 0: expected cb: true without warmup, found key 'warmup'",
        "t.yaml:2:3: 1: expected a mapping, found 7",
        "t.yaml:2:3: 1: expected cb: true without warmup, found 7",
    ]
