"""Bad requests generated from the .proto descriptors, the way an outside reviewer would write
them: every field of every request message, one bad value at a time on top of a request that
is otherwise fine, plus empty requests and bytes that are not protobuf at all.

Deterministic: the values are fixed lists and the random bytes come from a seeded Random.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

STRINGS = [
    ("empty", ""), ("space", " "), ("nul", "a\x00b"), ("newline", "a\nb"),
    ("129 chars", "a" * 129), ("300 chars", "a" * 300), ("5000 chars", "x" * 5000),
    ("1 MiB", "y" * (1 << 20)), ("traversal", "../../etc/passwd"), ("absolute", "/etc/passwd"),
    ("dotdot", ".."), ("100 CJK", "夕" * 100), ("emoji", "🙂🙂"), ("rtl override", "a\u202eb"),
    ("url-encoded", "%2e%2e%2fx"), ("backslashes", "..\\..\\x"), ("dash", "-rf"),
    ("nan", "nan"), ("hash only", "#"),
]
# Only loopback or names that cannot resolve: the test never reaches outside the machine.
# {live} is a server on 127.0.0.1 that answers; 127.0.0.1:1 refuses connections.
URLS = [
    ("empty", ""), ("5000 chars", "http://{live}/" + "x" * 5000),
    ("refused port", "http://127.0.0.1:1/"), ("https to http", "https://{live}/x"),
    ("file", "file:///etc/passwd"), ("ftp", "ftp://{live}/"), ("ipv6", "http://[::1]:1/"),
    ("javascript", "javascript:alert(1)"), ("userinfo", "http://user:pw@{live}/"),
    ("no scheme", "{live}"), ("traversal", "http://{live}/../../etc"),
    ("port 99999", "http://127.0.0.1:99999/"), ("nul", "http://{live}/\x00"),
    ("space", " "), ("unicode host", "http://夕.invalid:1/"), ("query", "http://{live}/?x=1#y"),
]
SPECS = [
    ("empty", ""), ("no kind", "nothing"), ("unknown kind", "gopher:x"),
    ("urls environ", "urls:/proc/self/environ"), ("urls shadow", "urls:/etc/shadow"),
    ("folder etc", "folder:/etc"), ("folder traversal", "folder:../../.."),
    ("zip dev null", "zip:/dev/null"), ("mastodon loopback", "mastodon:http://127.0.0.1:1"),
    ("mastodon file", "mastodon:file:///etc/passwd"), ("x empty", "x:@"),
    ("x 300 chars", "x:@" + "a" * 300), ("instagram sideways", "instagram:sideways"),
    ("5000 chars", "folder:" + "a" * 5000), ("nul", "folder:/tmp\x00x"),
]
PATHS = [
    ("empty", ""), ("shadow", "/etc/shadow"), ("environ", "/proc/self/environ"),
    ("dev null", "/dev/null"), ("traversal", "../../.."), ("5000 chars", "/" + "a" * 5000),
    ("nul", "/tmp/\x00"), ("300 CJK", "夕" * 300),
]
KEYS = [
    ("traversal", "../../etc/passwd"), ("absolute", "/etc/passwd"),
    ("long segment", "raw/" + "a" * 300 + ".png"), ("gallery page", "posts/index.html"),
    ("missing", "raw/nope/nope.png"), ("empty", ""),
]
NUMERIC_STRINGS = [
    ("empty", ""), ("nan", "nan"), ("inf", "inf"), ("-1", "-1"), ("0", "0"), ("1e400", "1e400"),
    ("10000000", "10000000"), ("5000 chars", "9" * 5000), ("hex", "0x10"), ("CJK", "夕"),
]
INTS = {
    FieldDescriptor.TYPE_INT32: [-1, 0, -(2**31), 2**31 - 1],
    FieldDescriptor.TYPE_SINT32: [-1, 0, -(2**31), 2**31 - 1],
    FieldDescriptor.TYPE_INT64: [-1, 0, -(2**63), 2**63 - 1],
    FieldDescriptor.TYPE_SINT64: [-1, 0, -(2**63), 2**63 - 1],
    FieldDescriptor.TYPE_UINT32: [0, 2**32 - 1],
    FieldDescriptor.TYPE_UINT64: [0, 2**64 - 1],
}
DOUBLES = [math.nan, math.inf, -math.inf, -1.0, 1e308]
ENUMS = [99, -5, 2**31 - 1]


@dataclass(frozen=True)
class Case:
    method: MethodDescriptor
    field: str  # dotted path of the bad field; "request" for bytes that are not protobuf
    label: str
    payloads: tuple[bytes, ...]  # one request, or a client stream's messages
    names: tuple[str, ...]  # the status message must contain one of these

    @property
    def rpc(self) -> str:
        return f"{self.method.containing_service.name}.{self.method.name}"


Setter = Callable[[Message], None]


def _strings_for(field: FieldDescriptor, live: str) -> list[tuple[str, str]]:
    if field.name == "spec":
        return SPECS
    if "url" in field.name:
        return [(label, url.replace("{live}", live)) for label, url in URLS]
    if field.name == "path":
        return PATHS
    if field.name.endswith("_keys") or field.name.endswith("_key"):
        return KEYS + STRINGS[:8]
    return STRINGS


def _scalar_values(field: FieldDescriptor, live: str) -> list[tuple[str, object]]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _strings_for(field, live)
    if kind in INTS:
        return [(str(v), v) for v in INTS[kind]]
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return [(repr(v), v) for v in DOUBLES]
    if kind == FieldDescriptor.TYPE_ENUM:  # every value it has (each target, each mode)
        return [(f"enum {v.name}", v.number) for v in field.enum_type.values] + \
            [(f"enum {v}", v) for v in ENUMS]
    if kind == FieldDescriptor.TYPE_BOOL:
        return [("true", True)]
    if kind == FieldDescriptor.TYPE_BYTES:
        return [("empty", b""), ("1 MiB", b"\0" * (1 << 20))]
    return []


def _map_cases(field: FieldDescriptor, current: dict) -> Iterator[tuple[str, str, dict]]:
    """(label, map key named by the case or '', the whole map) for a map<string, ...> field."""
    value_field = field.message_type.fields_by_name["value"]
    numeric = value_field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
    good_value = next(iter(current.values()), 1.0 if numeric else "1")
    for label, key in [("empty key", ""), ("5000-char key", "k" * 5000),
                       ("traversal key", "../k"), ("unknown key", "no_such_name_夕")]:
        yield label, key, {**current, key: good_value}
    bad_values = [(repr(v), v) for v in DOUBLES] if numeric else NUMERIC_STRINGS
    for key in list(current) or ["x"]:
        for label, value in bad_values:
            yield f"{key}={label}", key, {**current, key: value}


def _repeated_values(field: FieldDescriptor, live: str) -> list[tuple[str, list]]:
    if field.type != FieldDescriptor.TYPE_STRING:
        return [(f"[{label}]", [value]) for label, value in _scalar_values(field, live)[:3]]
    elements = _strings_for(field, live)[:8]
    return [(f"[{label}]", [value]) for label, value in elements] + [
        ("10001 entries", ["a"] * 10_001)]


def _navigate(message: Message, path: list[str]) -> Message:
    for name in path:
        message = getattr(message, name)
    return message


def _field_cases(base: Message, descriptor: Descriptor, path: list[str], depth: int,
                 live: str, same_branch: bool) -> Iterator[tuple[list[str], str, Setter, str]]:
    """(field path, label, how to set the bad value on a copy of base, other names the
    refusal may give: the map key, or the fields inside an unset message; space-separated).
    same_branch: leave oneof members other than the one base has set alone (a stream's
    messages each play a part; switching one's part is a different protocol error)."""
    for field in descriptor.fields:
        here = [*path, field.name]
        holder = _navigate(base, path)
        oneof = field.containing_oneof
        if same_branch and oneof is not None and holder.WhichOneof(oneof.name) not in (
                None, field.name):
            continue
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            current = dict(getattr(holder, field.name))
            for label, key, value in _map_cases(field, current):
                def set_map(m, p=path, n=field.name, v=value):
                    target = getattr(_navigate(m, p), n)
                    target.clear()
                    target.update(v)
                yield here, label, set_map, key
        elif field.is_repeated and field.type == FieldDescriptor.TYPE_MESSAGE:
            def add_empty(m, p=path, n=field.name):
                getattr(_navigate(m, p), n).add()
            yield here, "[empty message]", add_empty, ""
        elif field.is_repeated:
            for label, values in _repeated_values(field, live):
                def set_list(m, p=path, n=field.name, v=values):
                    target = getattr(_navigate(m, p), n)
                    del target[:]
                    target.extend(v)
                yield here, label, set_list, ""
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            def clear(m, p=path, n=field.name):
                _navigate(m, p).ClearField(n)

            def empty(m, p=path, n=field.name):
                target = _navigate(m, p)
                target.ClearField(n)
                getattr(target, n).SetInParent()
            # A refusal of a missing or empty message may name a field inside it.
            inner = " ".join(f.name for f in field.message_type.fields)
            yield here, "unset", clear, inner
            yield here, "empty message", empty, inner
            if depth < 3:
                yield from _field_cases(base, field.message_type, here, depth + 1, live,
                                        same_branch)
        else:
            for label, value in _scalar_values(field, live):
                def set_value(m, p=path, n=field.name, v=value):
                    setattr(_navigate(m, p), n, v)
                yield here, label, set_value, ""


def _junk(rng: random.Random, base: bytes) -> list[tuple[str, bytes]]:
    return [
        ("64 random bytes", bytes(rng.randrange(256) for _ in range(64))),
        ("all 0xff", b"\xff" * 16),
        ("truncated", base + b"\x0a\x7f"),
        ("field 1 not UTF-8", b"\x0a\x02\xff\xfe"),
    ]


def cases_for(method: MethodDescriptor, base: Message | Sequence[Message],
              live: str) -> list[Case]:
    """Every generated bad request for method, each from a copy of base (a good request, or
    a client stream's good messages: one message is changed at a time); live is host:port
    of a loopback server that answers, for URL fields."""
    stream = list(base) if isinstance(base, list | tuple) else [base]
    good = [m.SerializeToString() for m in stream]
    cases = []
    for index, original in enumerate(stream):
        where = f"#{index} " if len(stream) > 1 else ""
        for path, label, setter, key in _field_cases(original, method.input_type, [], 0, live,
                                                     same_branch=len(stream) > 1):
            message = type(original)()
            message.CopyFrom(original)
            try:
                setter(message)
            except (ValueError, TypeError):  # the value cannot even be put in this field
                continue
            names = {path[0], path[-1], ".".join(path), *key.split(" ")} - {""}
            payloads = (*good[:index], message.SerializeToString(), *good[index + 1:])
            cases.append(Case(method, ".".join(path), where + label, payloads,
                              tuple(sorted(names))))
    top_level = tuple(f.name for f in method.input_type.fields)
    cases.append(Case(method, "(all)", "empty request", (b"",), (*top_level, "request")))
    rng = random.Random(method.full_name)
    for label, payload in _junk(rng, good[0]):
        try:
            type(stream[0]).FromString(payload)
            continue  # happens to parse (e.g. field 1 is no string): not malformed
        except Exception:
            cases.append(Case(method, "request", label, (payload, *good[1:]), ("request",)))
    return cases
