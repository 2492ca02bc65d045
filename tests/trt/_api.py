"""One TensorRT release's Python API, as tests/trt/_dump_api.py dumped it from NVIDIA's bindings, and the two checks
made against it:

- `Api.check(use)`: would the real bindings accept this use of a name (a module attribute, an enum member, a method
  call with these arguments, a property read or write)? Calls are matched the way pybind11 dispatches them: by
  arity and keyword names against each overload (a parameter pybind11 named `argN` takes no keyword), and by type
  where the annotation names a TensorRT enum or class (pybind11 refuses a BuilderFlag where a DataType is asked) or a
  plain int, str or float (types are checked nowhere else).
- `surface_problems(standin, api)`: every class, method signature, property (read-only or settable) and enum member
  the recording stand-in defines exists, alike, in the release; so a call the real API would reject fails on the
  stand-in too.
"""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path
from typing import Any, NamedTuple

MODULE = "tensorrt"
_UNNAMED = re.compile(r"^arg\d+$")
_OPTIONAL = re.compile(r"^(?:Optional\[(.+)\]|Union\[(.+), None\])$")
_INTS = {"int", "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc"}
_BUFFERS = {"bytes", "bytearray", "memoryview", "ndarray", "IHostMemory"}
_PLAIN = {"SupportsInt": "int", "SupportsFloat": "float", "Buffer": "buffer"}  # 11.x writes typing's names
# Conversions the bindings declare: py::implicitly_convertible<std::vector<int32_t or int64_t>, Dims> (and Dims2,
# Dims3, Dims4, DimsHW) and <py::array, Weights> (python/src/infer/pyFoundationalTypes.cpp, release/8.6 to 11.1).
_IMPLICIT = {
    **dict.fromkeys(("Dims", "Dims2", "Dims3", "Dims4", "DimsHW"), {"tuple", "list"}),
    "Weights": {"ndarray"},
}


class Use(NamedTuple):
    """One use of a TensorRT name, as the recording stand-in saw it.

    owner: "tensorrt" (the module), a class or an enum (the release's name for it); action: "get" (an attribute of
    the module or a class), "read" / "set" (a property of an object), "call" (a method, a function or, as
    `__init__`, a constructor), "missing" (a lookup that found nothing: the release must lack the name too).
    `args` are the type names of the positional arguments, `keywords` (name, type name) pairs.
    """

    owner: str
    member: str
    action: str
    args: tuple[str, ...] = ()
    keywords: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        where = self.member if self.owner == MODULE else f"{self.owner}.{self.member}"
        if self.action != "call":
            return f"{where} ({self.action})"
        arguments = [*self.args, *(f"{k}={t}" for k, t in self.keywords)]
        return f"{where}({', '.join(arguments)})"


