#!/usr/bin/env python3
"""Writes testdata/wire/rejects/rejects.jsonl: malformed and invalid wire messages.

Every record is one message a node must ignore (or, for a few, accept without any
change of state). The file is generated so that hand-written JSON text inside JSON
strings stays readable here; the output is committed and is what the tests read.
Run from anywhere: python3 testdata/wire/make_rejects.py (standard library only).
See testdata/wire/README.md for the record format and placeholders.
"""

import base64
import json
import os

RECORDS = []

ALL = ["head", "root", "update_requests"]
UPDATES = ["head", "root"]


def add(name, channels, payload, follower, storage, why=None, note=None):
    """payload: str (UTF-8 text, placeholders allowed) or bytes (stored as base64)."""
    rec = {"name": name, "channels": channels}
    if isinstance(payload, bytes):
        rec["payload_b64"] = base64.b64encode(payload).decode()
    else:
        rec["payload"] = payload
    rec["follower"] = follower
    rec["storage"] = storage
    if why is not None:
        rec["why"] = why
    if note is not None:
        rec["note"] = note
    assert not any(r["name"] == name for r in RECORDS), name
    RECORDS.append(rec)


def obj(fields):
    """Compact JSON of an ordered list of (key, raw JSON text) pairs: lets a record
    hold duplicate keys, placeholders for numbers, and exact spellings."""
    def key(k):
        return k if k.startswith('"') else json.dumps(k)

    return "{" + ",".join(key(k) + ":" + v for k, v in fields) + "}"


def s(x):
    return json.dumps(x, ensure_ascii=False)


def patch(parent="{{HEAD}}", height="{{NEXT}}", ops=None, root="{{ROOT}}", extra=()):
    if ops is None:
        ops = '[{"op":"add","path":"/bad","value":1}]'
    fields = [
        ("type", s("patch")),
        ("root", s(root)),
        ("parent", s(parent)),
        ("height", height),
        ("ops", ops),
    ]
    return obj(fields + list(extra))


def ops(*items):
    return "[" + ",".join(items) + "]"


def stored(head="{{HEAD}}", height="{{HEIGHT}}", root="{{ROOT}}", extra=()):
    return obj(
        [("type", s("stored")), ("root", s(root)), ("head", s(head)), ("height", height)]
        + list(extra)
    )


def snapshot(head="{{HEAD}}", height="{{HEIGHT}}", config='{"x":1}', root="{{ROOT}}", extra=()):
    return obj(
        [
            ("type", s("snapshot")),
            ("root", s(root)),
            ("head", s(head)),
            ("height", height),
            ("config", config),
        ]
        + list(extra)
    )


GOOD = patch()  # a well-formed patch on the live head, for mutations below

# --- Not UTF-8, not JSON -------------------------------------------------------
add("not_utf8", ALL, b"\xff\xfe not utf-8", "malformed", "malformed", "not valid UTF-8")
add("overlong_utf8_slash", ALL, b'{"type":"patch\xc0\xaf"}', "malformed", "malformed", "UTF-8")
add("cesu8_surrogate", ALL, b'{"type":"\xed\xa0\x80"}', "malformed", "malformed", "UTF-8")
add("utf8_bom", ALL, "\ufeff" + GOOD, "malformed", "malformed", "byte order mark")
add("empty", ALL, "", "malformed", "malformed", "end of input")
add("whitespace_only", ALL, " \t\r\n", "malformed", "malformed", "end of input")
add("truncated_object", ALL, '{"type":"patch"', "malformed", "malformed", "invalid JSON")
add("truncated_patch", UPDATES, GOOD[:-7], "malformed", "malformed", "invalid JSON")
add("trailing_garbage", UPDATES, GOOD + "x", "malformed", "malformed", "trailing characters")
add("two_values", ALL, "{} {}", "malformed", "malformed", "trailing characters")
add("single_quotes", ALL, "{'type':'patch'}", "malformed", "malformed", "string key")
add("trailing_comma", UPDATES, GOOD[:-1] + ",}", "malformed", "malformed", "string key")
add("comment", ALL, "// hi\n" + GOOD, "malformed", "malformed", "expected a JSON value")
add("lone_surrogate", UPDATES, '{"type":"patch\\ud800"}', "malformed", "malformed", "surrogate")
add("invalid_escape", UPDATES, '{"type":"p\\x61tch"}', "malformed", "malformed", "escape")
add(
    "raw_control_char",
    UPDATES,
    patch(extra=[("meta", '{"m":"a\u0001b"}')]),
    "malformed",
    "malformed",
    "control character",
)
add("nan", UPDATES, stored(height="NaN"), "malformed", "malformed", "expected a JSON value")
add("infinity", UPDATES, patch(height="Infinity"), "malformed", "malformed", "JSON value")
add("leading_zero", UPDATES, patch(height="03"), "malformed", "malformed", "',' or '}'")
add("plus_sign", UPDATES, patch(height="+3"), "malformed", "malformed", "JSON value")

