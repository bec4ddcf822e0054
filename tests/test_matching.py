"""Sign-up matching: address normalisation (every form in DOMAIN.md, "Addresses as people write
them"), the decision rules of `server.domain.matching`, and a measurement on noisy sign-ups from
`server.demo.signups` (precision, recall, matches per second)."""

from __future__ import annotations

import importlib.util
import random
import time
from collections import Counter
from typing import Any

import pytest

from server.demo.signups import _cn, noisy_signups, noisy_signups_labelled
from server.domain.matching import (
    AddressKey,
    HouseholdIndex,
    match,
    normalise_address,
    normalise_name,
    normalise_part,
    normalise_phone,
    one_edit_apart,
)

COMPOUNDS = [
    {"type": "compound", "schema_version": 1, "code": "yangguang", "name": "阳光小区",
     "aliases": ["阳光花园"], "community": "330802001001"},
    {"type": "compound", "schema_version": 1, "code": "shuyuan", "name": "书院雅苑",
     "aliases": ["书院"], "community": "330802001001"},
    {"type": "compound", "schema_version": 1, "code": "baiyun", "name": "白云新村",
     "aliases": ["白云"], "community": "330802001001"},
]


# ---------------------------------------------------------------------------------------------
# Address normalisation

DOMAIN_FORMS = [  # every way DOMAIN.md says the same room is written
    "3幢2单元301室", "3-2-301", "3栋2单元301", "3号楼2单元301", "3#2单元301", "三幢二单元301室",
    "３－２－３０１", "３幢２单元３０１室",
]
MORE_FORMS = [
    "3幢2单元3楼301", "3幢2单元3层301室", "3幢2单元三楼301", "3号2单元301室", "3幢2单元301号",
    "3 2 301", "3 幢 2 单元 301 室", "3幢2-301", "3-2-301室", "3一2一301", "3—2—301",
    "三栋二单元三〇一室", "三幢二单元三零一", "3幢2单元301室。", "3幢２单元301", "3棟2單元301室",
    "3座2单元301",
]


@pytest.mark.parametrize("text", DOMAIN_FORMS + MORE_FORMS)
def test_every_form_of_3_2_301(text: str) -> None:
    assert normalise_address(text, COMPOUNDS) == AddressKey(None, "3", "2", "301")


@pytest.mark.parametrize("prefix", [
    "阳光小区", "阳光花园", "阳光", "阳光小区 ", "衢州市柯城区阳光小区",
    "浙江省衢州市柯城区府山街道阳光小区", "ＹＧ阳光小区",
])
@pytest.mark.parametrize("form", DOMAIN_FORMS)
def test_compound_name_or_alias_in_front(prefix: str, form: str) -> None:
    assert normalise_address(prefix + form, COMPOUNDS) == AddressKey("yangguang", "3", "2", "301")


def test_compound_anywhere_longest_match() -> None:
    compounds = [*COMPOUNDS, {"code": "yangguang2", "name": "阳光花园二期", "aliases": []}]
    assert normalise_address("3-2-301（阳光小区）", COMPOUNDS).compound == "yangguang"
    assert normalise_address("3-2-301 书院", COMPOUNDS).compound == "shuyuan"
    assert normalise_address("阳光花园二期3-2-301", compounds).compound == "yangguang2"
    assert normalise_address("阳光花园3-2-301", compounds).compound == "yangguang"
    assert normalise_address("三衢路88号阳光小区3-2-301", COMPOUNDS) == AddressKey(
        "yangguang", "3", "2", "301")
    assert normalise_address("某某小区3-2-301", COMPOUNDS) == AddressKey(None, "3", "2", "301")


def test_compound_names_with_numerals_and_punctuation() -> None:
    compounds = [{"code": "sanqu", "name": "三衢花园", "aliases": []},
                 {"code": "shuyuan", "name": "书院·雅苑", "aliases": []}]
    assert normalise_address("三衢花园5-2-301", compounds) == AddressKey("sanqu", "5", "2", "301")
    assert normalise_address("书院雅苑5幢2单元301", compounds).compound == "shuyuan"
    assert normalise_address("书院.雅苑5幢2单元301", compounds).compound == "shuyuan"
    # an unknown name that contains a numeral is not read as a building
    assert normalise_address("三元花园5-2-301", compounds) == AddressKey(None, "5", "2", "301")


