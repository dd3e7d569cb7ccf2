"""What every request passes before a servicer sees it: it parses, and no field is oversized.

gRPC turns an exception in a request deserializer into INTERNAL ("Exception deserializing
request!"), so the checked deserializer never raises: it hands over a Refused in place of
the request, and the server's wrappers answer INVALID_ARGUMENT with its message. The
bounds here are the outer ones every field gets; the core checks tighter ones per field
(ids 128 characters, hashtags 100, storage keys 1024 bytes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from socialgan import errors

# Any string in any request: longer than any URL, path or caption input we accept.
MAX_STRING_CHARS = 4_096
# Entries of any repeated or map field (an inline URL list is the longest legitimate one;
# longer lists go in a file).
MAX_REPEATED = 10_000


@dataclass(frozen=True)
class Refused:
    """Stands in for a request that is malformed or oversized."""

    field: str
    problem: str

    def error(self) -> errors.InvalidArgument:
        return errors.InvalidArgument(self.field, self.problem)


def _string_problem(value: str, path: str) -> Refused | None:
    if len(value) > MAX_STRING_CHARS:
        return Refused(path, f"is {len(value)} characters long; at most {MAX_STRING_CHARS}")
    return None


def _value_problem(field: FieldDescriptor, value, path: str) -> Refused | None:
    if field.type == FieldDescriptor.TYPE_STRING:
        return _string_problem(value, path)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return oversized_field(value, f"{path}.")
    return None


def oversized_field(message: Message, prefix: str = "") -> Refused | None:
    """The first field of message (nested ones too) that is longer than the bounds allow."""
    for field, value in message.ListFields():
        path = prefix + field.name
        if not field.is_repeated:
            problem = _value_problem(field, value, path)
        elif len(value) > MAX_REPEATED:
            problem = Refused(path, f"has {len(value)} entries; at most {MAX_REPEATED}")
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            problem = None
            for key, item in value.items():
                if isinstance(key, str) and len(key) > MAX_STRING_CHARS:
                    problem = Refused(path, f"has a key of {len(key)} characters; "
                                            f"at most {MAX_STRING_CHARS}")
                else:
                    entry = f"{path}[{errors.quote(key) if isinstance(key, str) else key}]"
                    problem = _value_problem(value_field, item, entry)
                if problem:
                    break
        else:
            problem = None
            for index, item in enumerate(value):
                if problem := _value_problem(field, item, f"{path}[{index}]"):
                    break
        if problem:
            return problem
    return None


def checked_deserializer(deserialize: Callable[[bytes], Message]) -> Callable[[bytes], object]:
    """deserialize, except that bytes that do not parse, or parse into an oversized request,
    become a Refused instead of an exception."""
    message_type = getattr(deserialize, "__self__", None)
    name = getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", "protobuf")

    def parse(data: bytes) -> object:
        try:
            request = deserialize(data)
        except Exception as exc:  # DecodeError, invalid UTF-8 in a string field, ...
            return Refused("request", f"is not a valid {name} message "
                                      f"({type(exc).__name__}, {len(data)} bytes)")
        if isinstance(request, Message):
            return oversized_field(request) or request
        return request

    return parse


def checked_stream(requests: Iterable[object]) -> Iterator[object]:
    """A client stream's requests, raising InvalidArgument at the first refused one."""
    for request in requests:
        if isinstance(request, Refused):
            raise request.error()
        yield request