# --- Not a message ---------------------------------------------------------------
add("top_level_array", UPDATES, "[]", "malformed", "malformed", "is a JSON object")
add("top_level_string", UPDATES, '"patch"', "malformed", "malformed", "is a JSON object")
add("top_level_null", UPDATES, "null", "malformed", "malformed", "is a JSON object")
add("empty_object", UPDATES, "{}", "malformed", "malformed", '"type" is missing')
add("type_missing", UPDATES, '{"root":"{{ROOT}}","head":"{{HEAD}}","height":{{HEIGHT}}}',
    "malformed", "malformed", '"type" is missing')
add("type_not_string", UPDATES, '{"type":1,"root":"{{ROOT}}"}', "malformed", "malformed",
    '"type" is missing')
add("unknown_type", UPDATES, '{"type":"mystery","root":"{{ROOT}}"}', "malformed", "malformed",
    "unknown message type")
add("type_wrong_case", UPDATES, GOOD.replace('"patch"', '"Patch"', 1), "malformed", "malformed",
    "unknown message type")

# --- Duplicate keys -----------------------------------------------------------
add("duplicate_type", UPDATES, '{"type":"patch","type":"patch"}', "malformed", "malformed",
    "duplicate object key")
add(
    "duplicate_key_by_escape",
    UPDATES,
    patch(extra=[('"r\\u006fot"', s("{{ROOT}}"))]),
    "malformed",
    "malformed",
    "duplicate object key",
)
add(
    "duplicate_key_in_op",
    UPDATES,
    patch(ops='[{"op":"add","op":"remove","path":"/a","value":1}]'),
    "malformed",
    "malformed",
    "duplicate object key",
)
add(
    "duplicate_key_in_value",
    UPDATES,
    patch(ops='[{"op":"add","path":"/a","value":{"k":1,"k":2}}]'),
    "malformed",
    "malformed",
    "duplicate object key",
)

# --- Fields: unknown, missing, wrong types ----------------------------------------
add("unknown_field_patch", ["head"], patch(extra=[("signature", '"x"')]), "malformed",
    "malformed", "not allowed")
add("unknown_field_stored", ["root"], stored(extra=[("extra", "1")]), "malformed", "malformed",
    "not allowed")
add("unknown_field_snapshot", ["root"], snapshot(extra=[("extra", "1")]), "malformed",
    "malformed", "not allowed")
add("unknown_field_unknown", ["root"], '{"type":"unknown","root":"{{ROOT}}","x":null}',
    "malformed", "malformed", "not allowed")
add("missing_ops", ["head"], GOOD.replace(',"ops":[{"op":"add","path":"/bad","value":1}]', ""),
    "malformed", "malformed", '"ops" is missing')
add("missing_height", ["head"], GOOD.replace(',"height":{{NEXT}}', ""), "malformed", "malformed",
    '"height" is missing')
add("missing_parent", ["head"], GOOD.replace(',"parent":"{{HEAD}}"', ""), "malformed",
    "malformed", '"parent" is missing')
