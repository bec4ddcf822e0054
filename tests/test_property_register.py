"""Importing the property register (不动产登记簿): units, registered areas in whole cm², owners.
Bad rows of every class are refused with their row number and a reason into the errors file;
a dry run writes nothing; a re-import changes nothing; a changed area updates its unit."""

from __future__ import annotations

import csv
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from conftest import City

from server.admin import property_register
from server.admin.registry_import import ImportError_
from server.domain import fees, votes
from server.domain.scope import DIRECTORY_DB, VOTES_DB

HEADERS = list(property_register.TEMPLATE)
WANG, LI = "330102198001011002", "33010219800101107X"  # valid check characters


def new_compound(city: City) -> str:
    code = f"c{secrets.token_hex(5)}"
    city.couch[DIRECTORY_DB].save({"_id": f"compound:{code}", "type": "compound",
                                   "schema_version": 1, "code": code, "name": "荷花一区",
                                   "community": "330802001001"})
    return code


def row(compound: str, n: int, **changes: str) -> dict[str, str]:
    values = {"小区编码": compound, "幢": "3", "单元": "2", "室": f"{100 + n}",
              "专有部分面积": "89.5", "面积来源": "不动产登记", "产权人": "王芳、李强",
              "产权人手机": "13905700001、13905700002", "建设单位持有": "否"}
    values.update(changes)
    return values


def write_csv(path: Path, rows: list[dict[str, str]], headers: list[str] = HEADERS) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(headers)
        writer.writerows([values.get(h, "") for h in headers] for values in rows)
    return path


def units(city: City, compound: str) -> dict[str, dict[str, Any]]:
    prefix = f"property_unit:{compound}:"
    return {r.id: r.doc for r in city.couch[VOTES_DB].view(
        "_all_docs", startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)}


def bad_rows(compound: str) -> list[tuple[dict[str, str], str]]:
    n = iter(range(500, 600))
    return [
        (row(compound, 1), "twice"),
        (row("nosuch", next(n)), "unknown compound"),
        (row("Bad Compound", next(n)), "Compound code"),
        (row(compound, next(n), 幢=""), "Building"),
        (row(compound, next(n), 室="../../etc"), "Room"),
        (row(compound, next(n), 室="1\x00"), "U+0000"),
        (row(compound, next(n), 产权人="王\u200b芳"), "U+200B"),
        (row(compound, next(n), 产权人="王\u202e芳"), "U+202E"),
        (row(compound, next(n), 专有部分面积=""), "Exclusive area"),
        (row(compound, next(n), 专有部分面积="八十"), "Exclusive area"),
        (row(compound, next(n), 专有部分面积="89.50001"), "four decimals"),
        (row(compound, next(n), 专有部分面积="-3"), "Exclusive area"),
        (row(compound, next(n), 专有部分面积="NaN"), "Exclusive area"),
        (row(compound, next(n), 专有部分面积="1e12"), "Exclusive area"),
        (row(compound, next(n), 面积来源="听说"), "Area from"),
        (row(compound, next(n), 建设单位持有="也许"), "developer"),
        (row(compound, next(n), 产权人="", 产权人手机=""), "has owners"),
        (row(compound, next(n), 产权人手机="13905700001、13905700001"), "twice"),
        (row(compound, next(n), 产权人="王芳", 产权人手机="13905700001、13905700002"),
         "more owners' phones"),
        (row(compound, next(n), 产权人手机="12345"), "Phone"),
        (row(compound, next(n), 产权人="王" * 51, 产权人手机=""), "Name"),
        (row(compound, next(n), 产权人="、".join(["王芳"] * 21)), "Owners"),
        (row(compound, next(n), 室="x" * 300), "at most 200"),
        (row(compound, next(n), 产权人身份证号="330102198001011003"), "check character"),
        (row(compound, next(n), 产权人身份证号="3301021980010110０2x"), "ID number 1"),
        (row(compound, next(n), 产权人身份证号=f"{WANG}、{LI}、330102198001012009"),
         "more owners' ID numbers"),
        (row(compound, next(n), 产权人身份证号=f"{WANG}、{WANG.lower()}"), "twice"),
        (row(compound, next(n), 产权人身份证号="=cmd|' /C calc'!A0"), "ID number 1"),
    ]


