"""Dump the public API of one release of NVIDIA's TensorRT Python bindings to JSON:

    LD_LIBRARY_PATH=DEST/<ver>/stubs PYTHONPATH=DEST/<ver> python tests/trt/_dump_api.py OUT.json

Run in its own process under one release's paths (scripts/fetch_trt_bindings.sh makes them); it imports nothing of
this project. It only introspects the module, so the null stub libraries suffice. pybind11 writes every signature
into the first line(s) of a callable's docstring ("name(self: tensorrt.X, arg: type) -> type", numbered under
"Overloaded function." when there are several), and properties are descriptors with or without `fset`; that is what
is read. The JSON (read by tests/trt/_api.py):

    {"module", "version", "python",
     "classes": {Name: {"bases": [Name], "init": [overload] | [] (no constructor) | null (inherited),
                        "methods": {name: [overload]}, "static_methods": {...},
                        "properties": {name: {"settable": bool, "type": text}}, "nested": [Name]}},
     "enums": {Name: {"members": {name: int}, "deprecated": [name]}},
     "functions": {name: [overload]}, "constants": {name: type name}, "aliases": {alias: Name}}

An overload is {"signature": text, "params": [{"name", "kind", "annotation", "has_default"}] | null, "returns"}, with
`self` first for methods; kind is POSITIONAL_OR_KEYWORD, POSITIONAL_ONLY, KEYWORD_ONLY, VAR_POSITIONAL, VAR_KEYWORD.
The output is derived from NVIDIA's binaries: it is written at test time and never committed.
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys

PREFIX = re.compile(r"\b(?:tensorrt_bindings|tensorrt)\.tensorrt\.|\b(?:tensorrt_bindings|tensorrt)\.")
DUNDERS = ("__call__", "__getitem__", "__setitem__", "__len__", "__iter__", "__enter__", "__exit__", "__del__")


def _clean(text: str | None) -> str | None:
    return PREFIX.sub("", text).strip() if text else text


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes ("->" is no closing bracket)."""
    parts, depth, quote, current = [], 0, None, []
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "([{<":
            depth += 1
        elif ch in ")]}>" and not (ch == ">" and text[i - 1 : i] == "-"):
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def _closing(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] in "([{<":
            depth += 1
        elif text[i] in ")]}>" and not (text[i] == ">" and text[i - 1] == "-"):
            depth -= 1
            if depth == 0:
                return i
    return -1


def parse_signature(signature: str) -> dict:
    """'name(a: T, b: U = d) -> R' -> its parameters (pybind11 writes no '/' or '*' unless the binding asks)."""
    signature = signature.strip()
    left = signature.find("(")
    right = _closing(signature, left) if left >= 0 else -1
    if right < 0:
        return {"signature": _clean(signature), "params": None, "returns": None}
    params, kind = [], "POSITIONAL_OR_KEYWORD"
    raw = _split_top(signature[left + 1 : right])
    if "/" in raw:
        cut = raw.index("/")
        raw = ["@" + p for p in raw[:cut]] + raw[cut + 1 :]
    for part in raw:
        this = kind
        if part.startswith("@"):
            part, this = part[1:], "POSITIONAL_ONLY"
        if part == "*":
            kind = "KEYWORD_ONLY"
            continue
        if part.startswith("**"):
            part, this = part[2:], "VAR_KEYWORD"
        elif part.startswith("*"):
            part, this, kind = part[1:], "VAR_POSITIONAL", "KEYWORD_ONLY"
        head, has_default, _default = part.partition("=")
        name, _, annotation = head.partition(":")
        params.append(
            {
                "name": name.strip(),
                "kind": this,
                "annotation": _clean(annotation) or None,
                "has_default": bool(has_default),
            }
        )
    rest = signature[right + 1 :].strip()
    return {"signature": _clean(signature), "params": params, "returns": _clean(rest[2:]) if rest[:2] == "->" else None}


def pybind_overloads(fn: object, name: str) -> list[dict]:
    doc = (getattr(fn, "__doc__", None) or "").strip()
    lines = doc.splitlines()
    if not lines:
        return [{"signature": None, "params": None, "returns": None}]
    if len(lines) > 1 and lines[1].strip() == "Overloaded function.":
        found = re.findall(rf"^\s*\d+\.\s+({re.escape(name)}\(.*)$", doc, re.M)
        return [parse_signature(s) for s in found]
    first = []
    for line in lines:  # a long signature may wrap: it runs to the first blank line
        if not line.strip():
            break
        first.append(line.strip())
    return [parse_signature(" ".join(first))]