add("missing_root_stored", ["root"], '{"type":"stored","head":"{{HEAD}}","height":{{HEIGHT}}}',
    "malformed", "malformed", '"root" is missing')
add("snapshot_missing_config", ["root"],
    '{"type":"snapshot","root":"{{ROOT}}","head":"{{HEAD}}","height":{{HEIGHT}}}',
    "malformed", "malformed", '"config" is missing')
add("meta_not_object", ["head"], patch(extra=[("meta", '"by me"')]), "malformed", "malformed",
    '"meta" must be a JSON object')
add("meta_null", ["head"], patch(extra=[("meta", "null")]), "malformed", "malformed",
    '"meta" must be a JSON object')

# --- Signature members of the wrong shape (malformed whatever the trust set) ----------
add("sig_not_object", ["head"], patch(extra=[("sig", "1")]), "malformed", "malformed",
    '"sig" must be')
add("sig_key_too_short", ["head"],
    patch(extra=[("sig", '{"key":"abcd","sig":"%s"}' % ("00" * 64))]), "malformed",
    "malformed", '"sig" must be')
add("sig_extra_member", ["root"],
    stored(extra=[("sig", '{"key":"%s","sig":"%s","by":"me"}' % ("11" * 32, "00" * 64))]),
    "malformed", "malformed", '"sig" must be')

# --- Hashes and heights --------------------------------------------------------
add("parent_uppercase_hash", ["head"], patch(parent="{{HEAD_UPPER}}"), "malformed", "malformed",
    '"parent" is not a hash')
add("parent_short_hash", ["head"], patch(parent="abc123"), "malformed", "malformed",
    '"parent" is not a hash')
add("root_not_hex", ["head"], patch(root="g" * 64), "malformed", "malformed",
    '"root" is not a hash')
add("root_hash_as_number", ["head"], GOOD.replace('"root":"{{ROOT}}"', '"root":12'),
    "malformed", "malformed", '"root" is not a hash')
add("head_65_digits", ["root"], stored(head="{{HEAD}}0"), "malformed", "malformed",
    '"head" is not a hash')
add("height_string", ["head"], patch(height='"3"'), "malformed", "malformed",
    '"height" is not an integer')
add("height_negative", ["head"], patch(height="-1"), "malformed", "malformed",
    '"height" is not an integer')
add("height_fraction", ["head"], patch(height="2.5"), "malformed", "malformed",
    '"height" is not an integer')
add("height_beyond_2_53", ["head"], patch(height="9007199254740993"), "malformed", "malformed",
    "number out of range")
add("height_1e300", ["head"], patch(height="1e300"), "malformed", "malformed",
    "number out of range")
add("height_zero_on_root", ["root"], patch(parent="{{ROOT}}", height="0"), "malformed",
    "malformed", "height is at least 1")
add("height_one_parent_not_root", ["head"], patch(height="1"), "malformed", "malformed",
    "exactly when its parent is the root")
add("height_five_parent_root", ["root"], patch(parent="{{ROOT}}", height="5"), "malformed",
    "malformed", "exactly when its parent is the root")
add("height_2_53_exactly", ["head"], patch(height="9007199254740992"), "wrong_height",
    "wrong_height", "claims height 9007199254740992",
    note="decodes (2^53 is in range), then fails in context")
add("height_is_parent_height", ["head"], patch(height="{{HEIGHT}}"), "wrong_height",
    "wrong_height", "claims height")
add("height_skips_ahead", ["head"], patch(height="7"), "wrong_height", "wrong_height",
    "claims height 7")

# --- Numbers beyond 2^53 inside the ops ---------------------------------------
add("value_integer_2_64", ["head"],
    patch(ops='[{"op":"add","path":"/n","value":18446744073709551616}]'),
    "malformed", "malformed", "number out of range")
add("value_integer_2_53_plus_1", ["head"],
    patch(ops='[{"op":"add","path":"/n","value":-9007199254740993}]'),
    "malformed", "malformed", "number out of range")
