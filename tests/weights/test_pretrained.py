"""Tests for the pretrained-weights table and its download; none of them may reach the network."""

from __future__ import annotations

import dataclasses
import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from convnext_export.errors import DownloadError, UnknownNameError
from convnext_export.weights import pretrained as pt

VARIANTS = {
    "atto",
    "femto",
    "pico",
    "nano",
    "tiny",
    "small",
    "base",
    "large",
    "xlarge",
    "isotropic_small",
    "isotropic_base",
    "isotropic_large",
    "test",
}
EXPECTED_SHAPE = {  # tag -> (num_classes, image_size), stated independently of the module
    "in1k": (1000, 224),
    "in1k-384": (1000, 384),
    "in22k": (21841, 224),
    "in22k-in1k": (1000, 224),
    "in22k-in1k-384": (1000, 384),
}


def _local_entry(tmp_path: Path, data: bytes, name: str = "weights.pth") -> pt.PretrainedWeights:
    """A real table entry re-pointed at a file:// URL so the real download path runs offline."""
    source = tmp_path / "remote" / name
    source.parent.mkdir()
    source.write_bytes(data)
    return dataclasses.replace(pt.find_pretrained("tiny", "in1k"), url=source.as_uri())


class _FakeResponse:
    """Stands in for an HTTP response: declares ``length`` bytes, sends ``chunks``, then maybe fails."""

    def __init__(self, length: int, chunks: list[bytes], fail: BaseException | None = None) -> None:
        self.headers = {"Content-Length": str(length)}
        self._chunks = list(chunks)
        self._fail = fail

    def read(self, size: int = -1) -> bytes:
        if self._chunks:
            return self._chunks.pop(0)
        if self._fail is not None:
            raise self._fail
        return b""

    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


# --- the table ---------------------------------------------------------------------------------------


def test_table_keys_are_unique_and_variants_known() -> None:
    keys = [(w.variant, w.tag) for w in pt.PRETRAINED]
    assert len(keys) == len(set(keys))
    assert {w.variant for w in pt.PRETRAINED} <= VARIANTS
    assert len({w.filename for w in pt.PRETRAINED}) == len(pt.PRETRAINED)


@pytest.mark.parametrize("entry", pt.PRETRAINED, ids=lambda w: f"{w.variant}-{w.tag}")
def test_entry_is_consistent(entry: pt.PretrainedWeights) -> None:
    assert entry.url.startswith("https://")
    assert entry.tag in EXPECTED_SHAPE
    assert (entry.num_classes, entry.image_size) == EXPECTED_SHAPE[entry.tag]
    assert entry.source_format in {"official", "timm"}
    if entry.source_format == "official":
        assert entry.url.startswith("https://dl.fbaipublicfiles.com/convnext/")
        assert entry.url.endswith(".pth")
    else:
        assert entry.url.startswith("https://huggingface.co/timm/convnext_")
        assert entry.url.endswith("/resolve/main/model.safetensors")
    if entry.num_classes == 21841:
        assert entry.top1 is None  # a 22k head has no ImageNet-1k accuracy of its own


def test_expected_coverage() -> None:
    tags = {(w.variant, w.tag) for w in pt.PRETRAINED}
    for variant in ("tiny", "small", "base", "large"):
        assert {(variant, "in1k"), (variant, "in22k"), (variant, "in22k-in1k")} <= tags
    assert {("base", "in1k-384"), ("large", "in1k-384"), ("xlarge", "in22k-in1k-384")} <= tags
    for variant in ("atto", "femto", "pico", "nano"):
        assert pt.find_pretrained(variant, "in1k").source_format == "timm"
    assert pt.list_pretrained("test") == []


def test_known_values() -> None:
    tiny = pt.find_pretrained("tiny", "in1k")
    assert tiny.top1 == 82.1
    assert tiny.url == "https://dl.fbaipublicfiles.com/convnext/convnext_tiny_1k_224_ema.pth"
    assert tiny.filename == "convnext_tiny_1k_224_ema.pth"
    assert pt.find_pretrained("atto", "in1k").filename == "timm--convnext_atto.d2_in1k--model.safetensors"


# --- lookup ------------------------------------------------------------------------------------------


def test_find_unknown_tag_lists_valid_tags() -> None:
    with pytest.raises(UnknownNameError) as info:
        pt.find_pretrained("tiny", "in1k-384")
    message = str(info.value)
    assert "in1k-384" in message
    for tag in ("in1k", "in22k", "in22k-in1k", "in22k-in1k-384"):
        assert tag in message


def test_find_variant_without_weights_names_those_with() -> None:
    with pytest.raises(UnknownNameError) as info:
        pt.find_pretrained("test", "in1k")
    message = str(info.value)
    assert "'test'" in message and "tiny" in message and not message.rstrip().endswith("valid:")


