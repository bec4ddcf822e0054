"""Import of the property register (不动产登记簿) of a compound's exclusive parts: a CSV or XLSX
file with Chinese headers (TEMPLATE), one row a unit, its registered area and its owners. The
electorate of an owners' vote comes from it (docs/votes.md).

As the household registry import (server/admin/registry_import.py): a dry run checks every row
and writes nothing; refused rows go, with the reason, to an errors file in the same layout; the
unit's address is its id, so importing the same file again changes nothing. Areas are read as
decimals into whole square centimetres (server/domain/votes.py `area_cm2`), never as floats.
"""

from __future__ import annotations

import contextlib
import csv
import secrets
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import couchdb

from server.admin.registry_import import REASON_COLUMN, ImportError_, ImportSummary, read_rows
from server.domain import fees, rules, votes
from server.domain.exports import safe_row
from server.domain.scope import DIRECTORY_DB, VOTES_DB
from server.domain.text import text_problem
from server.domain.validation import SchemaRegistry
from server.store.bulk import save_many

IMPORTER = "register"
BATCH = 1000
MAX_CELL = 200  # characters of a cell: a name list of twenty co-owners fits
TEMPLATE = ("小区编码", "幢", "单元", "室", "专有部分面积", "面积来源", "产权人", "产权人手机",
            "建设单位持有", "产权人身份证号")
REQUIRED = ("小区编码", "幢", "单元", "室", "专有部分面积")
SOURCES = {"": "register", "不动产登记": "register", "登记": "register", "register": "register",
           "实测": "survey", "survey": "survey", "合同": "contract", "contract": "contract"}
YES = {"是", "y", "yes", "true", "1"}
NO = {"", "否", "n", "no", "false", "0"}
SEPARATORS = ("、", "，", ",", ";", "；", "/")


def split_list(text: str) -> list[str]:
    for sep in SEPARATORS:
        text = text.replace(sep, "\x1f")
    return [part.strip() for part in text.split("\x1f") if part.strip()]


def unit_doc(row: Mapping[str, str], registry: SchemaRegistry, pepper: bytes = b""
             ) -> tuple[dict[str, Any] | None, list[str]]:
    """A row as a `property_unit` document, or the reasons it is refused. The owners' ID
    numbers, in the order of their names, are kept only as owner ids (`votes.owner_id`, keyed
    by `pepper`): the same person is one owner across units, however their phones go."""
    cells = [text_problem(row.get(h, ""), "", (h, h), max_chars=MAX_CELL, min_chars=0)
             for h in TEMPLATE]
    problems = [f"{p.zh} / {p.en}" for p in cells if p is not None]
    if problems:
        return None, problems
    try:
        area = votes.area_cm2(row.get("专有部分面积", ""))
    except ValueError:
        return None, ["“专有部分面积”应为平方米数，最多四位小数 / Exclusive area must be square "
                      "metres with at most four decimals"]
    source = SOURCES.get(row.get("面积来源", "").strip().lower())
    held = row.get("建设单位持有", "").strip().lower()
    names, phones = split_list(row.get("产权人", "")), split_list(row.get("产权人手机", ""))
    id_numbers = [rules.normalise_id_number(n) for n in split_list(row.get("产权人身份证号", ""))]
    for n, number in enumerate(id_numbers, 1):
        problems += [f"“产权人身份证号”第 {n} 个：{p.zh} / Owner's ID number {n}: {p.en}"
                     for p in rules.id_number_problems(number)]
    if len(id_numbers) > len(names):
        problems.append("“产权人身份证号”多于产权人 / more owners' ID numbers than owners")
    if len(set(id_numbers)) != len(id_numbers):
        problems.append("“产权人身份证号”重复 / an owner's ID number appears twice")
    if source is None:
        problems.append("“面积来源”应为 不动产登记、实测 或 合同 / Area from must be register, "
                        "survey or contract")
    if held not in YES | NO:
        problems.append("“建设单位持有”应为 是 或 否 / Held by the developer must be yes or no")
    if len(phones) > len(names):
        problems.append("“产权人手机”多于产权人 / more owners' phones than owners")
    if not names and held not in YES:
        problems.append("“产权人”为空：已售已交付的房屋须有产权人 / Owners: a unit sold and "
                        "delivered has owners")
    if len(set(phones)) != len(phones):
        problems.append("“产权人手机”重复 / an owner's phone appears twice")
    if problems:
        return None, problems
    compound = row["小区编码"].strip()
    address = "-".join(row[h].strip() for h in ("幢", "单元", "室"))
    owners = [{"name": name, **({"phone": phones[i]} if i < len(phones) else {}),
               **({"owner_id": votes.owner_id(pepper, id_numbers[i])}
                  if i < len(id_numbers) else {})}
              for i, name in enumerate(names)]
    doc = {"_id": f"property_unit:{compound}:{address}", "type": "property_unit",
           "schema_version": 1, "created_by": IMPORTER, "compound": compound,
           "building": row["幢"].strip(), "unit": row["单元"].strip(), "room": row["室"].strip(),
           "area_cm2": area, "area_source": source, "developer_held": held in YES,
           "owners": owners}
    problems = registry.problems(doc)
    return (None if problems else doc), problems


def keep_areas(db: couchdb.Database, compounds: list[str]) -> None:
    """Each compound's area index (docs/fees.md), so that generating its bills reads one small
    document, not every unit with its owners: its units as stored after this import's writes,
    under the sequence read before they were read (a unit changed after is seen)."""
    for compound in compounds:
        seq = db.info()["update_seq"]
        prefix = f"property_unit:{compound}:"
        units = [row.doc for row in db.view("_all_docs", startkey=prefix,
                                            endkey=prefix + "\ufff0", include_docs=True)]
        doc = fees.areas_doc(units, seq)
        held = db.get(fees.areas_id(compound))
        with contextlib.suppress(couchdb.ResourceConflict):  # another import's is as new
            db[fees.areas_id(compound)] = {**doc, **({"_rev": held["_rev"]} if held else {})}


