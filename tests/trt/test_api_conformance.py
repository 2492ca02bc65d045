"""API conformance against NVIDIA's real TensorRT bindings (8.6.1, 10.3.0, 10.13.0.35, 11.4.0.106), on a CPU: not an
engine build, and nothing here runs TensorRT.

scripts/fetch_trt_bindings.sh DEST fetches the binding wheels and null stub libraries so each release imports; with
CONVNEXT_EXPORT_TRT_BINDINGS=DEST these tests dump each release's API (tests/trt/_dump_api.py, in its own process) and
check, per release:
- every use of a TensorRT name that the project's code makes on the path of that release's generation (found by
  running the builder, the runner, the layer profile and inspect against the recording stand-in: tests/trt/
  _conformance.py) exists there with the right kind and takes those arguments; a lookup that found nothing on the
  stand-in finds nothing in the release either;
- the stand-in itself: each of its classes, method signatures, properties (read-only or settable) and enum members
  is the release's, so a call the real API would reject fails on the stand-in;
- some project code run directly on the real module (network flags, loggers, builder flags, dtypes).
Without the bindings these tests skip with the reason; the stand-in's own refusals are tested either way.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.trt import _conformance as conformance
from tests.trt._api import MODULE, Api, Use, surface_problems
from tests.trt._helpers import VERSIONS, fake_tensorrt

RELEASES, WHY_NOT = conformance.releases()
needs_bindings = pytest.mark.skipif(not RELEASES, reason=WHY_NOT or "")
BY_VERSION = {release.version: release for release in RELEASES}
VERSIONS_FETCHED = list(BY_VERSION) or ["(no bindings)"]


@pytest.fixture(scope="module")
def apis() -> dict[str, Api]:
    return {release.version: conformance.load_api(release) for release in RELEASES}


@pytest.fixture(scope="module")
def uses(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[Use]]:
    from tests.trt._helpers import make_onnx_files

    work = tmp_path_factory.mktemp("conformance")
    return conformance.uses_by_generation(work, make_onnx_files(work))


@needs_bindings
@pytest.mark.parametrize("version", VERSIONS_FETCHED)
def test_api_conformance_every_name_the_project_touches(version: str, apis: dict, uses: dict) -> None:
    release = BY_VERSION[version]
    touched = uses[release.generation]
    ran = {(u.owner, u.member) for u in touched}  # the paths ran: builder, runner, profile, inspect
    assert {
        ("Builder", "build_serialized_network"),
        ("IExecutionContext", "execute_async_v3"),
        ("IExecutionContext", "profiler"),
        ("EngineInspector", "get_engine_information"),
        ("Runtime", "DLA_core"),
    } <= ran
    found = conformance.problems(apis[version], touched)
    assert not found, f"TensorRT {version} (generation {release.generation}) would refuse:\n" + "\n".join(found)


@needs_bindings
@pytest.mark.parametrize("version", VERSIONS_FETCHED)
def test_api_conformance_of_the_stand_in(version: str, apis: dict) -> None:
    release = BY_VERSION[version]
    standin = fake_tensorrt(VERSIONS[conformance.STANDIN_OF[release.generation]])
    found = surface_problems(standin, apis[version])
    assert not found, (
        f"the stand-in for generation {release.generation} differs from TensorRT {version}:\n" + "\n".join(found)
    )


@needs_bindings
@pytest.mark.parametrize("version", VERSIONS_FETCHED)
def test_api_conformance_stand_in_check_can_fail(version: str, apis: dict) -> None:
    """A stand-in that drifted from the release is caught: a wrong signature, a settable read-only property, an
    enum member the release lacks, a class it lacks."""
    from tests.trt._standin import SurfaceEntry, SurfaceMember

    standin = fake_tensorrt(VERSIONS[conformance.STANDIN_OF[BY_VERSION[version].generation]])
    real = standin.surface()

    def drifted() -> dict:
        entries = dict(real)
        config = entries["IBuilderConfig"]
        members = {**config.members, "set_flag": SurfaceMember("method", lambda self, flag, strict: None)}
        members["DLA_core"] = SurfaceMember("property", None, settable=False)
        entries["IBuilderConfig"] = SurfaceEntry("class", "IBuilderConfig", config.obj, members)
        flags = entries["BuilderFlag"]
        entries["BuilderFlag"] = SurfaceEntry("enum", "BuilderFlag", flags.obj, {**flags.members, "FP64": None})
        entries["IMadeUp"] = SurfaceEntry("class", "IMadeUp", None, {})
        return entries

    standin.surface = drifted
    found = "\n".join(surface_problems(standin, apis[version]))
    for expected in (
        "IBuilderConfig.set_flag: stand-in signature (flag, strict)",
        "IBuilderConfig.DLA_core: read-only",
        "BuilderFlag.FP64: absent",
        "tensorrt.IMadeUp: stand-in class",
    ):
        assert expected in found, found


REFUSED_EVERYWHERE = [
    Use("BuilderFlag", "NO_SUCH_FLAG", "get"),
    Use("IBuilderConfig", "set_flag", "call", ("int",)),  # an int where a BuilderFlag is asked
    Use("IBuilderConfig", "set_flag", "call", ("DataType",)),  # another enum
    Use("ICudaEngine", "num_io_tensors", "set", ("int",)),  # read-only
    Use("Builder", "create_network", "call", ("int", "int")),  # one argument too many
    Use("Builder", "create_network", "call", (), (("flag", "int"),)),  # a keyword it does not have
    Use("IExecutionContext", "execute_async_v2", "call", ("list", "int")),  # gone since 10.0 (8.6 has it: below)
    Use("IBuilderConfig", "can_run_on_dla", "call", ("ILayer",)),  # the spelling is can_run_on_DLA
    Use(MODULE, "Builder", "missing"),  # a probe that must find nothing, for a name that exists
]


@needs_bindings
@pytest.mark.parametrize("version", VERSIONS_FETCHED)
def test_api_conformance_check_refuses_what_the_release_refuses(version: str, apis: dict) -> None:
    """The check can fail: uses the real bindings refuse are refused, per release where releases differ."""
    api = apis[version]
    refused = {str(use) for use in REFUSED_EVERYWHERE if api.check(use)}
    expected = {str(use) for use in REFUSED_EVERYWHERE}
    if version.startswith("8."):
        expected.discard(str(REFUSED_EVERYWHERE[6]))  # 8.6 still binds execute_async_v2
    assert refused == expected
    eleven = version.startswith("11.")
    for use in (
        Use("BuilderFlag", "FP16", "get"),
        Use("NetworkDefinitionCreationFlag", "EXPLICIT_BATCH", "get"),
        Use("IBuilderConfig", "int8_calibrator", "set", ("IInt8EntropyCalibrator2",)),
        Use("ILayer", "set_output_type", "call", ("int", "DataType")),
        Use("ITensor", "dtype", "set", ("DataType",)),
    ):
        assert bool(api.check(use)) == eleven, use
    assert bool(api.check(Use(MODULE, "IInt8EntropyCalibrator2", "missing"))) != eleven
    assert api.check(Use("ILogger", "__init__", "call")) is None
    assert "matches no overload" in (api.check(Use("OnnxParser", "__init__", "call", ("INetworkDefinition",))) or "")


@needs_bindings
@pytest.mark.parametrize("version", VERSIONS_FETCHED)
def test_api_conformance_project_code_on_the_real_module(version: str) -> None:
    """The project's TensorRT code that needs no libnvinfer, run on the real module: network flags, builder flags of
    every precision plan, both loggers (ILogger subclasses calling the base __init__), NumPy dtypes."""
    release = BY_VERSION[version]
    code = textwrap.dedent(
        f"""
        import tensorrt as trt
        from convnext_export.runners.trt_runner import _make_logger, numpy_dtype
        from convnext_export.trt.network import network_flags, recording_logger
        from convnext_export.trt.settings import ARTIFACT_PRECISIONS, IMPLICIT_INT8, precision_plan
        generation = {release.generation!r}
        for precision in (*ARTIFACT_PRECISIONS, *([IMPLICIT_INT8] if generation != "11" else [])):
            plan = precision_plan(generation, precision)
            print("flags", precision, network_flags(trt, generation, plan.strongly_typed),
                  [getattr(trt.BuilderFlag, flag).name for flag in plan.flags])
        for make in (recording_logger, _make_logger):
            logger = make(trt)
            logger.log(trt.ILogger.Severity.ERROR, "an error\\nover two lines")
            print("logger", type(logger).__mro__[1].__name__, logger.errors)
        print("dtype", numpy_dtype(trt, trt.float16, "x"), trt.ProfilingVerbosity.DETAILED.name)
        """
    )
    done = conformance.run_with_bindings(release, code)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line for line in lines if line.startswith("logger")] == ["logger ILogger ['an error over two lines']"] * 2
    assert "dtype float16 DETAILED" in lines
    flags = {line.split()[1]: line for line in lines if line.startswith("flags")}
    if release.generation == "8":
        assert flags["fp16"] == "flags fp16 1 ['FP16', 'OBEY_PRECISION_CONSTRAINTS']"
    elif release.generation == "10":
        assert flags["fp16"] == "flags fp16 2 []"  # 1 << STRONGLY_TYPED (1)
    else:
        assert flags["fp16"] == "flags fp16 0 []"


# --- the stand-in refuses what the real API refuses (no bindings needed) ------------------------------------------


def test_stand_in_refuses_calls_the_real_api_rejects() -> None:
    trt = fake_tensorrt(VERSIONS["11"])
    with pytest.raises(AttributeError):
        trt.BuilderFlag.FP16  # noqa: B018 -- the lookup is the test
    with pytest.raises(AttributeError):
        trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH  # noqa: B018
    assert not hasattr(trt, "IInt8EntropyCalibrator2")
    assert Use(MODULE, "IInt8EntropyCalibrator2", "missing") in trt.uses
    with pytest.raises(TypeError, match="No constructor defined"):
        trt.IBuilderConfig()

    class Forgetful(trt.ILogger):
        def __init__(self) -> None:  # does not call trt.ILogger.__init__, as pybind11 requires
            pass

    with pytest.raises(TypeError, match="must be called when overriding __init__"):
        Forgetful()

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: object, msg: str) -> None:
            pass

    builder = trt.Builder(Logger())
    with pytest.raises(TypeError):
        builder.create_network(0, 1)
    with pytest.raises(TypeError):
        builder.create_network(flag=0)
    config = builder.create_builder_config()
    with pytest.raises(TypeError, match="BuilderFlag"):
        config.set_flag(1)
    with pytest.raises(AttributeError):
        config.int8_calibrator = None  # gone in 11
    with pytest.raises(AttributeError):
        config.no_such_option = 1  # a bare TensorRT object takes no new attributes
    with pytest.raises(AttributeError, match="can't set"):
        builder.num_DLA_cores = 2  # read-only
    assert Use("IBuilderConfig", "set_flag", "call", ("int",)) in trt.uses


def test_stand_in_records_each_use_by_tensorrt_name() -> None:
    trt = fake_tensorrt(VERSIONS["10"])

    class Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.seen: list[str] = []  # the project's own attribute: not a TensorRT use

        def log(self, severity: object, msg: str) -> None:
            self.seen.append(msg)

    config = trt.Builder(Logger()).create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    assert getattr(trt.LayerType, "NO_SUCH_TYPE", None) is None
    assert {
        Use(MODULE, "Builder", "get"),
        Use("ILogger", "__init__", "call"),
        Use("Builder", "__init__", "call", ("ILogger",)),
        Use("Builder", "create_builder_config", "call"),
        Use("BuilderFlag", "FP16", "get"),
        Use("IBuilderConfig", "set_flag", "call", ("BuilderFlag",)),
        Use("IBuilderConfig", "profiling_verbosity", "set", ("ProfilingVerbosity",)),
        Use("LayerType", "NO_SUCH_TYPE", "missing"),
    } <= set(trt.uses)
    assert not [u for u in trt.uses if u.member == "seen"]


def _overload(*params: tuple[str, str, bool]) -> dict:
    """A dump's overload of a method: `self`, then (name, annotation, has_default) per parameter."""
    listed = [{"name": n, "kind": "POSITIONAL_OR_KEYWORD", "annotation": a, "has_default": d} for n, a, d in params]
    self = {"name": "self", "kind": "POSITIONAL_OR_KEYWORD", "annotation": None, "has_default": False}
    return {"signature": "f(...)", "params": [self, *listed]}