def test_list_pretrained_filters() -> None:
    assert {w.tag for w in pt.list_pretrained("base")} == set(EXPECTED_SHAPE)
    assert len(pt.list_pretrained()) == len(pt.PRETRAINED)


@pytest.mark.parametrize("value", sorted(EXPECTED_SHAPE))
def test_is_pretrained_tag_true(value: str) -> None:
    assert pt.is_pretrained_tag(value)


@pytest.mark.parametrize("value", ["", "IN1K", "in21k", "weights/in1k", "model.pth", "./in1k"])
def test_is_pretrained_tag_false(value: str) -> None:
    assert not pt.is_pretrained_tag(value)


# --- cache location ----------------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CONVNEXT_EXPORT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert pt.cache_dir() == tmp_path / "home" / ".cache" / "convnext-export"

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert pt.cache_dir() == tmp_path / "xdg" / "convnext-export"

    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path / "explicit"))
    assert pt.cache_dir() == tmp_path / "explicit"
    assert pt.cache_dir().is_dir()

    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", "")  # empty means unset
    assert pt.cache_dir() == tmp_path / "xdg" / "convnext-export"


def test_cached_path_uses_env_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONVNEXT_EXPORT_CACHE", str(tmp_path))
    entry = pt.find_pretrained("nano", "in1k")
    assert pt.cached_path(entry) == tmp_path / entry.filename
    assert pt.cached_path(entry, tmp_path / "other") == tmp_path / "other" / entry.filename


# --- download ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("progress", [False, True])
def test_download_then_cache_hit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, progress: bool) -> None:
    data = bytes(range(256)) * 4099  # a few MiB-ish chunks' worth, not a multiple of the chunk size
    entry = _local_entry(tmp_path, data)
    cache = tmp_path / "cache"

    path = pt.fetch_pretrained(entry, cache=cache, progress=progress)
    assert path == cache / "weights.pth"
    assert path.read_bytes() == data
    assert sorted(p.name for p in cache.iterdir()) == ["weights.pth"]

    def must_not_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached file must not be downloaded again")

    monkeypatch.setattr(urllib.request, "urlopen", must_not_open)
    assert pt.fetch_pretrained(entry, cache=cache, progress=progress) == path


def test_offline_fails_with_one_line(tmp_path: Path, no_network: list[object]) -> None:
    base = pt.find_pretrained("small", "in22k")
    entry = dataclasses.replace(base, url="https://weights.unreachable.invalid/convnext/small.pth")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        pt.fetch_pretrained(entry, cache=cache, progress=False, timeout=1.0)
    message = str(info.value)
    assert "\n" not in message
    assert entry.url in message
    assert str(cache / "small.pth") in message
    assert "--weights PATH" in message
    assert no_network, "the guard should have been what stopped the download"
    assert not any(cache.iterdir())


def test_http_error_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    entry = pt.find_pretrained("base", "in1k")

    def not_found(url: str, timeout: float) -> None:
        raise urllib.error.HTTPError(url, 404, "Not Found", {}, io.BytesIO())  # type: ignore[arg-type]

    monkeypatch.setattr(urllib.request, "urlopen", not_found)
    with pytest.raises(DownloadError, match="HTTP 404 Not Found"):
        pt.fetch_pretrained(entry, cache=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


def test_timeout_is_passed_and_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[float] = []

    def slow(url: str, timeout: float) -> None:
        seen.append(timeout)
        raise urllib.error.URLError(TimeoutError("timed out"))

    monkeypatch.setattr(urllib.request, "urlopen", slow)
    with pytest.raises(DownloadError, match=r"timed out after 2\.5s"):
        pt.fetch_pretrained(pt.find_pretrained("base", "in1k"), cache=tmp_path, progress=False, timeout=2.5)
    assert seen == [2.5]


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        (_FakeResponse(100, [b"x" * 10], ConnectionResetError("connection reset by peer")), "reset"),
        (_FakeResponse(100, [b"x" * 10], TimeoutError("timed out")), "timed out after"),
        (_FakeResponse(100, [b"x" * 10]), "received 10 of 100 bytes"),
    ],
    ids=["reset", "read-timeout", "short"],
)
def test_interrupted_download_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, response: _FakeResponse, reason: str
) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: response)
    entry = pt.find_pretrained("large", "in1k")
    with pytest.raises(DownloadError, match=reason) as info:
        pt.fetch_pretrained(entry, cache=tmp_path, progress=True)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the target nor a .partial temp file


def test_unwritable_cache_is_a_download_error(tmp_path: Path) -> None:
    entry = _local_entry(tmp_path, b"data")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache directory should be")
    with pytest.raises(DownloadError, match="could not write"):
        pt.fetch_pretrained(entry, cache=blocker, progress=False)


def test_module_does_not_import_torch() -> None:
    source = Path(pt.__file__).read_text()
    assert "import torch" not in source