def installation_secret(server: couchdb.Server, *, create: bool = True) -> bytes:
    """The installation's secret (server/sync/installation.py keeps it, made by the first
    server to start): the key of owner ids, so that every process derives the same id from the
    same ID number. An import before any server ran makes it as the server would."""
    local = server[DIRECTORY_DB].resource("_local", "installation")
    try:
        return bytes.fromhex(str(local.get_json()[2]["secret"]))
    except couchdb.ResourceNotFound:
        if not create:  # a dry run writes nothing: its ids are never stored
            return b""
    with contextlib.suppress(couchdb.ResourceConflict):
        local.put_json(body={"uuid": uuid.uuid4().hex, "secret": secrets.token_hex(32)})
    return bytes.fromhex(str(local.get_json()[2]["secret"]))


def write_template(path: Path) -> None:
    example = ("hehua1", "3", "2", "301", "89.5", "不动产登记", "王芳、李强",
               "13905700001、13905700002", "否", "33010219800101107X、330102198001011002")
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(TEMPLATE)
        writer.writerow(example)


def import_units(server: couchdb.Server, path: Path, *, dry_run: bool = False,
                 error_file: Path | None = None, registry: SchemaRegistry | None = None,
                 replace: bool = False) -> ImportSummary:
    """Import the units of `path`; see the module's docstring. With `replace`, the file is the
    whole register of each compound it names: a unit of those compounds it no longer lists is
    removed (named in the summary, in a dry run too, before anything is removed), unless a row
    was refused: a unit whose row is wrong is not a unit sold off the register."""
    registry = registry or SchemaRegistry()
    headers, rows = read_rows(path)
    missing = [h for h in REQUIRED if h not in headers]
    if missing:
        raise ImportError_(f"缺少必需的列：{'、'.join(missing)} / required columns missing: "
                           f"{', '.join(missing)}")
    compounds = {row.id.partition(":")[2] for row in server[DIRECTORY_DB].view(
        "_all_docs", startkey="compound:", endkey="compound:\ufff0")}
    summary = ImportSummary()
    pepper = installation_secret(server, create=not dry_run)
    refused: list[list[Any]] = []
    wanted: dict[str, tuple[int, Mapping[str, str], dict[str, Any]]] = {}
    for number, row in rows:
        summary.rows += 1
        doc, problems = unit_doc(row, registry, pepper)
        if doc is not None and doc["compound"] not in compounds:
            problems = [f"没有小区 {doc['compound']} / unknown compound {doc['compound']}"]
        elif doc is not None and doc["_id"] in wanted:
            problems = ["同一房屋在文件中出现两次 / the unit appears twice in the file"]
        if problems or doc is None:
            refused.append([number, *(row.get(h, "") for h in headers), "；".join(problems)])
            continue
        wanted[doc["_id"]] = (number, row, doc)
    if not dry_run and VOTES_DB not in server:
        server.create(VOTES_DB)
    try:
        db: couchdb.Database | None = server[VOTES_DB]
    except couchdb.ResourceNotFound:  # a dry run on an installation without votes yet
        db = None
    stored: dict[str, Any] = {}
    for compound in sorted({doc["compound"] for _, _, doc in wanted.values()}):
        if db is not None:  # a compound's units are one range of ids
            prefix = f"property_unit:{compound}:"
            stored.update((row.id, row.doc) for row in db.view(
                "_all_docs", startkey=prefix, endkey=prefix + "\ufff0", include_docs=True))
    writes: list[dict[str, Any]] = []
    for doc_id, (_, _, doc) in wanted.items():
        old = stored.get(doc_id)
        if old is None:
            summary.created += 1
            writes.append(doc)
        elif {k: v for k, v in old.items() if k != "_rev"} == doc:
            summary.unchanged += 1
        else:
            summary.updated += 1
            writes.append({**doc, "_rev": old["_rev"]})
    if replace and not refused:  # a unit whose row was refused is not a unit removed
        summary.removed = sorted(set(stored) - set(wanted))
        writes += [{"_id": doc_id, "_rev": stored[doc_id]["_rev"], "_deleted": True}
                   for doc_id in summary.removed]
    if writes and db is not None and not dry_run:
        for start in range(0, len(writes), BATCH):
            for ok, doc_id, err in save_many(db, writes[start:start + BATCH]):
                if not ok and doc_id not in wanted:  # a removal: the unit stays
                    summary.removed.remove(doc_id)
                elif not ok:
                    number, row, _ = wanted[doc_id]
                    refused.append([number, *(row.get(h, "") for h in headers),
                                    f"写入失败 / not written: {err}"])
                    summary.created -= doc_id not in stored
                    summary.updated -= doc_id in stored
    if db is not None and not dry_run:
        keep_areas(db, sorted({doc["compound"] for _, _, doc in wanted.values()}))
    summary.refused = len(refused)
    if refused:
        error_file = error_file or path.with_name(f"{path.stem}.errors.csv")
        with error_file.open("w", encoding="utf-8-sig", newline="") as out:
            errors_out = csv.writer(out)
            errors_out.writerow(["行号", *headers, REASON_COLUMN])
            errors_out.writerows(safe_row(r)  # a cell is text, never a formula
                                 for r in sorted(refused, key=lambda r: r[0]))
        summary.error_file = error_file
    return summary