def test_the_check_reads_a_dump(tmp_path: Path) -> None:
    """Api.check on a small hand-written dump (no NVIDIA data): arity, keywords, unnamed parameters, types,
    settable properties, enum members, aliases."""
    api = Api(
        {
            "version": "0.1",
            "classes": {
                "Config": {
                    "bases": [],
                    "init": [],
                    "methods": {
                        "set_flag": [_overload(("flag", "Flag", False))],
                        "pad": [_overload(("arg0", "int", False))],
                    },
                    "static_methods": {},
                    "properties": {"level": {"settable": True, "type": "int"}, "cores": {"settable": False}},
                    "nested": [],
                },
                "Child": {
                    "bases": ["Config"],
                    "init": [_overload(("n", "typing.SupportsInt", True))],
                    "methods": {},
                    "static_methods": {},
                    "properties": {},
                    "nested": [],
                },
            },
            "enums": {"Flag": {"members": {"A": 0}, "deprecated": []}},
            "functions": {},
            "constants": {},
            "aliases": {"Other": "Config"},
        }
    )
    assert api.check(Use("Config", "set_flag", "call", ("Flag",))) is None
    assert "wrong types" in api.check(Use("Config", "set_flag", "call", ("int",)))
    assert api.check(Use("Child", "set_flag", "call", (), (("flag", "Flag"),))) is None  # inherited, by keyword
    assert "no keyword" in api.check(Use("Config", "pad", "call", (), (("arg0", "int"),)))  # unnamed: positional only
    assert api.check(Use("Child", "__init__", "call", ("int",))) is None is api.check(Use("Child", "__init__", "call"))
    assert "wrong types" in api.check(Use("Child", "__init__", "call", ("str",)))  # typing.SupportsInt is an int
    assert api.check(Use("Config", "__init__", "call")) == "TensorRT 0.1 has no Config.__init__"
    assert api.check(Use("Other", "level", "set", ("int",))) is None
    assert "read-only" in api.check(Use("Config", "cores", "set", ("int",)))
    assert api.check(Use("Flag", "A", "get")) is None and api.check(Use("Flag", "B", "get"))
    assert api.check(Use("Flag", "B", "missing")) is None and api.check(Use("Flag", "A", "missing"))
