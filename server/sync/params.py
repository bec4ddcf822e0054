"""Query parameters the gateway forwards to the store, one table for every endpoint.

Each parameter CouchDB accepts has one kind (a boolean, a non-negative integer, a JSON value, a
list of revisions...), checked here before anything reaches the store: a bad value answers a
CouchDB-shaped 400 naming the parameter. Unchecked, the embedded store answers some with a 500
(`open_revs=notjson`, `keys=x` on a view), takes others for something else (`skip=abc` as an
offset, `descending=2` as true, `limit=-1` as "none") and dies on a bad `_changes` selector.
Parameters no endpoint lists are not forwarded at all.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from server import errors

MAX_JSON_DEPTH = 32  # nesting of a JSON parameter (a key, a selector): the store recurses on it
MAX_SELECTOR_BYTES = 4096  # a selector goes to the store in its URL (node's limit is 16 KB)
MAX_SELECTOR_DEPTH = 8  # $or/$nor/$not/$and nesting, and field paths written as nested objects
NUMBER = re.compile(r"^[0-9]{1,9}$")
# A seq as CouchDB 3 (opaque "N-..."), PouchDB Server (an integer) or PouchDB ("now") writes it.
SINCE = re.compile(r"^(now|[0-9]{1,20}(-[A-Za-z0-9_-]{1,8000})?)$")
REV = re.compile(r"^[0-9]{1,10}-[0-9A-Za-z]{1,128}$")
DDOC_FUNCTION = re.compile(r"^([^/]{1,200})/([^/]{1,200})$")  # `ddoc/name` of filter= or view=


def _refuse(name: str, zh_kind: str, en_kind: str) -> errors.CouchError:
    return errors.bad_request(f"参数 {name} 应为{zh_kind}",
                              f"Query parameter {name} must be {en_kind}.")


def _depth(value: Any) -> int:
    """How deeply a JSON value nests, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return deepest