def python_overloads(fn: object) -> list[dict]:
    """A plain Python function the package's __init__.py adds (nptype, volume)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return [{"signature": None, "params": None, "returns": None}]
    params = [
        {
            "name": p.name,
            "kind": p.kind.name,
            "annotation": None if p.annotation is p.empty else str(p.annotation),
            "has_default": p.default is not p.empty,
        }
        for p in signature.parameters.values()
    ]
    return [{"signature": fn.__name__ + str(signature), "params": params, "returns": None, "python": True}]


def overloads(fn: object, name: str) -> list[dict]:
    fn = getattr(fn, "__func__", fn)
    return python_overloads(fn) if inspect.isfunction(fn) else pybind_overloads(fn, name)


def is_enum(cls: type) -> bool:
    return isinstance(getattr(cls, "__members__", None), dict) and hasattr(cls, "value")


class Dumper:
    def __init__(self, trt: object) -> None:
        self.trt = trt
        self.seen: dict[int, str] = {}
        self.api: dict = {
            "module": trt.__name__,
            "version": getattr(trt, "__version__", None),
            "python": f"{sys.version_info[0]}.{sys.version_info[1]}",
            "classes": {},
            "enums": {},
            "functions": {},
            "constants": {},
            "aliases": {},
        }

    def visit(self, qualname: str, cls: type) -> None:
        if id(cls) in self.seen:
            if self.seen[id(cls)] != qualname:
                self.api["aliases"][qualname] = self.seen[id(cls)]
            return
        canonical = cls.__qualname__ if cls.__module__.startswith(self.trt.__name__) else qualname
        self.seen[id(cls)] = canonical
        if canonical != qualname:
            self.api["aliases"][qualname] = canonical
        (self.enum if is_enum(cls) else self.cls)(canonical, cls)

    def enum(self, name: str, cls: type) -> None:
        members = dict(cls.__members__)
        listed = (cls.__doc__ or "").partition("Members:")[2]  # "  NAME : text" entries, a text may wrap
        docs = dict(re.findall(r"^\s+(\w+) : (.*?)(?=\n\s*\n|\n\s+\w+ : |\Z)", listed, re.M | re.S))
        self.api["enums"][name] = {
            "members": {k: int(v) for k, v in members.items()},
            # "[DEPRECATED] Deprecated in TensorRT 10.12 ..." on the member itself; "(... [DEPRECATED] ...)" is an
            # aside about something else (MemoryPoolType.WORKSPACE's note on IAlgorithmSelector)
            "deprecated": [k for k in members if re.search(r"(?<!\()\[DEPRECATED\]", docs.get(k, ""), re.I)],
        }

    def cls(self, name: str, cls: type) -> None:
        entry: dict = {
            "bases": [b.__qualname__ for b in cls.__bases__ if b.__name__ not in ("object", "pybind11_object")],
            "init": None,
            "methods": {},
            "static_methods": {},
            "properties": {},
            "nested": [],
        }
        self.api["classes"][name] = entry
        for attr, value in cls.__dict__.items():
            kind = type(value).__name__
            if attr == "__init__":  # pybind11 classes without py::init keep object's slot wrapper
                entry["init"] = [] if kind == "wrapper_descriptor" else overloads(value, attr)
            elif isinstance(value, type):
                self.visit(f"{name}.{attr}", value)
                entry["nested"].append(self.seen[id(value)])
            elif isinstance(value, staticmethod):
                entry["static_methods"][attr] = overloads(value.__func__, attr)
            elif isinstance(value, property) or kind == "pybind11_static_property":
                if not attr.startswith("__"):
                    getter = (getattr(value.fget, "__doc__", None) or "").splitlines()
                    returns = re.match(r"\s*\w*\(.*?\)\s*->\s*(.+)", getter[0]) if getter else None
                    entry["properties"][attr] = {
                        "settable": value.fset is not None,
                        "type": _clean(returns.group(1)) if returns else None,
                    }
            elif callable(value) and (not attr.startswith("_") or attr in DUNDERS):
                entry["methods"][attr] = overloads(value, attr)

    def module(self) -> dict:
        for name in sorted(dir(self.trt)):
            value = getattr(self.trt, name)
            if name.startswith("_") or inspect.ismodule(value):
                continue
            if isinstance(value, type):
                self.visit(name, value)
            elif callable(value):
                self.api["functions"][name] = overloads(value, name)
            else:
                self.api["constants"][name] = type(value).__qualname__
        return self.api


def main(out: str) -> None:
    try:
        trt = importlib.import_module("tensorrt_bindings")
    except ImportError:
        trt = importlib.import_module("tensorrt")
    api = Dumper(trt).module()
    with open(out, "w", encoding="utf-8") as f:
        json.dump(api, f, indent=1, sort_keys=True)
    print(f"{api['module']} {api['version']}: {len(api['classes'])} classes, {len(api['enums'])} enums -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