add("value_1e400", ["head"], patch(ops='[{"op":"add","path":"/n","value":1e400}]'),
    "malformed", "malformed", "number out of range")
add("value_1E30", ["head"], patch(ops='[{"op":"add","path":"/n","value":1E30}]'),
    "malformed", "malformed", "number out of range")

# --- Ops that are not RFC 6902 ---------------------------------------------------
add("ops_object", ["head"], patch(ops='{"op":"add","path":"/a","value":1}'), "malformed",
    "malformed", "ops must be a JSON array")
add("ops_null", ["head"], patch(ops="null"), "malformed", "malformed", "ops must be a JSON array")
add("op_not_object", ["head"], patch(ops='["add"]'), "malformed", "malformed", "invalid ops")
add("op_unknown", ["head"], patch(ops='[{"op":"frobnicate","path":"/a"}]'), "malformed",
    "malformed", "invalid ops")
add("op_missing_value", ["head"], patch(ops='[{"op":"add","path":"/a"}]'), "malformed",
    "malformed", "invalid ops")
add("op_move_missing_from", ["head"], patch(ops='[{"op":"move","path":"/a"}]'), "malformed",
    "malformed", "invalid ops")
add("op_name_not_string", ["head"], patch(ops='[{"op":1,"path":"/a","value":1}]'), "malformed",
    "malformed", "invalid ops")
add("pointer_no_slash", ["head"], patch(ops='[{"op":"add","path":"a","value":1}]'), "malformed",
    "malformed", "invalid ops")
add("pointer_bad_escape", ["head"], patch(ops='[{"op":"add","path":"/~2","value":1}]'),
    "malformed", "malformed", "invalid ops")
add("pointer_trailing_tilde", ["head"], patch(ops='[{"op":"remove","path":"/commands~"}]'),
    "malformed", "malformed", "invalid ops")
add("from_pointer_invalid", ["head"], patch(ops='[{"op":"copy","from":"commands","path":"/c"}]'),
    "malformed", "malformed", "invalid ops")

# --- Ops that fail (atomically) ---------------------------------------------------
add("op_remove_missing", ["head"], patch(ops='[{"op":"remove","path":"/missing"}]'),
    "ops_failed", "ops_failed", "op 0")
add("op_test_fails", ["head"],
    patch(ops='[{"op":"test","path":"/commands/!hi","value":"bye"}]'),
    "ops_failed", "ops_failed", "op 0")
add("op_array_index_out_of_range", ["head"],
    patch(ops='[{"op":"add","path":"/timers/5","value":1}]'),
    "ops_failed", "ops_failed", "op 0")
add("op_second_fails_first_undone", ["head"],
    patch(ops=ops('{"op":"add","path":"/x","value":1}', '{"op":"remove","path":"/missing"}')),
    "ops_failed", "ops_failed", "op 1", note="atomic: /x must not appear")
add("op_move_into_own_child", ["head"],
    patch(ops='[{"op":"move","from":"/commands","path":"/commands/inner"}]'),
    "ops_failed", "ops_failed", "op 0")
add("op_move_to_root_then_fail", ["head"],
    patch(ops=ops('{"op":"move","from":"/commands","path":""}',
                  '{"op":"test","path":"/zz","value":1}')),
    "ops_failed", "ops_failed", "op 1",
    note="json_patch's own rollback hits unreachable! here; ours must not")
add("op_add_under_scalar", ["head"],
    patch(ops='[{"op":"add","path":"/connection/platform/x","value":1}]'),
    "ops_failed", "ops_failed", "op 0")

# --- Resulting document over the caps ---------------------------------------------
# 61 levels is the deepest value a patch message at max_depth 64 can carry (patch
# object, ops array, op object around it); two of them stacked exceed the cap.
DEEP61 = '{"a":' * 60 + "{}" + "}" * 60
add("document_too_deep", ["head"],
    patch(ops=ops('{"op":"add","path":"/d","value":%s}' % DEEP61,
                  '{"op":"add","path":"/d%s/b","value":%s}' % ("/a" * 60, DEEP61))),
    "document_too_deep", "document_too_deep", "levels deep")