@pytest.mark.parametrize(("text", "unit"), [
    ("3幢甲单元301室", "甲"), ("3幢乙单元301", "乙"), ("3-甲-301", "甲"), ("3栋乙单元三〇一", "乙"),
    ("3幢无单元301室", None), ("3-无-301", None), ("3幢301", None), ("3幢301室", None),
    ("3-301", None), ("3#301", None), ("3号楼301", None), ("3幢3楼301", None),
    ("3 甲 301", "甲"), ("3甲301", "甲"), ("３ 乙 ３０１", "乙"), ("3幢乙301", "乙"),
    ("三幢乙三〇一", "乙"),
])
def test_unit_labels_and_missing_units(text: str, unit: str | None) -> None:
    assert normalise_address(text, COMPOUNDS) == AddressKey(None, "3", unit, "301")


@pytest.mark.parametrize("n", range(1, 100))
def test_chinese_numerals_up_to_99(n: int) -> None:
    assert normalise_address(f"{_cn(str(n))}幢{_cn(str(n))}单元101室", ()) == AddressKey(
        None, str(n), str(n), "101")


@pytest.mark.parametrize(("written", "digits"), [
    ("三", "3"), ("十", "10"), ("十二", "12"), ("二十", "20"), ("二十三", "23"), ("九十九", "99"),
    ("两", "2"), ("〇", "0"), ("三〇一", "301"), ("三零一", "301"), ("一百零一", "101"),
    ("一二〇二", "1202"),
])
def test_chinese_numeral_forms(written: str, digits: str) -> None:
    assert normalise_part(written) == digits
    assert normalise_address(f"5幢1单元{written}室", ()).room == str(int(digits))


def test_letters_leading_zeros_and_registry_parts() -> None:
    assert normalise_address("A座2单元301", ()) == AddressKey(None, "A", "2", "301")
    assert normalise_address("b栋2单元0301室", ()) == AddressKey(None, "B", "2", "301")
    assert normalise_address("１２幢１单元１２０２室", ()) == AddressKey(None, "12", "1", "1202")
    parts = ("3幢", "03", "三", "甲", "无", "", None, "2单元", "301室")
    assert [normalise_part(v) for v in parts] == ["3", "3", "3", "甲", None, None, None, "2", "301"]


@pytest.mark.parametrize("text", ["", "阳光小区", "3幢2单元", "2单元301室", "hello", "九十九幢",
                                  "张三", "---"])
def test_no_building_or_room_is_none(text: str) -> None:
    assert normalise_address(text, COMPOUNDS) is None


def test_names_phones_and_edit_distance() -> None:
    assert normalise_name(" 王 伟 ") == "王伟"
    assert normalise_name("阿依古丽•买买提") == normalise_name("阿依古丽·买买提")
    assert normalise_phone("+86 138-0000-1234") == "13800001234"
    assert normalise_phone("１３８００００１２３４") == "13800001234"
    assert normalise_phone("0570-3012345") == "05703012345"
    assert one_edit_apart("王伟", "王玮") and one_edit_apart("王伟", "王小伟")
    assert one_edit_apart("王小伟", "王伟") and not one_edit_apart("王伟", "王伟")
    assert not one_edit_apart("王伟", "李玮") and not one_edit_apart("王伟", "伟王")


# ---------------------------------------------------------------------------------------------
# Matching decisions, on a hand-made registry

def household(hid: str, compound: str, building: str, unit: str | None, room: str, head: str,
              phone: str | None, status: str = "active") -> dict[str, Any]:
    address = {"compound": compound, "building": building, "room": room}
    if unit is not None:
        address["unit"] = unit
    doc: dict[str, Any] = {"_id": f"household:{hid}", "type": "household", "address": address,
                           "head_name": head, "status": status}
    if phone:
        doc["phone"] = phone
    return doc


def person(hid: str, name: str, phone: str | None = None, status: str = "present") -> dict:
    doc = {"household": f"household:{hid}", "name": name, "status": status}
    if phone:
        doc["phone"] = phone
    return doc


