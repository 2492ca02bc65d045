"""Signing a bundle's manifest (`pipeline.signing`, `pipeline.bundle.sign_bundle`) with Ed25519.

- Keys from `bundle keygen` and existing OpenSSH (ssh-keygen) and PEM keys sign and verify in every pairing;
  a key that is not an Ed25519 key of the right half, or is encrypted, is one line naming it.
- A signature catches what hashes alone cannot: a file edited together with its hash in the manifest; a wrong
  key, a missing or malformed signature and a tampered manifest are each one problem line.
- The signature is the raw Ed25519 signature of the manifest's bytes, so OpenSSL checks it too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization as s
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from convnext_export._deps import MissingDependencyError
from convnext_export.pipeline.bundle import sign_bundle, verify_bundle
from convnext_export.pipeline.manifest import MANIFEST_NAME, SIGNATURE_NAME, record_artifact
from convnext_export.pipeline.signing import (
    SigningKeyError,
    fingerprint,
    generate_key_pair,
    load_private_key,
    load_public_key,
)
from tests._paths import ROOT
from tests.pipeline.test_bundle import make_bundle

SSH_KEYGEN = shutil.which("ssh-keygen")


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    pair = generate_key_pair(tmp_path / "keys" / "k")
    return pair.private, pair.public


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _openssh_pair(folder: Path) -> tuple[Path, Path]:
    """An Ed25519 key in OpenSSH's own formats (what ssh-keygen writes), made with the library."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = _write(
        folder / "id_ed25519", key.private_bytes(s.Encoding.PEM, s.PrivateFormat.OpenSSH, s.NoEncryption())
    )
    public = _write(
        folder / "id_ed25519.pub", key.public_key().public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH)
    )
    return private, public


def _ssh_keygen_pair(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", "ci", "-f", str(folder / "ssh")], check=True)
    return folder / "ssh", folder / "ssh.pub"


def _keygen_pair(folder: Path) -> tuple[Path, Path]:
    pair = generate_key_pair(folder / "k")
    return pair.private, pair.public


KEY_SOURCES = {"bundle keygen (PEM)": _keygen_pair, "OpenSSH format": _openssh_pair}
if SSH_KEYGEN:
    KEY_SOURCES["ssh-keygen -t ed25519"] = _ssh_keygen_pair


@pytest.mark.parametrize("source", sorted(KEY_SOURCES))
def test_each_key_format_signs_and_verifies(bundle: Path, tmp_path: Path, source: str) -> None:
    private, public = KEY_SOURCES[source](tmp_path / "keys")
    signed = sign_bundle(bundle, private)
    assert signed.problems == [] and signed.signature == bundle / SIGNATURE_NAME
    result = verify_bundle(bundle, public)
    assert result.ok, result.problems
    assert result.signature_key == signed.key == fingerprint(load_public_key(public))
    if SSH_KEYGEN and public.read_bytes().startswith(b"ssh-"):  # the fingerprint is OpenSSH's
        assert signed.key in subprocess.run([SSH_KEYGEN, "-lf", str(public)], capture_output=True, text=True).stdout


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path: Path) -> None:
    pair = generate_key_pair(tmp_path / "k")
    assert pair.private.stat().st_mode & 0o777 == 0o600 and pair.public == tmp_path / "k.pub"
    assert b"PRIVATE KEY" in pair.private.read_bytes() and b"PUBLIC KEY" in pair.public.read_bytes()
    before = pair.private.read_bytes()
    with pytest.raises(SigningKeyError, match="never overwritten"):
        generate_key_pair(tmp_path / "k")
    assert pair.private.read_bytes() == before
    (tmp_path / "k").unlink()
    with pytest.raises(SigningKeyError, match="k.pub exists"):  # the public half alone also blocks a new pair
        generate_key_pair(tmp_path / "k")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pub"]  # no temporary file left either


def _replace_labels(folder: Path) -> None:
    """A consistent edit: the file and its hash in the manifest changed together."""
    (folder / "labels.txt").write_text("evil\n")
    document = json.loads((folder / MANIFEST_NAME).read_text())
    document["artifacts"][1] = vars(record_artifact(folder, folder / "labels.txt", "labels"))
    (folder / MANIFEST_NAME).write_text(json.dumps(document))


def _other_key(folder: Path) -> None:
    other = generate_key_pair(folder.parent / "other" / "k")
    assert sign_bundle(folder, other.private).problems == []


SIGNATURE_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "consistent edit of file and hash": (_replace_labels, "signature does not match"),
    "manifest reformatted": (
        lambda f: (f / MANIFEST_NAME).write_text(json.dumps(json.loads((f / MANIFEST_NAME).read_text()))),
        "signature does not match",
    ),
    "signed by another key": (_other_key, "signature does not match"),
    "signature removed": (lambda f: (f / SIGNATURE_NAME).unlink(), "signature missing: manifest.json.sig"),
    "signature truncated": (lambda f: (f / SIGNATURE_NAME).write_bytes(b"\0" * 63), "is 63 bytes, not an Ed25519"),
    "signature flipped": (lambda f: (f / SIGNATURE_NAME).write_bytes(b"\1" * 64), "signature does not match"),
    "signature a symlink": (
        lambda f: ((f / SIGNATURE_NAME).unlink(), (f / SIGNATURE_NAME).symlink_to("/etc/hostname")),
        "unsafe path: manifest.json.sig (not a regular file): not read",
    ),
}


