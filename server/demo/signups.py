"""Noisy resident sign-ups with their ground truth, to measure `server.domain.matching` against.

`noisy_signups(households, persons, compounds, n, seed)` draws n sign-ups `{"name", "phone",
"address"}` from a registry (the household, person and compound documents of one community), each
with the id of the household it truly belongs to, or None for someone not in the registry. The
noise is what residents produce when they type on a phone: every address form of DOMAIN.md
("Addresses as people write them") with or without the compound's name or an alias, full-width
digits, Chinese numerals, a floor word, a left-out unit; a family member signing up instead of the
head; one character of the name replaced by a similar-sounding or similar-looking one; a new phone
number. About 5 % are strangers: a room that is not registered, or a stranger's name and phone at a
real address. Deterministic from the seed; the registry documents are only read.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["NOISE_RATES", "noisy_signups", "noisy_signups_labelled"]

NOISE_RATES = {
    "stranger": 0.05,       # not in the registry (ground truth None)
    "family_member": 0.35,  # a member signs up rather than the head (when the household has one)
    "typo": 0.08,           # one character of the name replaced
    "new_phone": 0.10,      # a phone the registry does not know
    "no_unit": 0.08,        # the unit left out
    "compound": 0.55,       # the compound's name or an alias written
    "fullwidth": 0.12,      # digits and dashes typed full-width
    "phone_format": 0.05,   # +86, spaces or dashes in the phone
}

# Similar-sounding or similar-looking characters common in names: each group is a character and
# what it gets mistyped as.
SIMILAR_GROUPS = """
王汪黄 张章彰 李黎礼 刘柳留 陈程沉 杨阳扬 赵肇 黄皇王 周邹舟 吴武伍
徐许 孙荪 胡湖 朱诸珠 高郜 林琳霖 何贺 郭国 马玛 罗骆 梁良 宋松
郑正 谢解 韩寒 唐汤 冯风 于余于 董东 萧肖 程陈成 曹操 袁元 邓登
许徐 傅付 沈审 曾增 彭鹏 吕侣 苏素 卢芦 蒋姜 蔡菜 贾甲 丁定 魏卫
薛雪 叶业 余于鱼 潘盘 杜度 戴代 夏霞 钟忠 汪王 田甜 任仁 姜江
范凡 方芳 石时 姚尧 廖辽 邹周 熊雄 金今 陆路 郝好 孔空 伟玮炜
芳方舫 娜那 敏民珉 静婧晶 丽莉俐 强蔷 磊垒 军君俊 洋阳扬 勇永咏
艳燕雁 杰洁捷 娟鹃涓 涛韬滔 明铭名 超潮 秀绣 霞侠夏 平萍苹 刚钢纲
桂贵 英瑛莹 华桦骅 红虹宏 玲琳苓 峰锋丰 斌彬滨 晨辰臣 萍平苹 燕艳雁
辉晖慧 建健剑见 国帼 文雯闻 海凯 波博 鹏朋 宇雨语 浩皓昊 婷亭庭
雪学 慧惠蕙 佳嘉家 欣新馨 琪淇琦 梅美玫 兰岚蓝 凤风 云芸蕓 龙隆
飞菲 鑫新 彬斌 志智 春纯 东冬 德得 成诚程 荣蓉容 秋球 晓小 小晓
俊骏 丹单 亮靓 宁凝 子梓紫 涵晗含 轩萱宣 怡宜仪 思丝 若诺 欢焕
玉钰 珍贞 芬纷
"""
SIMILAR = {group[0]: group[1:] for group in SIMILAR_GROUPS.split()}
FALLBACK = "明华文国建立新海平安永春晓小玉兰"
COMMON_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董"
COMMON_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玲峰斌晨"
CITY_PREFIXES = ("", "", "衢州市", "衢州市柯城区", "浙江省衢州市柯城区", "柯城区")
CN = "〇一二三四五六七八九"


def _cn(number: str) -> str:
    """A number up to 99 in Chinese numerals (十二, 二十三); other values unchanged."""
    if not number.isdigit() or not 0 < int(number) < 100:
        return number
    tens, ones = divmod(int(number), 10)
    return (("" if tens == 1 else CN[tens]) + "十" if tens else "") + (CN[ones] if ones else "")


def _cn_digits(number: str) -> str:
    return "".join(CN[int(c)] if c.isdigit() else c for c in number)


def _fullwidth(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _phone(rng: random.Random, taken: set[str]) -> str:
    while True:
        phone = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
        if phone not in taken:
            return phone


def _typo(rng: random.Random, name: str) -> str:
    at = rng.randrange(len(name))
    choices = SIMILAR.get(name[at], FALLBACK).replace(name[at], "") or FALLBACK
    return name[:at] + rng.choice(choices) + name[at + 1:]


def _format_phone(rng: random.Random, phone: str) -> str:
    return rng.choice((f"+86 {phone}", f"{phone[:3]} {phone[3:7]} {phone[7:]}",
                       f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"))


def _render(rng: random.Random, building: str, unit: str | None, room: str,
            compound_names: list[str]) -> tuple[str, list[str]]:
    b, r, kinds = building, room, []
    floor = r[:-2] if r.isdigit() and len(r) > 2 else "1"
    if unit is not None:
        u = unit
        forms = [
            f"{b}幢{u}单元{r}室", f"{b}-{u}-{r}", f"{b}栋{u}单元{r}", f"{b}号楼{u}单元{r}",
            f"{b}#{u}单元{r}", f"{_cn(b)}幢{_cn(u)}单元{r}室", f"{b}幢{u}单元{floor}楼{r}",
            f"{b}幢 {u}单元 {r}室", f"{b}幢{u}单元{r}号",
            f"{_cn(b)}栋{_cn(u)}单元{_cn_digits(r)}室", f"{b}幢{u}单元{_cn(floor)}层{r}室",
            f"{b}号{u}单元{r}室", f"{b} {u} {r}",
        ]
    else:
        forms = [
            f"{b}幢{r}室", f"{b}-{r}", f"{b}栋{r}", f"{b}号楼{r}", f"{_cn(b)}幢{r}室",
            f"{b}幢无单元{r}室", f"{b}#{r}", f"{b}幢{floor}楼{r}",
        ]
    pick = rng.randrange(len(forms))
    text = forms[pick]
    kinds.append(f"form{'' if unit is not None else '_no_unit'}{pick}")
    if rng.random() < NOISE_RATES["fullwidth"]:
        text = _fullwidth(text)
        kinds.append("fullwidth")
    if compound_names and rng.random() < NOISE_RATES["compound"]:
        name = rng.choice(compound_names)
        if rng.random() < 0.8:
            text = rng.choice(CITY_PREFIXES) + name + rng.choice(("", " ")) + text
        else:
            text = f"{text}（{name}）"
        kinds.append("compound")
    return text, kinds


def _active(doc: Mapping[str, Any]) -> bool:
    return doc.get("status") in (None, "active")


def noisy_signups_labelled(households: Iterable[Mapping[str, Any]],
                           persons: Iterable[Mapping[str, Any]],
                           compounds: Iterable[Mapping[str, Any]], n: int, seed: int | str
                           ) -> list[tuple[dict[str, str], str | None, list[str]]]:
    """As `noisy_signups`, each with the list of kinds of noise applied (for diagnostics)."""
    rng = random.Random(f"linli-signups-{seed}")
    homes = sorted((h for h in households if _active(h) and h.get("address")),
                   key=lambda h: str(h["_id"]))
    if not homes:
        return []
    ids = {h["_id"] for h in homes}
    members: dict[str, list[tuple[str, str | None]]] = {}
    all_names: set[str] = set()
    all_phones: set[str] = set()
    for h in homes:
        all_names.add(str(h.get("head_name") or ""))
        all_phones.add(str(h.get("phone") or ""))
    for p in sorted(persons, key=lambda p: str(p.get("_id", ""))):
        if p.get("household") in ids and p.get("status") in (None, "present"):
            members.setdefault(p["household"], []).append((str(p["name"]), p.get("phone")))
            all_names.add(str(p["name"]))
            all_phones.add(str(p.get("phone") or ""))
    names_of: dict[str, list[str]] = {}
    for c in compounds:
        names_of[str(c["code"])] = [str(c["name"]), *(str(a) for a in c.get("aliases") or ())]
    for h in homes:
        a = h["address"]
        if a.get("compound_name") and not names_of.get(a["compound"]):
            names_of[a["compound"]] = [str(a["compound_name"])]
    rooms_in_building: dict[str, set[str]] = {}
    for h in homes:
        rooms_in_building.setdefault(str(h["address"]["building"]), set()).add(
            str(h["address"]["room"]))

    out: list[tuple[dict[str, str], str | None, list[str]]] = []
    while len(out) < n:
        h = rng.choice(homes)
        a = h["address"]
        building, unit, room = str(a["building"]), a.get("unit"), str(a["room"])
        unit = str(unit) if unit not in (None, "", "无") else None
        compound_names = names_of.get(str(a["compound"]), [])
        if rng.random() < NOISE_RATES["stranger"]:
            name = ""
            while not name or name in all_names:  # common-looking, but nobody registered here
                name = rng.choice(COMMON_SURNAMES) + "".join(
                    rng.choice(COMMON_GIVEN) for _ in range(rng.randint(1, 2)))
            phone = _phone(rng, all_phones)
            if rng.random() < 0.5:
                kinds = ["stranger_at_real_address"]
            else:  # a room registered nowhere in a building of that number
                kinds = ["stranger_unregistered_room"]
                taken = rooms_in_building[building]
                while room in taken:
                    room = f"{rng.randint(20, 33)}{rng.randint(1, 4):02d}"
            address, address_kinds = _render(rng, building, unit, room, compound_names)
            out.append(({"name": name, "phone": phone, "address": address}, None,
                        kinds + address_kinds))
            continue

        kinds = []
        people = [(str(h.get("head_name") or ""), h.get("phone"))]
        people = [p for p in people if p[0]]
        others = [m for m in members.get(h["_id"], []) if m[0] not in {p[0] for p in people}]
        if not people and not others:
            continue  # nobody to sign up for this household
        if not people or (others and rng.random() < NOISE_RATES["family_member"]):
            people = [rng.choice(others)]
            kinds.append("family_member")
        name, phone = people[0][0], people[0][1] or h.get("phone")
        if rng.random() < NOISE_RATES["typo"] and 2 <= len(name) <= 4:
            name = _typo(rng, name)
            kinds.append("typo")
        if not phone or rng.random() < NOISE_RATES["new_phone"]:
            phone = _phone(rng, all_phones)
            kinds.append("new_phone")
        phone = str(phone)
        if rng.random() < NOISE_RATES["phone_format"]:
            phone = _format_phone(rng, phone)
            kinds.append("phone_format")
        if unit is not None and rng.random() < NOISE_RATES["no_unit"]:
            unit = None
            kinds.append("no_unit")
        address, address_kinds = _render(rng, building, unit, room, compound_names)
        out.append(({"name": name, "phone": phone, "address": address}, str(h["_id"]),
                    kinds + address_kinds))
    return out


def noisy_signups(households: Iterable[Mapping[str, Any]], persons: Iterable[Mapping[str, Any]],
                  compounds: Iterable[Mapping[str, Any]], n: int, seed: int | str
                  ) -> list[tuple[dict[str, str], str | None]]:
    """n sign-ups `{"name", "phone", "address"}`, each with the id of the household it belongs to,
    or None for a person not in the registry (about 5 %). Deterministic from the seed."""
    return [(signup, truth)
            for signup, truth, _ in noisy_signups_labelled(households, persons, compounds, n, seed)]