@pytest.fixture(scope="module")
def index() -> HouseholdIndex:
    households = [
        household("h1", "yangguang", "3", "2", "301", "王伟", "13800000001"),
        household("h2", "shuyuan", "3", "2", "301", "张敏", "13800000002"),
        household("h3", "yangguang", "5", "1", "101", "陈静", "13800000003"),
        household("h4", "yangguang", "6", "1", "201", "刘洋", "13800000004"),
        household("h5", "yangguang", "6", "2", "201", "刘洋", "13800000005"),
        household("h6", "shuyuan", "8", "甲", "101", "周杰", "13800000006"),
        household("h7", "yangguang", "8", "甲", "101", "周杰", "13800000007"),
        household("h8", "baiyun", "9", None, "402", "孙丽", None),
        household("h9", "baiyun", "9", None, "502", "赵刚", "13800000009", status="moved_out"),
        household("h10", "yangguang", "7", "1", "101", "黄磊", "0570-3012345"),
        household("h11", "yangguang", "7", "2", "101", "林峰", "13800000011"),
    ]
    persons = [
        person("h1", "王伟", "13800000001"), person("h1", "李芳", "13900000001"),
        person("h1", "王小明"), person("h1", "王老太", status="deceased"),
        person("h8", "孙丽", "13800000008"), person("h8", "钱多多"),
        person("h9", "赵刚", "13800000009"),
        person("h11", "黄磊"),  # a 黄磊 lives in 7-2-101 as well
    ]
    return HouseholdIndex.build(households, persons, COMPOUNDS)


def check(index: HouseholdIndex, name: str, phone: str, address: str) -> tuple[str, Any, list]:
    result = match({"name": name, "phone": phone, "address": address}, index)
    assert result.reason
    return result.status, result.household and result.household.split(":")[1], sorted(
        c.split(":")[1] for c in result.candidates)


def test_index_holds_active_households_and_present_members(index: HouseholdIndex) -> None:
    assert len(index) == 10  # h9 moved out
    h1 = index.ids.index("household:h1")
    assert set(index.names[h1]) == {"王伟", "李芳", "王小明"}
    assert set(index.phones[h1]) == {"13800000001", "13900000001"}


def test_exact_address_name_and_phone(index: HouseholdIndex) -> None:
    assert check(index, "王伟", "13800000001", "阳光小区3幢2单元301室") == ("matched", "h1", ["h1"])
    assert check(index, "王伟", "+86 138 0000 0001", "阳光花园３－２－３０１")[:2] == (
        "matched", "h1")
    assert check(index, "张敏", "13800000002", "书院三幢二单元301室")[:2] == ("matched", "h2")


def test_compound_left_out_other_compound_has_no_evidence(index: HouseholdIndex) -> None:
    assert check(index, "王伟", "13800000001", "3-2-301")[:2] == ("matched", "h1")
    assert check(index, "张敏", "13611112222", "3栋2单元301")[:2] == ("matched", "h2")


def test_family_member(index: HouseholdIndex) -> None:
    assert check(index, "李芳", "13900000001", "3-2-301")[:2] == ("matched", "h1")
    assert check(index, "王小明", "13800000001", "3号楼2单元301")[:2] == ("matched", "h1")
    assert check(index, "钱多多", "13800000008", "白云9幢402室")[:2] == ("matched", "h8")


def test_changed_phone_with_exact_name(index: HouseholdIndex) -> None:
    assert check(index, "王小明", "13712345678", "阳光3幢2单元301")[:2] == ("matched", "h1")
    assert check(index, "孙丽", "", "9-402")[:2] == ("matched", "h8")


def test_phone_without_the_name(index: HouseholdIndex) -> None:
    # someone of the household not (yet) in the registry, with the household's phone
    assert check(index, "王大力", "13800000001", "3-2-301")[:2] == ("matched", "h1")
    assert check(index, "黄磊", "05703012345", "7-1-101")[:2] == ("matched", "h10")


def test_typo_needs_the_phone(index: HouseholdIndex) -> None:
    assert check(index, "王玮", "13800000001", "3-2-301")[:2] == ("matched", "h1")
    assert check(index, "李芬", "13900000001", "3-2-301")[:2] == ("matched", "h1")
    assert check(index, "王玮", "13712345678", "3-2-301") == ("ambiguous", None, ["h1"])
    assert check(index, "王小朋友", "13712345678", "3-2-301")[0] == "not_found"  # 2 edits


def test_stranger_at_a_real_address_is_not_found(index: HouseholdIndex) -> None:
    assert check(index, "赵强", "13712345678", "阳光小区3幢2单元301室") == ("not_found", None, [])
    assert check(index, "赵强", "13712345678", "3-2-301") == ("not_found", None, [])
    # a deceased member's name does not open the household
    assert check(index, "王老太", "13712345678", "3-2-301") == ("not_found", None, [])
    # nor does a moved-out household's
    assert check(index, "赵刚", "13800000009", "白云9幢502室") == ("not_found", None, [])