@pytest.mark.parametrize("case", sorted(SIGNATURE_DAMAGE))
def test_each_signature_problem_is_one_line(bundle: Path, keys: tuple[Path, Path], case: str) -> None:
    private, public = keys
    assert sign_bundle(bundle, private).problems == []
    damage, expected = SIGNATURE_DAMAGE[case]
    damage(bundle)
    problems = verify_bundle(bundle, public).problems
    assert len(problems) == 1 and expected in problems[0], problems
    if "does not match" in expected:
        assert fingerprint(load_public_key(public)) in problems[0]  # names the key it was checked against


def test_without_a_public_key_the_signature_is_only_noted(bundle: Path, keys: tuple[Path, Path]) -> None:
    sign_bundle(bundle, keys[0])
    _replace_labels(bundle)
    result = verify_bundle(bundle)
    assert result.ok and result.signed and result.signature_key is None  # the CLI says it was not checked


def test_a_bundle_that_fails_verification_is_not_signed(bundle: Path, keys: tuple[Path, Path]) -> None:
    (bundle / "evil.sh").touch()
    signed = sign_bundle(bundle, keys[0])
    assert signed.problems == ["unlisted: evil.sh (not in the manifest)"] and not (bundle / SIGNATURE_NAME).exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_openssl_verifies_the_signature(bundle: Path, keys: tuple[Path, Path]) -> None:
    sign_bundle(bundle, keys[0])
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(keys[1]), "-rawin"]
    command += ["-in", str(bundle / MANIFEST_NAME), "-sigfile", str(bundle / SIGNATURE_NAME)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0 and "Verified Successfully" in done.stdout


def _rsa_pem(folder: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _write(folder / "rsa", key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()))


def _ecdsa_ssh_pub(folder: Path) -> Path:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return _write(folder / "ecdsa.pub", key.public_bytes(s.Encoding.OpenSSH, s.PublicFormat.OpenSSH))


def _encrypted_pem(folder: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.BestAvailableEncryption(b"secret"))
    return _write(folder / "encrypted.pem", data)


def _encrypted_openssh(folder: Path) -> Path:
    if SSH_KEYGEN is None:
        pytest.skip("ssh-keygen is not installed")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "secret", "-f", str(folder / "enc")], check=True)
    return folder / "enc"


# (make the key file, load it as "private" or "public", what the one line says)
BAD_KEYS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "missing file": (lambda f: f / "absent", "private", "does not exist"),
    "a folder": (lambda f: (f / "dir").mkdir(parents=True) or f / "dir", "public", "not a regular file"),
    "garbage": (lambda f: _write(f / "junk", b"not a key at all"), "private", "is not an OpenSSH or PEM private key"),
    "garbage public": (lambda f: _write(f / "junk.pub", b"\x00\x01"), "public", "is not an OpenSSH or PEM public key"),
    "bad PEM body": (
        lambda f: _write(f / "bad.pem", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
        "private",
        "is not an OpenSSH or PEM private key",
    ),
    "RSA private key": (_rsa_pem, "private", "key of type RSA: bundle signatures are Ed25519"),
    "ECDSA public key": (_ecdsa_ssh_pub, "public", "bundle signatures are Ed25519"),
    "public key to sign": (lambda f: _keygen_pair(f)[1], "private", "is a public key: signing needs the private key"),
    "private key to verify": (lambda f: _keygen_pair(f)[0], "public", "is a private key: verify with the public key"),
    "encrypted PEM": (_encrypted_pem, "private", "passphrase-protected"),
    "encrypted OpenSSH": (_encrypted_openssh, "private", "passphrase-protected"),
    "oversized": (lambda f: _write(f / "big", b"-" * (65 << 10)), "private", "not a key file"),
}


@pytest.mark.parametrize("case", sorted(BAD_KEYS))
def test_each_unusable_key_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    make, half, expected = BAD_KEYS[case]
    path = make(tmp_path / "keys")
    load = load_private_key if half == "private" else load_public_key
    with pytest.raises(SigningKeyError) as raised:
        load(path)
    message = str(raised.value)
    assert expected in message and str(path) in message and "\n" not in message and raised.value.exit_code == 2


def test_without_cryptography_signing_says_how_to_install_it(bundle: Path, keys: tuple[Path, Path]) -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from convnext_export.pipeline.bundle import verify_bundle\n"
        f"assert verify_bundle({str(bundle)!r}).ok  # files only: no cryptography needed\n"
        "try:\n"
        f"    verify_bundle({str(bundle)!r}, {str(keys[1])!r})\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert MissingDependencyError.__name__ in done.stdout and "pip install 'convnext-export[sign]'" in done.stdout