def _finite(value: Any) -> bool:
    """No infinities (JSON `1e999`): they would be forwarded as `Infinity`, which is not JSON."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return False
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_value(name: str, raw: str) -> Any:
    """A parameter that carries JSON (a key, a list of keys...), parsed, or a 400."""
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _refuse(name, " JSON 值（例如 \"abc\" 或 [\"a\",1]）",
                      'a JSON value (e.g. "abc" or ["a",1])') from None
    if _depth(value) > MAX_JSON_DEPTH or not _finite(value):
        raise _refuse(name, f"嵌套不超过 {MAX_JSON_DEPTH} 层的有限 JSON 值",
                      f"a finite JSON value nested at most {MAX_JSON_DEPTH} deep")
    return value


# -- one check per kind: each returns the value to forward, or raises a 400 -----------------

def _boolean(name: str, raw: str) -> str:
    if raw not in ("true", "false"):
        raise _refuse(name, " true 或 false", "true or false")
    return raw


def _count(name: str, raw: str) -> str:
    if not NUMBER.match(raw):
        raise _refuse(name, "非负整数（最多 9 位）", "a non-negative integer (at most 9 digits)")
    return raw


def _any_json(name: str, raw: str) -> str:
    json_value(name, raw)
    return raw


def _json_list(name: str, raw: str) -> str:
    if not isinstance(json_value(name, raw), list):
        raise _refuse(name, " JSON 列表（例如 [\"a\",\"b\"]）", 'a JSON list (e.g. ["a","b"])')
    return raw


def _text_list(name: str, raw: str) -> str:
    value = json_value(name, raw)
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise _refuse(name, "文本的 JSON 列表（例如 [\"a\",\"b\"]）",
                      'a JSON list of strings (e.g. ["a","b"])')
    return raw


def _rev_list(name: str, raw: str) -> str:
    value = json_value(name, raw)
    if not isinstance(value, list) or not all(isinstance(r, str) and REV.match(r)
                                               for r in value):
        raise _refuse(name, "修订号的 JSON 列表（例如 [\"1-abc\"]）",
                      'a JSON list of revisions (e.g. ["1-abc"])')
    return raw


def _open_revs(name: str, raw: str) -> str:
    if raw in ("all", '"all"'):
        return "all"
    return _rev_list(name, raw)


def _rev(name: str, raw: str) -> str:
    if not REV.match(raw):
        raise _refuse(name, "修订号（例如 1-abc）", "a revision (e.g. 1-abc)")
    return raw


def _since(name: str, raw: str) -> str:
    """`now`, a number or an opaque seq; PouchDB sends a seq that is not a number as a JSON
    string, which is forwarded without its quotes (the store takes `"5"` for another seq)."""
    seq = raw
    if raw.startswith('"'):
        value = json_value(name, raw)
        seq = value if isinstance(value, str) else ""
    if not SINCE.match(seq):
        raise _refuse(name, "序列号（now、数字或 CouchDB 的序列号）",
                      "a seq (now, a number or a CouchDB seq)")
    return seq


def _text(name: str, raw: str) -> str:
    return raw  # forwarded as a string: any text is a valid document id or key string


def _ddoc_function(name: str, raw: str) -> str:
    if not DDOC_FUNCTION.match(raw):
        raise _refuse(name, "“设计文档/名称”的形式（例如 linli/by_type）",
                      "of the form ddoc/name (e.g. linli/by_type)")
    return raw


def _one_of(*allowed: str) -> Callable[[str, str], str]:
    def check(name: str, raw: str) -> str:
        if raw not in allowed:
            listed = "、".join(allowed)
            raise _refuse(name, f"以下之一：{listed}", f"one of {', '.join(allowed)}")
        return raw
    return check


Check = Callable[[str, str], str]

# Every query parameter an endpoint may forward, by kind. CouchDB 3's own kinds ("API Reference"
# of /{db}/_changes, /{db}/_all_docs, /{db}/_design/{ddoc}/_view/{view}, /{db}/{docid}).
KINDS: dict[str, Check] = {
    **dict.fromkeys(("include_docs", "descending", "revs", "latest", "conflicts", "attachments",
                     "att_encoding_info", "revs_info", "deleted_conflicts", "local_seq",
                     "reduce", "group", "inclusive_end", "update_seq", "sorted", "stable",
                     "new_edits"), _boolean),
    **dict.fromkeys(("limit", "skip", "heartbeat", "timeout", "group_level", "seq_interval",
                     "count"), _count),
    **dict.fromkeys(("key", "startkey", "endkey", "start_key", "end_key"), _any_json),
    **dict.fromkeys(("startkey_docid", "endkey_docid", "start_key_doc_id", "end_key_doc_id"),
                    _text),
    "keys": _json_list,
    "doc_ids": _text_list,
    "open_revs": _open_revs,
    "atts_since": _rev_list,
    "rev": _rev,
    "since": _since,
    "style": _one_of("main_only", "all_docs"),
    "feed": _one_of("normal", "longpoll"),  # PouchDB never asks for continuous
    "stale": _one_of("ok", "update_after", "false"),
    "update": _one_of("true", "false", "lazy"),
    "filter": _text,  # checked against the database by filters.py
    "view": _ddoc_function,
}

CHANGES = frozenset({"since", "limit", "heartbeat", "style", "include_docs", "conflicts", "feed",
                     "timeout", "descending", "attachments", "att_encoding_info", "filter",
                     "doc_ids", "view", "seq_interval"})
DOCUMENT = frozenset({"rev", "revs", "open_revs", "latest", "conflicts", "attachments",
                      "att_encoding_info", "revs_info", "deleted_conflicts", "local_seq",
                      "atts_since"})
ALL_DOCS = frozenset({"keys", "key", "startkey", "endkey", "start_key", "end_key",
                      "startkey_docid", "endkey_docid", "start_key_doc_id", "end_key_doc_id",
                      "limit", "skip", "descending", "include_docs", "conflicts", "inclusive_end",
                      "update_seq", "attachments"})
VIEW = ALL_DOCS | {"reduce", "group", "group_level", "stale", "update", "sorted", "stable"}
BULK_GET = frozenset({"revs", "latest", "attachments"})
ATTACHMENT = frozenset({"rev"})
WRITE = frozenset({"rev", "new_edits"})  # read by the gateway itself on PUT, POST and DELETE
assert KINDS.keys() >= CHANGES | DOCUMENT | VIEW | BULK_GET


def pick(query: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    """The parameters of `allowed` in `query`, each checked by its kind (a bad one is a 400 and
    nothing is forwarded); the others are dropped. A repeated parameter is checked every time
    and the last one is forwarded (the gateway refuses a repeated one before: one value each)."""
    picked: dict[str, str] = {}
    for name, raw in query.items():
        if name in allowed:
            picked[name] = KINDS[name](name, raw)
    return picked


def check(query: Mapping[str, str], *, skip: frozenset[str] = frozenset()) -> None:
    """Check every parameter of `query` the table knows (but those in `skip`), forwarding
    being the caller's: for the raw relay, which passes the query on as it came."""
    for name, raw in query.items():
        if name in KINDS and name not in skip:
            KINDS[name](name, raw)