def test_missing_unit(index: HouseholdIndex) -> None:
    # the building has one unit
    assert check(index, "陈静", "13711112222", "5幢101")[:2] == ("matched", "h3")
    # two units; the phone pins it down
    assert check(index, "刘洋", "13800000005", "6幢201室")[:2] == ("matched", "h5")
    assert check(index, "刘洋", "13800000004", "阳光6-201")[:2] == ("matched", "h4")
    # two units, same name, new phone: both fit equally
    assert check(index, "刘洋", "13712345678", "6幢201") == ("ambiguous", None, ["h4", "h5"])


def test_two_households_fit_equally_is_ambiguous(index: HouseholdIndex) -> None:
    assert check(index, "周杰", "13712345678", "8-甲-101") == ("ambiguous", None, ["h6", "h7"])
    assert check(index, "周杰", "13712345678", "书院8幢甲单元101")[:2] == ("matched", "h6")
    assert check(index, "周杰", "13800000007", "8-甲-101")[:2] == ("matched", "h7")
    # the exact name in one unit, the phone in the other: neither leads clearly
    assert check(index, "林峰", "0570-3012345", "7幢101") == ("ambiguous", None, ["h10", "h11"])
    # name and phone in one unit, the name alone in the other: the first leads clearly
    assert check(index, "黄磊", "13800000011", "7幢101")[:2] == ("matched", "h11")


def test_unregistered_room_or_unreadable_address(index: HouseholdIndex) -> None:
    assert check(index, "赵强", "13712345678", "3幢2单元2001室") == ("not_found", None, [])
    # the resident mistyped the room: name and phone point to a household, for a person to check
    assert check(index, "王伟", "13800000001", "3幢2单元310室") == ("ambiguous", None, ["h1"])
    assert check(index, "王伟", "13800000001", "阳光小区") == ("ambiguous", None, ["h1"])
    assert check(index, "王伟", "13712345678", "阳光小区")[0] == "not_found"
    # a wrong compound is not overruled
    assert check(index, "王伟", "13800000001", "白云3-2-301")[0] == "ambiguous"


def test_unit_written_where_the_registry_has_none(index: HouseholdIndex) -> None:
    assert check(index, "孙丽", "13800000008", "白云9幢1单元402")[:2] == ("matched", "h8")


# ---------------------------------------------------------------------------------------------
# A synthetic community, and measurement on noisy sign-ups

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲峰斌晨辉建国文海波鹏宇浩婷雪慧佳欣琪梅兰"


def synthetic_community(seed: int = 7) -> tuple[list[dict], list[dict], list[dict]]:
    """About 1,900 households in three compounds that number their buildings alike (so that a
    left-out compound matters), with one to three units (numbers, 甲/乙, or none recorded), common
    names (so that names collide) and family members with and without their own phones."""
    rng = random.Random(seed)
    households: list[dict] = []
    persons: list[dict] = []
    phones: set[str] = set()

    def phone() -> str:
        while (p := f"1{rng.choice('3589')}{rng.randint(0, 999_999_999):09d}") in phones:
            pass
        phones.add(p)
        return p

    def name(surname: str | None = None) -> str:
        given = "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2, 2))))
        return (surname or rng.choice(SURNAMES)) + given

    plan = {"yangguang": (1, 14), "shuyuan": (1, 12), "baiyun": (1, 16)}
    for compound, (first, last) in plan.items():
        for b in range(first, last + 1):
            units: list[str | None] = rng.choice(
                (["1"], ["1", "2"], ["1", "2", "3"], ["甲", "乙"], [None]))
            for unit in units:
                for floor in range(1, rng.choice((6, 7, 11)) + 1):
                    for door in (1, 2):
                        hid = f"household:{compound}-{b}-{unit or 0}-{floor}{door:02d}"
                        head = name()
                        status = "active" if rng.random() > 0.03 else "moved_out"
                        doc = household(hid.split(":")[1], compound, str(b), unit,
                                        f"{floor}{door:02d}", head,
                                        phone() if rng.random() > 0.05 else None, status)
                        doc["_id"] = hid
                        households.append(doc)
                        persons.append({"household": hid, "name": head, "relationship": "0",
                                        "phone": doc.get("phone"), "status": "present"})
                        for _ in range(rng.choice((0, 1, 1, 2, 2, 3, 4))):
                            relative = name(head[0] if rng.random() < 0.6 else None)
                            persons.append({
                                "household": hid, "name": relative,
                                "relationship": rng.choice("12345"),
                                "phone": phone() if rng.random() < 0.5 else None,
                                "status": rng.choice(("present",) * 12 + ("moved_out",)),
                            })
    for p in persons:
        if p["phone"] is None:
            del p["phone"]
    return households, persons, COMPOUNDS


