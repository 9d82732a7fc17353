"""Tabular rendering shared by every command with ``--format``."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest

from registry.errors import UsageError
from registry.output import table, to_csv, to_json, write_atomic

ROWS = [{"name": "a", "size": 1, "nested": {"x": 1.5}}, {"name": "bb", "size": 22, "nested": {"x": None}}]


def test_table_aligns_columns():
    lines = table(ROWS, ["name", "size"]).splitlines()
    assert lines[0] == "name  size"
    assert lines[2] == "a     1"
    assert lines[3] == "bb    22"


def test_csv_flattens_nested_keys():
    rows = list(csv.DictReader(io.StringIO(to_csv(ROWS))))
    assert rows[0] == {"name": "a", "size": "1", "nested.x": "1.5"}
    assert rows[1]["nested.x"] == ""


def test_json_round_trips():
    assert json.loads(to_json(ROWS)) == ROWS


def test_write_atomic_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    write_atomic(target, "new")
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_atomic_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        write_atomic(target, 123)  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.json"]


def test_write_atomic_into_a_missing_directory_names_the_flag(tmp_path):
    target = tmp_path / "no" / "out.txt"
    with pytest.raises(UsageError) as caught:
        write_atomic(target, "x")
    assert str(caught.value) == (
        f"--output {target}: expected a file in an existing directory, but {tmp_path / 'no'} does not exist"
    )
    assert os.listdir(tmp_path) == []


def test_write_atomic_onto_a_directory_leaves_no_temp_file(tmp_path):
    with pytest.raises(UsageError) as caught:
        write_atomic(tmp_path, "x", flag="--plot")
    assert str(caught.value) == f"--plot {tmp_path}: expected a file path, found a directory"
    assert os.listdir(tmp_path) == []


def test_write_atomic_writes_bytes(tmp_path):
    write_atomic(tmp_path / "image.png", b"\x89PNG")
    assert (tmp_path / "image.png").read_bytes() == b"\x89PNG"