add("document_too_large", ["head"],
    patch(ops='[{"op":"add","path":"/big","value":"{{REP:1048000:x}}"}]'),
    "document_too_large", "document_too_large", "exceeds the limit of 1048064",
    note="the message fits in 1 MiB; the document it makes does not fit in a snapshot")
# Issue 11: copy/remove pairs of a 30 KB value. Every op is valid and the document
# stays small, but each copy is charged its 30 KB: the 11th goes over the budget
# (2 x document + 8 x patch + 64 KiB), long before ops x document of work is done.
PAIR = '{"op":"copy","from":"/big","path":"/c"},{"op":"remove","path":"/c"}'
add("patch_too_costly", ["head"],
    patch(ops=ops('{"op":"add","path":"/big","value":"{{REP:30000:x}}"}', *[PAIR] * 16)),
    "patch_too_costly", "patch_too_costly", "more than the budget",
    note="the budget depends only on the patch and the document, so every node refuses it")

# --- Too deep, too large as messages ----------------------------------------------
add("message_depth_65", UPDATES,
    patch(ops='[{"op":"add","path":"/d","value":{{REP:62:[}}{{REP:62:]}}}]'),
    "malformed", "malformed", "nests deeper than 64")
add("message_depth_100000", ALL, "{{REP:100000:[}}{{REP:100000:]}}", "malformed", "malformed",
    "nests deeper")
add("message_too_large", ALL, GOOD + "{{REP:1048576: }}", "malformed", "malformed",
    "exceeds the limit of 1048576", note="rejected by size before parsing")

# --- Patches in the wrong place ---------------------------------------------------
add("parent_not_channel", ["head"], patch(parent="{{PREV}}", height="{{HEIGHT}}"),
    "channel_mismatch", "channel_mismatch", "came on the channel of")
add("parent_root_on_head_channel", ["head"], patch(parent="{{ROOT}}", height="1"),
    "channel_mismatch", "channel_mismatch", "came on the channel of")
add("patch_for_other_root", ["head"], patch(root="{{OTHER_ROOT}}"), "root_mismatch",
    "unknown_root", "is for root", note="storage files it under the other root, which it does not know")
add("stale_on_old_head", ["old"], patch(parent="{{PREV}}", height="{{HEIGHT}}"), "stale",
    "stale", note="a raced loser: counted as stale, not ignored")
add("stale_on_root", ["root"], patch(parent="{{ROOT}}", height="1"), "stale", "stale",
    note="a late first patch: the follower is past the root")

# --- Answers and notices that do not belong -------------------------------------
add("snapshot_for_other_root", ["root"], snapshot(root="{{OTHER_ROOT}}", head="{{RANDOM}}"),
    "root_mismatch", "wrong_channel_kind", "is for root")
add("snapshot_on_head_channel", ["head"], snapshot(head="{{RANDOM}}", height="9"),
    "wrong_channel_kind", "wrong_channel_kind", "does not belong on this channel")
add("stored_on_head_channel", ["head"], stored(), "wrong_channel_kind", "wrong_channel_kind",
    "does not belong on this channel")
add("unknown_on_head_channel", ["head"], '{"type":"unknown","root":"{{ROOT}}"}',
    "wrong_channel_kind", "wrong_channel_kind", "does not belong on this channel")
add("stored_for_other_root", ["root"], stored(root="{{OTHER_ROOT}}"), "root_mismatch",
    "wrong_channel_kind", "is for root")
add("unknown_for_other_root", ["root"], '{"type":"unknown","root":"{{OTHER_ROOT}}"}',
    "root_mismatch", "wrong_channel_kind", "is for root")
add("root_snapshot_not_root_config", ["root"],
    snapshot(head="{{ROOT}}", height="0", config='{"connection":{}}'),
    "malformed", "malformed", "height 0 must hold the root configuration")