def measure(households: list[dict], persons: list[dict], compounds: list[dict], n: int,
            seed: int) -> dict[str, Any]:
    index = HouseholdIndex.build(households, persons, compounds)
    labelled = noisy_signups_labelled(households, persons, compounds, n, seed)
    started = time.perf_counter()
    results = [match(signup, index) for signup, _, _ in labelled]
    elapsed = time.perf_counter() - started
    matched = right = with_truth = found = 0
    wrong: list[tuple] = []
    missed: Counter[str] = Counter()
    for (signup, truth, kinds), result in zip(labelled, results, strict=True):
        with_truth += truth is not None
        if result.status == "matched":
            matched += 1
            if result.household == truth:
                right += 1
                found += 1
            else:
                wrong.append((signup, truth, kinds, result))
        elif truth is not None:
            missed[f"{result.status}: {'+'.join(k for k in kinds if not k.startswith('form'))}"] \
                += 1
    return {"n": n, "households": len(index), "precision": right / matched,
            "recall": found / with_truth, "per_second": n / elapsed, "wrong": wrong,
            "missed": missed, "strangers": n - with_truth}


def report(label: str, m: dict[str, Any]) -> str:
    return (f"{label}: {m['n']} sign-ups ({m['strangers']} strangers) against {m['households']} "
            f"households: precision {m['precision']:.4f}, recall {m['recall']:.4f}, "
            f"{m['per_second']:.0f} matches/s; missed {m['missed'].most_common(8)}; "
            f"wrong {m['wrong'][:3]}")


def test_generator_is_deterministic_and_noisy() -> None:
    households, persons, compounds = synthetic_community()
    first = noisy_signups(households, persons, compounds, 600, seed=3)
    assert first == noisy_signups(households, persons, compounds, 600, seed=3)
    assert first != noisy_signups(households, persons, compounds, 600, seed=4)
    assert len(first) == 600
    ids = {h["_id"] for h in households if h["status"] == "active"}
    assert all(truth is None or truth in ids for _, truth in first)
    assert 0.02 < sum(truth is None for _, truth in first) / 600 < 0.09
    kinds = Counter(k for _, _, ks in noisy_signups_labelled(households, persons, compounds, 3000,
                                                             seed=3) for k in ks)
    for kind in ("family_member", "typo", "new_phone", "no_unit", "compound", "fullwidth",
                 "phone_format", "stranger_at_real_address", "stranger_unregistered_room"):
        assert kinds[kind] > 10, kind
    assert sum(1 for k in kinds if k.startswith("form")) >= 20


def test_precision_and_recall_on_noisy_signups() -> None:
    households, persons, compounds = synthetic_community()
    m = measure(households, persons, compounds, 3000, seed=11)
    print("\n" + report("synthetic community", m))
    assert m["precision"] >= 0.995, report("synthetic community", m)
    assert m["recall"] >= 0.97, report("synthetic community", m)


@pytest.mark.skipif(importlib.util.find_spec("server.demo.city") is None,
                    reason="server/demo/city.py is not there yet")
def test_precision_and_recall_on_the_synthetic_city() -> None:
    """The same measurement on one community of `server.demo.city`'s synthetic city (its compounds
    have numerals and street addresses among their names and aliases)."""
    from server.demo.city import generate_city

    city = generate_city(3000, seed=2020)
    compounds = [d for d in city.directory_docs if d["type"] == "compound"]
    households = [h for g in city.grids.values() for h in g.households]
    persons = [p for g in city.grids.values() for p in g.persons]
    community_of = {c["code"]: c["community"] for c in compounds}
    sizes = Counter(community_of[h["address"]["compound"]] for h in households)
    community = sizes.most_common(1)[0][0]
    homes = [h for h in households if community_of[h["address"]["compound"]] == community]
    ids = {h["_id"] for h in homes}
    m = measure(homes, [p for p in persons if p["household"] in ids],
                [c for c in compounds if c["community"] == community], 3000, seed=5)
    print("\n" + report(f"server.demo.city community {community}", m))
    assert m["precision"] >= 0.995, report("city", m)
    assert m["recall"] >= 0.97, report("city", m)
