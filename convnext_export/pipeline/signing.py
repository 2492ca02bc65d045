"""Ed25519 signatures of a bundle's manifest: `bundle keygen`, `bundle sign`, `bundle verify --public-key`.

What is signed: the exact bytes of `manifest.json`. They hold the sha256 and size of every file of the
bundle, and `bundle verify` refuses any file the manifest does not list, so one signature over the manifest
covers the whole folder: a file changed together with its hash in the manifest no longer matches the signature.
The signature is detached, in `manifest.json.sig` beside it: the raw 64-byte Ed25519 signature (RFC 8032),
nothing else, so standard tools check it too:
`openssl pkeyutl -verify -pubin -inkey KEY.pub -rawin -in manifest.json -sigfile manifest.json.sig`
(OpenSSL 3, a PEM public key as `bundle keygen` writes).

Keys: those `bundle keygen` writes (PKCS#8 PEM private key, mode 0600, and a PEM public key beside it, `.pub`), or
existing Ed25519 keys in OpenSSH format (`ssh-keygen -t ed25519`: the private key file and its `.pub` line) or PEM.
Passphrase-protected private keys are not read (sign with a decrypted copy, as CI signing keys usually are).

Library: `cryptography` (pyca), imported only inside these functions through _deps.require. It is the
well-kept, widely packaged binding to OpenSSL's Ed25519 and reads OpenSSH and PEM keys itself. PyNaCl
(libsodium) signs as well but reads neither OpenSSH nor PEM keys, so key parsing would be ours to write;
minisign and signify are separate tools with their own key format, not a library; sigstore needs network access
to its transparency log and identity provider, which a Jetson on a factory network or an air-gapped CI does not have.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convnext_export._deps import require
from convnext_export.errors import ConvNeXtExportError
from convnext_export.pipeline.manifest import SIGNATURE_NAME

SIGNATURE_BYTES = 64  # an Ed25519 signature
MAX_KEY_BYTES = 64 << 10  # key files are a few hundred bytes
DEFAULT_KEY_NAME = "bundle_ed25519"  # `bundle keygen --output-dir D` writes D/bundle_ed25519 and D/bundle_ed25519.pub


class SigningKeyError(ConvNeXtExportError):
    """A key file that is missing, is not an Ed25519 key, is encrypted, or the wrong half (usage error, exit 2)."""


class KeyWriteError(SigningKeyError):
    """A key file that cannot be written (an I/O error)."""

    exit_code = 4


@dataclass
class KeyPair:
    private: Path
    public: Path
    fingerprint: str


def _serialization() -> Any:
    return require("cryptography.hazmat.primitives.serialization", "signing bundles")


def _ed25519() -> Any:
    return require("cryptography.hazmat.primitives.asymmetric.ed25519", "signing bundles")


def fingerprint(public_key: Any) -> str:
    """The key's OpenSSH fingerprint (`SHA256:...`, as `ssh-keygen -lf KEY.pub` prints it)."""
    s = _serialization()
    line = public_key.public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def generate_key_pair(private_path: Path) -> KeyPair:
    """A new Ed25519 key: the private key at `private_path` (PKCS#8 PEM, 0600), the public key at `<path>.pub`
    (PEM). Neither file may exist: a key is never overwritten."""
    s = _serialization()
    private_path = Path(private_path)
    public_path = private_path.with_name(private_path.name + ".pub")
    for path in (private_path, public_path):
        if os.path.lexists(path):
            raise SigningKeyError(f"{path} exists: a key is never overwritten (choose another name or folder)")
    key = _ed25519().Ed25519PrivateKey.generate()
    private = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())
    public = key.public_key().public_bytes(s.Encoding.PEM, s.PublicFormat.SubjectPublicKeyInfo)
    _write_new(private_path, private, 0o600)
    try:
        _write_new(public_path, public, 0o644)
    except BaseException:
        private_path.unlink(missing_ok=True)
        raise
    return KeyPair(private_path, public_path, fingerprint(key.public_key()))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` whole (temp file + hard link, so an existing file is never replaced) with `mode`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, mode)
            os.link(tmp, path)  # fails when `path` appeared meanwhile: no key is clobbered
        finally:
            os.unlink(tmp)
    except FileExistsError:
        raise SigningKeyError(f"{path} exists: a key is never overwritten") from None
    except OSError as exc:
        raise KeyWriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def _read_key_file(path: Path) -> bytes:
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SigningKeyError(f"{path} is not a key file (not a regular file)")
        if info.st_size > MAX_KEY_BYTES:
            raise SigningKeyError(f"{path} is {info.st_size} bytes: not a key file")
        return path.read_bytes()
    except FileNotFoundError:
        raise SigningKeyError(f"key file {path} does not exist") from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read key file {path}: {exc.strerror or exc}") from None


def load_private_key(path: Path) -> Any:
    """An Ed25519 private key from an OpenSSH or PEM (PKCS#8) file, or one line saying why it is not one."""
    s = _serialization()
    exceptions = require("cryptography.exceptions", "signing bundles")
    data = _read_key_file(path)
    if _looks_public(data):
        raise SigningKeyError(f"{path} is a public key: signing needs the private key")
    try:
        if data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key = s.load_ssh_private_key(data, password=None)
        elif data.lstrip().startswith(b"-----BEGIN"):
            key = s.load_pem_private_key(data, password=None)
        else:
            key = s.load_der_private_key(data, password=None)
    except TypeError:  # "Password was not given but private key is encrypted"
        raise SigningKeyError(f"{path} is passphrase-protected: sign with a decrypted copy of the key") from None
    except exceptions.UnsupportedAlgorithm as exc:  # an encrypted OpenSSH key (needs bcrypt), or an unknown type
        if "bcrypt" in str(exc):
            raise SigningKeyError(f"{path} is passphrase-protected: sign with a decrypted copy of the key") from None
        raise SigningKeyError(f"{path} holds a key type this cannot read ({exc})") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not an OpenSSH or PEM private key ({_first_line(exc)})") from None
    return _require_ed25519(key, _ed25519().Ed25519PrivateKey, path)


def load_public_key(path: Path) -> Any:
    """An Ed25519 public key from an OpenSSH `.pub` line or a PEM file (a private key is refused: the verifier
    should hold only the public half)."""
    s = _serialization()
    exceptions = require("cryptography.exceptions", "signing bundles")
    data = _read_key_file(path)
    if b"PRIVATE KEY-----" in data:
        raise SigningKeyError(f"{path} is a private key: verify with the public key ({Path(path).name}.pub)")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            key = s.load_pem_public_key(data)
        elif data.lstrip().startswith((b"ssh-", b"ecdsa-")):
            key = s.load_ssh_public_key(data.strip())
        else:
            key = s.load_der_public_key(data)
    except exceptions.UnsupportedAlgorithm as exc:
        raise SigningKeyError(f"{path} holds a key type this cannot read ({exc})") from None
    except ValueError as exc:
        raise SigningKeyError(f"{path} is not an OpenSSH or PEM public key ({_first_line(exc)})") from None
    return _require_ed25519(key, _ed25519().Ed25519PublicKey, path)


def _looks_public(data: bytes) -> bool:
    text = data.lstrip()
    return text.startswith((b"ssh-", b"ecdsa-", b"-----BEGIN PUBLIC KEY-----"))


def _require_ed25519(key: Any, kind: type, path: Path) -> Any:
    if not isinstance(key, kind):
        name = type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace("PublicKey", "")
        raise SigningKeyError(
            f"{path} holds a key of type {name or type(key).__name__}: bundle signatures are Ed25519 "
            "(ssh-keygen -t ed25519, or convnext-export bundle keygen)"
        )
    return key


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def sign_manifest(manifest_bytes: bytes, private_key: Any) -> bytes:
    """The detached signature of the manifest's exact bytes."""
    return private_key.sign(manifest_bytes)


def signature_problem(manifest_bytes: bytes, signature: bytes | None, public_key: Any) -> str | None:
    """Why `signature` does not prove `public_key`'s holder signed these manifest bytes (None: it does)."""
    exceptions = require("cryptography.exceptions", "checking bundle signatures")
    if signature is None:
        return f"signature missing: {SIGNATURE_NAME} (a public key was given, so the bundle must be signed)"
    if len(signature) != SIGNATURE_BYTES:
        return f"signature malformed: {SIGNATURE_NAME} is {len(signature)} bytes, not an Ed25519 signature (64)"
    try:
        public_key.verify(signature, manifest_bytes)
    except exceptions.InvalidSignature:
        return (
            f"signature does not match: {SIGNATURE_NAME} is not a signature of this manifest by key "
            f"{fingerprint(public_key)} (the manifest changed after signing, or another key signed it)"
        )
    return None