# -- Mango selectors (`filter=_selector`) ------------------------------------------------------

COMPARISONS = frozenset({"$eq", "$gt", "$gte", "$lt", "$lte"})
TYPES = frozenset({"null", "boolean", "number", "string", "array", "object"})
NOTHING = {"$nor": [{}]}  # a selector no record matches: not (the selector every one matches)
# Mango operators the embedded store would run but that are not safe there: `$regex` compiles
# the client's pattern on the store's only thread (an invalid one throws, a catastrophic one
# hangs it); `$elemMatch`/`$allMatch` throw on arrays holding null; `$keyMapMatch`, `$text` and
# `$beginsWith` are unknown to it and throw.
UNSAFE_OPERATORS = frozenset({"$regex", "$elemMatch", "$allMatch", "$keyMapMatch", "$text",
                              "$beginsWith"})


def _selector_error(zh: str, en: str) -> errors.CouchError:
    return errors.bad_request(f"selector 无效：{zh}", f"Invalid selector: {en}")


def _operand(value: Any, op: str) -> Any:
    """An operand compared with document values: plain JSON without operators inside (the
    store would read a `$and` anywhere in it as one)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if any(k.startswith("$") for k in item):
                raise _selector_error(f"{op} 的值里不能有以 $ 开头的键",
                                      f"the value of {op} may not hold keys starting with $.")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _condition(op: str, value: Any) -> dict[str, Any]:
    """One field operator, checked; returned as the clause the store runs safely."""
    if op in COMPARISONS:
        return {op: _operand(value, op)}
    if op == "$exists" and isinstance(value, bool):
        return {op: value}
    if op == "$type" and isinstance(value, str) and value in TYPES:
        return {op: value}
    if op in ("$in", "$nin", "$all") and isinstance(value, list):
        return {op: _operand(value, op)}
    if op == "$size" and _is_int(value) and value >= 0:
        return {op: value}
    if (op == "$mod" and isinstance(value, list) and len(value) == 2
            and all(_is_int(v) for v in value) and value[0] != 0):
        return {op: value}
    if op in UNSAFE_OPERATORS:
        raise _selector_error(f"此处不支持 {op}", f"{op} is not supported here.")
    if op in ("$exists", "$type", "$in", "$nin", "$all", "$size", "$mod"):
        expected = {"$exists": ("true 或 false", "true or false"),
                    "$type": ("类型名（null、boolean、number、string、array、object）",
                              "a type name (null, boolean, number, string, array, object)"),
                    "$size": ("非负整数", "a non-negative integer"),
                    "$mod": ("[除数, 余数]，除数不为 0", "[divisor, remainder], divisor not 0")
                    }.get(op, ("列表", "a list"))
        raise _selector_error(f"{op} 的值应为{expected[0]}", f"{op} must be {expected[1]}.")
    raise _selector_error(f"未知的运算符 {op}", f"unknown operator {op}.")


def _field_clauses(path: str, value: Any, depth: int) -> list[dict[str, Any]]:
    """The clauses of one field: an implicit `$eq`, an operator object, or sub-fields written
    as a nested object (flattened to `a.b`: the store throws on them when the field is
    missing). `$ne` becomes `$not` of `$eq` (the store takes it as a list in some places and
    as a value in others); it and a field's `$not` also ask that the field exist, as in
    CouchDB, where no condition but `$exists: false` matches a missing field."""
    if depth > MAX_SELECTOR_DEPTH:
        raise _selector_error(f"嵌套超过 {MAX_SELECTOR_DEPTH} 层",
                              f"nested more than {MAX_SELECTOR_DEPTH} deep.")
    if not isinstance(value, dict):
        return [{path: {"$eq": _operand(value, "$eq")}}]
    operators = [k for k in value if k.startswith("$")]
    if operators and len(operators) != len(value):
        raise _selector_error(f"字段 {path} 混用了运算符和子字段",
                              f"field {path} mixes operators and sub-fields.")
    if not operators:
        clauses = []
        for key, sub in value.items():
            if not key:
                raise _selector_error("字段名不能为空", "a field name may not be empty.")
            clauses += _field_clauses(f"{path}.{key}", sub, depth + 1)
        return clauses
    clauses: list[dict[str, Any]] = []
    compared: dict[str, Any] = {}
    for op, operand in value.items():
        if op == "$ne":
            clauses.append({"$not": {path: {"$eq": _operand(operand, op)}}})
        elif op == "$not":
            clauses.append({"$not": _combine(_field_clauses(path, operand, depth + 1))})
        elif op == "$all" and operand == []:
            clauses.append(NOTHING)  # CouchDB: matches no record; the store: every array
        else:
            compared.update(_condition(op, operand))
    if clauses:
        clauses.append({path: {"$exists": True}})
    if compared:
        clauses.append({path: compared})
    return clauses


def _combine(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """All of `clauses` as one selector object. The store merges `$and` in ways that throw on
    some operands; "none of the negations" is the same conjunction, which it runs plainly."""
    if len(clauses) == 1:
        return clauses[0]
    if not clauses:
        return {}
    return {"$nor": [{"$not": c} for c in clauses]}


def _selector_clauses(selector: Any, depth: int) -> list[dict[str, Any]]:
    if depth > MAX_SELECTOR_DEPTH:
        raise _selector_error(f"嵌套超过 {MAX_SELECTOR_DEPTH} 层",
                              f"nested more than {MAX_SELECTOR_DEPTH} deep.")
    if not isinstance(selector, dict):
        raise _selector_error("应为 JSON 对象", "it must be a JSON object.")
    clauses: list[dict[str, Any]] = []
    for key, value in selector.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not value:
                raise _selector_error(f"{key} 的值应为非空的选择器列表",
                                      f"{key} must be a non-empty list of selectors.")
            parts = [_combine(_selector_clauses(s, depth + 1)) for s in value]
            if key == "$and":
                clauses += parts
            else:
                clauses.append({key: parts})
        elif key == "$not":
            clauses.append({"$not": _combine(_selector_clauses(value, depth + 1))})
        elif key.startswith("$"):
            raise _selector_error(f"未知的组合运算符 {key}", f"unknown combination operator {key}.")
        elif not key:
            raise _selector_error("字段名不能为空", "a field name may not be empty.")
        else:
            clauses += _field_clauses(key, value, depth + 1)
    return clauses


def selector(value: Any) -> str:
    """A `_changes` selector checked and rewritten into the form the embedded store runs without
    throwing, as the JSON to forward; a 400 naming what is wrong otherwise. CouchDB's meaning is
    kept: fields, `$and`/`$or`/`$nor`/`$not`, and the operators `$eq $ne $gt $gte $lt $lte
    $exists $type $in $nin $all $size $mod`."""
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode())
    except UnicodeEncodeError:
        raise _selector_error("含有不成对的代理字符（半个表情符号）",
                              "it holds a lone surrogate (half an emoji).") from None
    if size > MAX_SELECTOR_BYTES:
        raise _selector_error(f"超过 {MAX_SELECTOR_BYTES} 字节",
                              f"larger than {MAX_SELECTOR_BYTES} bytes.")
    if _depth(value) > MAX_JSON_DEPTH or not _finite(value):
        raise _selector_error("嵌套太深或含有无穷大的数",
                              "nested too deeply, or holds an infinite number.")
    checked = _combine(_selector_clauses(value, 0))
    if list(checked) == ["$not"]:  # the store rewrites a lone top-level $not, merging operators
        checked = {"$nor": [checked["$not"]]}
    return json.dumps(checked, ensure_ascii=False, separators=(",", ":"))