def test_bad_rows_refused_good_rows_written_once(city: City, tmp_path: Path) -> None:
    compound = new_compound(city)
    good = [row(compound, i) for i in range(1, 11)]
    good.append(row(compound, 11, 产权人="", 产权人手机="", 建设单位持有="是"))  # unsold
    good.append(row(compound, 12, 专有部分面积="120", 面积来源="实测", 产权人="赵六",
                       产权人手机=""))
    bad = bad_rows(compound)
    path = write_csv(tmp_path / "register.csv", good + [r for r, _ in bad])
    dry = property_register.import_units(city.couch, path, dry_run=True)
    assert (dry.created, dry.refused) == (12, len(bad)) and units(city, compound) == {}
    summary = property_register.import_units(city.couch, path)
    assert (summary.created, summary.refused, summary.updated) == (12, len(bad), 0)
    stored = units(city, compound)
    first = stored[f"property_unit:{compound}:3-2-101"]
    assert first["area_cm2"] == 895_000 and first["area_source"] == "register"
    assert first["owners"] == [{"name": "王芳", "phone": "13905700001"},
                               {"name": "李强", "phone": "13905700002"}]
    assert stored[f"property_unit:{compound}:3-2-111"]["developer_held"] is True
    assert stored[f"property_unit:{compound}:3-2-112"]["owners"] == [{"name": "赵六"}]
    with (tmp_path / "register.errors.csv").open(encoding="utf-8-sig") as errors_file:
        refused = list(csv.reader(errors_file))[1:]
    assert [int(r[0]) for r in refused] == list(range(14, 14 + len(bad)))
    for line, (_, word) in zip(refused, bad, strict=True):
        assert word in line[-1], (line, word)
    again = property_register.import_units(city.couch, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 12)
    assert {k: v["_rev"] for k, v in units(city, compound).items()} == {
        k: v["_rev"] for k, v in stored.items()}


def test_a_corrected_area_updates_its_unit(city: City, tmp_path: Path) -> None:
    compound = new_compound(city)
    property_register.import_units(city.couch, write_csv(tmp_path / "a.csv", [row(compound, 1)]))
    changed = write_csv(tmp_path / "b.csv", [row(compound, 1, 专有部分面积="89.4999")])
    summary = property_register.import_units(city.couch, changed)
    assert (summary.updated, summary.refused) == (1, 0)
    assert units(city, compound)[f"property_unit:{compound}:3-2-101"]["area_cm2"] == 894_999


def test_the_import_keeps_each_compounds_area_index(city: City, tmp_path: Path) -> None:
    """Bill generation reads a compound's area index, not its units (docs/fees.md): the
    import writes it after its writes, created, corrected and removed units alike, never in
    a dry run, with the sequence read before the units it was made from."""
    compound = new_compound(city)
    db = city.couch[VOTES_DB]
    first = write_csv(tmp_path / "a.csv", [row(compound, 1), row(compound, 2)])
    property_register.import_units(city.couch, first, dry_run=True)
    assert db.get(fees.areas_id(compound)) is None
    property_register.import_units(city.couch, first)
    held = db.get(fees.areas_id(compound))
    assert held["areas"] == {"3-2-101": 895_000, "3-2-102": 895_000}
    assert int(held["seq"]) <= int(db.info()["update_seq"])
    corrected = write_csv(tmp_path / "b.csv", [row(compound, 1, 专有部分面积="70.25")])
    property_register.import_units(city.couch, corrected, replace=True)
    assert db.get(fees.areas_id(compound))["areas"] == {"3-2-101": 702_500}


def test_a_file_without_its_columns_or_unreadable_is_refused(city: City, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "few.csv", [{"小区编码": "x"}], headers=["小区编码", "幢"])
    with pytest.raises(ImportError_, match="专有部分面积"):
        property_register.import_units(city.couch, path)
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage\x81")
    with pytest.raises(ImportError_):
        property_register.import_units(city.couch, tmp_path / "bad.csv")
    property_register.write_template(tmp_path / "template.csv")
    with (tmp_path / "template.csv").open(encoding="utf-8-sig") as template:
        assert next(csv.reader(template)) == HEADERS


def test_owners_get_owner_ids_keyed_by_the_installation_never_their_id_numbers(
        city: City, tmp_path: Path) -> None:
    """The same ID number on two units, with different phones or none, is one owner id; two
    owners sharing a phone keep two; the ID number itself is stored nowhere, and the id is
    keyed by the installation's secret (the one the server reads), not a plain digest."""
    compound = new_compound(city)
    path = write_csv(tmp_path / "ids.csv", [
        row(compound, 1, 产权人身份证号=f"{WANG}、{LI}"),
        row(compound, 2, 产权人="王芳", 产权人手机="", 产权人身份证号=f" {WANG.lower()} "),
        row(compound, 3, 产权人="王芳", 产权人手机="13905700009", 产权人身份证号=WANG),
        row(compound, 4, 产权人="张伟", 产权人手机="13905700002")])  # 李强's phone, no ID
    summary = property_register.import_units(city.couch, path)
    assert (summary.created, summary.refused) == (4, 0)
    stored = units(city, compound)
    owners = [stored[f"property_unit:{compound}:3-2-{100 + n}"]["owners"] for n in (1, 2, 3, 4)]
    wang = {owners[0][0]["owner_id"], owners[1][0]["owner_id"], owners[2][0]["owner_id"]}
    assert len(wang) == 1 and owners[0][1]["owner_id"] not in wang
    assert "owner_id" not in owners[3][0]
    secret = bytes.fromhex(city.couch[DIRECTORY_DB].resource("_local", "installation")
                           .get_json()[2]["secret"])
    assert wang == {votes.owner_id(secret, WANG)}
    assert wang != {hashlib.sha256(WANG.encode()).hexdigest()[:32]}
    assert WANG not in json.dumps(owners) and WANG[:-1] not in json.dumps(owners)
    electorate = votes.electorate_of(votes.electorate_doc(list(stored.values())))
    assert electorate.headcount == 3  # 王芳 (three units), 李强 and 张伟 sharing a phone