class Api:
    def __init__(self, data: dict) -> None:
        self.data = data
        self.version: str = data.get("version") or "?"
        self.classes: dict = data["classes"]
        self.enums: dict = data["enums"]
        self.aliases: dict = data.get("aliases", {})

    @classmethod
    def load(cls, path: Path) -> Api:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    # --- lookups ----------------------------------------------------------------------------------------------

    def canon(self, name: str) -> str:
        name = re.sub(r"^(?:tensorrt_bindings|tensorrt|trt)\.", "", name)
        return self.aliases.get(name, name)

    def mro(self, cls: str) -> list[str]:
        """The class and its bases, nearest first."""
        found, todo = [], [self.canon(cls)]
        while todo:
            current = todo.pop(0)
            if current in self.classes and current not in found:
                found.append(current)
                todo.extend(self.canon(b) for b in self.classes[current]["bases"])
        return found

    def top_level(self, name: str) -> str | None:
        """What a module attribute is: class, enum, function, constant; None when the release has no such name."""
        name = self.canon(name)
        for kind, table in (
            ("class", self.classes),
            ("enum", self.enums),
            ("function", self.data["functions"]),
            ("constant", self.data["constants"]),
        ):
            if name in table:
                return kind
        return None

    def member(self, owner: str, name: str) -> tuple[str, Any] | None:
        """(kind, entry) of `owner.name`: enum_member, constructor, method, static_method, property or nested."""
        owner = self.canon(owner)
        if owner in self.enums:
            members = self.enums[owner]["members"]
            return ("enum_member", members[name]) if name in members else None
        for cls in self.mro(owner):
            entry = self.classes[cls]
            if name == "__init__" and entry["init"] is not None:
                return ("constructor", entry["init"]) if entry["init"] else None
            for section, kind in (
                ("methods", "method"),
                ("static_methods", "static_method"),
                ("properties", "property"),
            ):
                if name in entry[section]:
                    return kind, entry[section][name]
            nested = self.canon(f"{cls}.{name}")
            if nested in self.enums or nested in self.classes:
                return "nested", nested
        return None

    # --- types ------------------------------------------------------------------------------------------------

    def accepts(self, annotation: str | None, type_name: str) -> bool:
        """Whether pybind11 would take a value of `type_name` for a parameter annotated `annotation`."""
        if not annotation:
            return True
        optional = _OPTIONAL.match(annotation)
        if optional:
            return type_name == "NoneType" or self.accepts(optional.group(1) or optional.group(2), type_name)
        annotation = _PLAIN.get(re.sub(r"^(?:typing|typing_extensions|collections\.abc)\.", "", annotation), annotation)
        annotation = self.canon(annotation)
        if annotation in self.enums:
            return self.canon(type_name) == annotation
        if annotation in self.classes:
            return annotation in self.mro(type_name) or type_name in _IMPLICIT.get(annotation, ())
        if annotation == "int":
            return type_name in _INTS
        if annotation == "bool":
            return type_name in _INTS or type_name == "bool_"
        if annotation == "float":
            return type_name in _INTS or type_name in ("float", "float32", "float64")
        if annotation == "str":
            return type_name == "str"
        if annotation == "buffer":
            return type_name in _BUFFERS
        return True  # Dims, tuple, List[int], capsules ...: not checked

    def match(self, overload: dict, use: Use, drop_self: bool) -> str:
        """'' when `overload` takes the use's arguments, else why not (pybind11's rules, see the module docstring)."""
        params = overload.get("params")
        if params is None:
            return "signature unknown"
        params = params[1:] if drop_self else params
        positional = [p for p in params if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
        var_positional = any(p["kind"] == "VAR_POSITIONAL" for p in params)
        var_keyword = any(p["kind"] == "VAR_KEYWORD" for p in params)
        if len(use.args) > len(positional) and not var_positional:
            return f"takes at most {len(positional)} positional arguments, got {len(use.args)}"
        filled = {}
        for param, type_name in zip(positional, use.args, strict=False):
            filled[param["name"]] = (param, type_name)
        named = {p["name"]: p for p in params if p["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD")}
        for keyword, type_name in use.keywords:
            param = named.get(keyword)
            unnamed = bool(_UNNAMED.match(keyword)) and not overload.get("python")
            if param is None or param["kind"] == "POSITIONAL_ONLY" or unnamed:
                if var_keyword:
                    continue
                return f"no keyword argument {keyword!r}"
            if keyword in filled:
                return f"{keyword!r} given twice"
            filled[keyword] = (param, type_name)
        missing = [n for n, p in named.items() if n not in filled and not p["has_default"]]
        if missing:
            return f"missing {', '.join(missing)}"
        wrong = [
            f"{n}: {p['annotation']}, got {t}" for n, (p, t) in filled.items() if not self.accepts(p["annotation"], t)
        ]
        return f"wrong types ({'; '.join(wrong)})" if wrong else ""

    # --- the check ----------------------------------------------------------------------------------------------

    def check(self, use: Use) -> str | None:
        """None when TensorRT `version` takes the use, else the reason in one line."""
        release = f"TensorRT {self.version}"
        if use.owner == MODULE:
            kind = self.top_level(use.member)
            if use.action == "missing":
                return None if kind is None else f"tensorrt.{use.member} exists in {release} ({kind})"
            if kind is None:
                return f"{release} has no tensorrt.{use.member}"
            if use.action == "call":
                if kind != "function":
                    return f"tensorrt.{use.member} is a {kind} in {release}, not a function"
                return self._overloads(self.data["functions"][self.canon(use.member)], use, False, release)
            return None
        if self.top_level(use.owner) is None:
            return f"{release} has no tensorrt.{use.owner}"
        found = self.member(use.owner, use.member)
        if use.action == "missing":
            return None if found is None else f"{use.owner}.{use.member} exists in {release} ({found[0]})"
        if found is None:
            return f"{release} has no {use.owner}.{use.member}"
        kind, entry = found
        if use.action == "get":
            return None
        if use.action in ("read", "set"):
            if kind != "property":
                return f"{use.owner}.{use.member} is a {kind} in {release}, not a property"
            if use.action == "set" and not entry["settable"]:
                return f"{use.owner}.{use.member} is read-only in {release}"
            if use.action == "set" and use.args and not self.accepts(entry["type"], use.args[0]):
                return f"{use.owner}.{use.member} takes {entry['type']} in {release}, got {use.args[0]}"
            return None
        if kind not in ("method", "static_method", "constructor"):
            return f"{use.owner}.{use.member} is a {kind} in {release}, not callable"
        return self._overloads(entry, use, kind != "static_method", release)

    def _overloads(self, overloads: list[dict], use: Use, drop_self: bool, release: str) -> str | None:
        reasons = []
        for overload in overloads:
            why = self.match(overload, use, drop_self)
            if not why:
                return None
            reasons.append(f"{overload.get('signature')}: {why}")
        return f"{use} matches no overload in {release}: " + " | ".join(reasons)


# --- the stand-in's own surface --------------------------------------------------------------------------------


def _standin_params(fn: Any) -> list[inspect.Parameter]:
    fn = inspect.unwrap(fn)
    params = list(inspect.signature(fn).parameters.values())
    return params[1:] if params and params[0].name == "self" else params


def signature_problem(fn: Any, overloads: list[dict], drop_self: bool) -> str | None:
    """None when the stand-in's `fn` takes exactly the parameters of one real overload (names, order, kinds), and
    gives no default the real one lacks; else what differs."""
    ours = _standin_params(fn)
    shown = "(" + ", ".join(str(p) for p in ours) + ")"
    for overload in overloads:
        theirs = overload.get("params")
        if theirs is None:
            continue
        theirs = theirs[1:] if drop_self else theirs
        if len(theirs) != len(ours):
            continue
        if all(_same_param(o, t) for o, t in zip(ours, theirs, strict=True)):
            return None
    real = " | ".join(str(o.get("signature")) for o in overloads)
    return f"stand-in signature {shown} matches none of: {real}"


def _same_param(ours: inspect.Parameter, theirs: dict) -> bool:
    unnamed = bool(_UNNAMED.match(theirs["name"])) or theirs["kind"] == "POSITIONAL_ONLY"
    if unnamed != (ours.kind == ours.POSITIONAL_ONLY):
        return False
    if not unnamed and ours.name != theirs["name"]:
        return False
    if ours.kind.name in ("VAR_POSITIONAL", "VAR_KEYWORD", "KEYWORD_ONLY") and ours.kind.name != theirs["kind"]:
        return False
    return theirs["has_default"] or ours.default is ours.empty


def surface_problems(standin: Any, api: Api) -> list[str]:
    """Where the stand-in `tensorrt` module (tests/trt/_standin.py) differs from `api`: a name the release lacks, a
    method whose parameters differ, a property settable on one side only, an enum member the release lacks."""
    problems = []
    for name, value in sorted(standin.surface().items()):
        kind = api.top_level(name)
        expected = value.kind
        if kind != expected:
            problems.append(f"tensorrt.{name}: stand-in {expected}, TensorRT {api.version} {kind or 'absent'}")
            continue
        if expected == "function":
            why = signature_problem(value.obj, api.data["functions"][api.canon(name)], drop_self=False)
            problems += [f"tensorrt.{name}: {why}"] if why else []
        elif expected == "enum":
            real = api.enums[api.canon(name)]["members"]
            problems += [f"{name}.{m}: absent in TensorRT {api.version}" for m in value.members if m not in real]
        elif expected == "class":
            problems += [f"{name}.{p}" for p in _class_problems(value, api)]
    return problems


def _class_problems(value: Any, api: Api) -> list[str]:
    problems = []
    for attr, member in sorted(value.members.items()):
        found = api.member(value.name, attr)
        if found is None:
            problems.append(f"{attr}: absent in TensorRT {api.version}")
            continue
        kind, entry = found
        if member.kind == "property":
            if kind != "property":
                problems.append(f"{attr}: stand-in property, TensorRT {api.version} {kind}")
            elif member.settable != entry["settable"]:
                side = "settable" if member.settable else "read-only"
                problems.append(f"{attr}: {side} in the stand-in, not in TensorRT {api.version}")
        elif member.kind == "nested":
            if kind != "nested":
                problems.append(f"{attr}: stand-in nested type, TensorRT {api.version} {kind}")
        elif attr == "__init__" and member.obj is None:
            if kind == "constructor":
                problems.append(f"__init__: the stand-in has no constructor, TensorRT {api.version} has one")
        elif kind not in ("method", "constructor", "static_method"):
            problems.append(f"{attr}: stand-in method, TensorRT {api.version} {kind}")
        else:
            why = signature_problem(member.obj, entry, drop_self=kind != "static_method")
            problems += [f"{attr}: {why}"] if why else []
    return problems
