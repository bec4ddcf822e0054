"""Issue 23, item 1: every field classified, and masking follows the class.

Every field of every schema carries `x-sensitivity` (public, personal, sensitive), at any depth;
the schema registry refuses to load a schema with a field that has none. What `/api/` answers,
exports and the conflicts queue mask is what the schemas class sensitive, and nothing else; the
PWA is given the same classes by scripts/generate-pwa.mjs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from server.domain import exports, masking
from server.domain.validation import SCHEMA_DIR, SchemaRegistry, shared_registry

HERE = Path(__file__).parent
DOCUMENTS = json.loads((HERE / "fixtures" / "documents.json").read_text("utf-8"))["types"]


def examples() -> list[dict[str, Any]]:
    return [doc for found in DOCUMENTS.values() for doc in found["valid"]]


def unclassify(tmp_path: Path, file: str, pointer: list[str]) -> Path:
    """A copy of schemas/ where the field at `pointer` (in `file`) lost its class."""
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    schema = json.loads((copy / file).read_text("utf-8"))
    node = schema
    for key in pointer:
        node = node[key]
    del node["x-sensitivity"]
    (copy / file).write_text(json.dumps(schema), "utf-8")
    return copy


@pytest.mark.parametrize(("file", "pointer", "named"), [
    ("household.v2.schema.json", ["properties", "special_groups"], "/special_groups"),
    ("household.v2.schema.json", ["properties", "address", "properties", "room"],
     "/address/room"),
    ("building.v1.schema.json", ["properties", "units", "items", "properties", "floors"],
     "/units/items/floors"),
    ("common.v1.schema.json", ["$defs", "id_number"], "/id_number"),
])
def test_a_field_without_a_class_is_refused(tmp_path: Path, file: str, pointer: list[str],
                                            named: str) -> None:
    with pytest.raises(ValueError, match="x-sensitivity") as refused:
        SchemaRegistry(unclassify(tmp_path, file, pointer))
    assert named in str(refused.value)


def test_the_shipped_schemas_are_all_classified() -> None:
    assert len(SchemaRegistry().validators) == len(shared_registry().validators) > 40


def sensitive_top_fields(doc: dict[str, Any]) -> set[str]:
    schema = shared_registry().validators[(doc["type"], doc["schema_version"])].schema
    return {name for name, prop in schema["properties"].items()
            if prop.get("x-sensitivity") == "sensitive"}


@pytest.mark.parametrize("doc", examples(), ids=lambda d: d.get("_id", d.get("type")))
def test_masking_hides_every_sensitive_field_and_only_those(doc: dict[str, Any]) -> None:
    shown = masking.masked(doc, unmasked=False)
    sensitive = sensitive_top_fields(doc)
    for name, value in doc.items():
        if name in sensitive:
            assert value in ("", None, []) or shown[name] != value, name
            assert json.dumps(value, ensure_ascii=False) not in json.dumps(shown[name]) \
                or len(str(value)) < 8, name
        elif name not in masking.declared_shape(doc["type"]) and not name.startswith("_rev"):
            assert shown[name] == value, name
    assert masking.masked(doc, unmasked=True) == {
        k: v for k, v in doc.items() if k not in masking.REVISION_MEMBERS}


def test_masking_reaches_nested_fields_and_keeps_partial_forms() -> None:
    unit = {"type": "property_unit", "schema_version": 1, "owners": [
        {"name": "严福根", "phone": "13905701122"}, {"name": "严小花"}]}
    assert masking.masked(unit, False)["owners"] == [
        {"name": "严福根", "phone": "139****1122"}, {"name": "严小花"}]
    person = {"type": "person", "schema_version": 2, "name": "严福根", "ethnicity": "01",
              "id_number": "33060219510604003X", "phone": "13905701122"}
    assert masking.masked(person, False) == {
        "type": "person", "schema_version": 2, "name": "严福根", "ethnicity": masking.HIDDEN,
        "id_number": "330***********003X", "phone": "139****1122"}
    screening = {"type": "screening", "temperature": 37.9, "test_result": "positive"}
    assert masking.masked(screening, False) == {
        "type": "screening", "temperature": masking.HIDDEN, "test_result": masking.HIDDEN}
    # A record of no known type: every field sensitive in any type is masked.
    assert masking.masked({"type": "??", "temperature": 37.9}, False)["temperature"] == \
        masking.HIDDEN


def test_conflict_sides_are_masked_by_the_records_class() -> None:
    fields = [{"field": "temperature", "chosen": {"rev": "2-a", "value": 37.9},
               "alternatives": [{"rev": "2-b", "value": 36.5}]},
              {"field": "screened_on", "chosen": {"rev": "2-a", "value": "2026-11-20"}}]
    shown = masking.masked_conflict_fields(fields, "screening")
    assert shown[0]["chosen"] == {"rev": "2-a", "value": masking.HIDDEN, "masked": True}
    assert shown[0]["alternatives"] == [{"rev": "2-b", "value": masking.HIDDEN, "masked": True}]
    assert shown[1] == fields[1]


def test_exports_mask_by_class() -> None:
    person = {"_id": "person:h1-1", "type": "person", "schema_version": 2, "name": "严福根",
              "id_number": "33060219510604003X", "phone": "13905701122", "sex": "1"}
    row = exports.record_row("persons", person, unmasked=False)
    assert "33060219510604003X" not in row and "13905701122" not in row
    assert "330***********003X" in row and "严福根" in row
    assert "33060219510604003X" in exports.record_row("persons", person, unmasked=True)


def test_the_pwa_is_given_the_same_classes() -> None:
    generated = HERE.parent / "pwa" / "generated" / "sensitivity.js"
    assert generated.is_file(), "run scripts/setup"
    script = (f"const m = await import({json.dumps(generated.as_uri())});"
              "process.stdout.write(JSON.stringify(m.SENSITIVE));")
    done = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True,
                          text=True, check=True, timeout=60)
    phone = json.loads(done.stdout)
    assert phone == {t: masking.declared_shape(t) for t in shared_registry().types}
    assert set(phone["person"]) >= {"id_number", "phone"}