add("snapshot_head_is_root_above_0", ["root"], snapshot(head="{{ROOT}}", height="3"),
    "malformed", "malformed", "height 0 must hold the root configuration")

# --- Forged notices and answers that are well-formed --------------------------------
add("forged_stored_not_on_chain", ["root"], stored(head="{{RANDOM}}", height="1"), "resync",
    "none", note="storage names another head at height 1: the follower re-syncs, and keeps its "
    "state until storage's snapshot says otherwise")
add("forged_stored_far_ahead", ["root"], stored(head="{{RANDOM}}", height="999"), "resync",
    "none", note="the follower asks storage; storage reloads its own store and finds nothing new")
add("forged_unknown_for_our_root", ["root"], '{"type":"unknown","root":"{{ROOT}}"}', "none",
    "none", note="a loaded follower ignores it; storage ignores answers")
add("stale_root_snapshot", ["root"], snapshot(head="{{ROOT}}", height="0",
    config="{{ROOT_CONFIG}}"), "none", "none",
    note="storage's answer to an old request: the follower's head is confirmed, so it is stale")

# --- Load requests ---------------------------------------------------------------
add("request_word", ["update_requests"], "hello", None, "malformed", "expected a JSON value")
add("request_hash_uppercase", ["update_requests"], "{{ROOT_UPPER}}", None, "malformed",
    "invalid JSON")
add("request_hash_as_json_string", ["update_requests"], '"{{ROOT}}"', None, "malformed",
    "root configuration")
add("request_hash_newline", ["update_requests"], "{{ROOT}}\n", None, "malformed", "invalid JSON")
add("request_hash_63_digits", ["update_requests"], "{{ROOT_63}}", None, "malformed",
    "invalid JSON")
add("request_extra_member", ["update_requests"], '{"connection":{},"x":1}', None, "malformed",
    "root configuration")
add("request_connection_not_object", ["update_requests"], '{"connection":1}', None, "malformed",
    "root configuration")
add("request_array", ["update_requests"], "[1,2,3]", None, "malformed", "root configuration")
add("request_duplicate_key", ["update_requests"], '{"connection":{"a":1,"a":2}}', None,
    "malformed", "duplicate object key")
add("request_number_beyond_2_53", ["update_requests"],
    '{"connection":{"id":12345678901234567890}}', None, "malformed", "number out of range")
add("request_depth_64", ["update_requests"], '{"connection":{"a":{{REP:62:[}}{{REP:62:]}}}}',
    None, "malformed", "too large or too deep",
    note="parses (64 levels) but could never travel inside a snapshot")
add("request_root_config_over_4_kib", ["update_requests"],
    '{"connection":{"x":"{{REP:4074:a}}"}}', None, "root_config_too_large",
    "root configuration of 4097 canonical bytes exceeds the limit of 4096",
    note="a root configuration is connection info: at most 4096 canonical bytes (issue 11)")

# --- Channels that are not tikaconf's --------------------------------------------
add("channel_uppercase_hash", ["updates:{{ROOT_UPPER}}"], stored(), "foreign_channel",
    "foreign_channel", "not a tikaconf channel")
add("channel_not_a_hash", ["updates:nothex"], GOOD, "foreign_channel", "foreign_channel",
    "not a tikaconf channel")
add("channel_hash_65", ["updates:{{HEAD}}0"], GOOD, "foreign_channel", "foreign_channel",
    "not a tikaconf channel")
add("channel_other_namespace", ["prod:updates:{{HEAD}}"], GOOD, "foreign_channel",
    "foreign_channel", "not a tikaconf channel", note="over Redis neither node hears it")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "rejects", "rejects.jsonl")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for rec in RECORDS:
            f.write(json.dumps(rec, ensure_ascii=True, sort_keys=False) + "\n")
    print(f"wrote {len(RECORDS)} records to {out}")


if __name__ == "__main__":
    main()
