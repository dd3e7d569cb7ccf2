"""A captioned set for tests and benchmarks that ships with Python itself: the one-line
summaries of the standard library's docstrings (Python Software Foundation License 2.0,
which allows copying and derived works; Python's LICENSE file is the notice).

Read from the stdlib's source with ast (nothing is imported or run), in a fixed order
of modules, so one Python version always gives the same set. The lines read like short
captions: "Return a copy of the string with leading whitespace removed."
"""

from __future__ import annotations

import ast
import re
import sysconfig
from pathlib import Path

LICENCE = "PSF-2.0 (Python Software Foundation License), the Python standard library's"
# Modules with plain-English docstrings; the order fixes the order of the captions.
MODULES = (
    "argparse", "asyncio/base_events", "asyncio/events", "asyncio/streams", "asyncio/tasks",
    "base64", "bisect", "calendar", "cmd", "codecs", "collections/__init__", "configparser",
    "contextlib", "copy", "csv", "datetime", "decimal", "difflib", "email/message",
    "email/utils", "enum", "fractions", "ftplib", "functools", "gettext", "glob", "gzip",
    "heapq", "hmac", "html/parser", "http/client", "http/cookiejar", "http/server",
    "imaplib", "inspect", "ipaddress", "json/decoder", "json/encoder", "logging/__init__",
    "logging/handlers", "mailbox", "mimetypes", "ntpath", "os", "pathlib", "pickle",
    "pkgutil", "platform", "plistlib", "poplib", "posixpath", "pprint", "queue", "random",
    "reprlib", "sched", "selectors", "shlex", "shutil", "smtplib", "socket", "socketserver",
    "ssl", "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap",
    "threading", "timeit", "tokenize", "trace", "traceback", "turtle", "typing",
    "unittest/case", "urllib/parse", "urllib/request", "uuid", "warnings", "wave", "weakref",
    "webbrowser", "xml/dom/minidom", "zipfile/__init__", "zipfile", "zoneinfo/_zoneinfo",
)
_SENTENCE = re.compile(r"^[A-Z][A-Za-z0-9 ,;:'()/.-]{15,158}\.$")


def _summaries(source: str) -> list[str]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            doc = ast.get_docstring(node, clean=True)
            if doc:
                first = " ".join(doc.split("\n\n", 1)[0].split())
                if _SENTENCE.match(first) and "`" not in first:
                    lines.append(first)
    return lines


def stdlib_captions(limit: int | None = None) -> list[str]:
    """Up to limit distinct one-sentence docstring summaries of the stdlib, in a fixed
    order; fewer when this Python lacks some of MODULES' files."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: dict[str, None] = {}
    for name in MODULES:
        path = root / f"{name}.py"
        if not path.is_file():
            continue
        for line in _summaries(path.read_text(encoding="utf-8", errors="replace")):
            seen.setdefault(line, None)
            if limit is not None and len(seen) >= limit:
                return list(seen)
    return list(seen)
