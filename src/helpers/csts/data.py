"""C-STS rows ``sentence1, sentence2, condition, label`` (label 1-5) from the sources users have.

    rows = read_csts_csv("my_rows.csv")                       # any CSV with those columns
    rows = load_reannotated("csts_train_reannotated.csv")     # the public re-annotated release
    rows = load_reannotated()                                 # ... from the HF hub (network)
    rows = load_official("csts.tar.enc", password, split="validation")   # the encrypted release
    train, test = split_rows(rows, test_fraction=0.2, seed=0)

The official release ships as ``csts.tar.enc``: a tar archive encrypted like
``openssl enc -aes-256-cbc -a -pbkdf2`` (AES-256-CBC, key and IV from PBKDF2-HMAC-SHA256 with
10,000 iterations over an 8-byte salt stored after ``Salted__``, base64 text). ``decrypt_openssl``
undoes exactly that with the ``cryptography`` package; ``encrypt_openssl`` is its inverse (tests,
and users who re-encrypt their own files). Decrypted text stays in memory: C-STS terms forbid
publishing it, so nothing here writes it anywhere.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import tarfile
from pathlib import Path

import pandas as pd

from ..artifacts import read_csv
from ..errors import UserError

COLUMNS = ("sentence1", "sentence2", "condition", "label")
REANNOTATED_HUB_ID = "LivNLP/C-STS_Reannotated"
PBKDF2_ITERATIONS = 10_000  # openssl enc -pbkdf2 default
_MAGIC = b"Salted__"


class WrongPasswordError(UserError):
    """The password does not decrypt the file (or the file is not an openssl -pbkdf2 file)."""


def _key_iv(password: str, salt: bytes) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    material = PBKDF2HMAC(algorithm=hashes.SHA256(), length=48, salt=salt,
                          iterations=PBKDF2_ITERATIONS).derive(password.encode("utf-8"))
    return material[:32], material[32:]


def encrypt_openssl(plain: bytes, password: str, salt: bytes | None = None) -> bytes:
    """``plain`` encrypted as ``openssl enc -e -aes-256-cbc -a -pbkdf2`` writes it (base64 text)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    salt = os.urandom(8) if salt is None else salt
    key, iv = _key_iv(password, salt)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    body = encryptor.update(padder.update(plain) + padder.finalize()) + encryptor.finalize()
    text = base64.b64encode(_MAGIC + salt + body)
    return b"\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + b"\n"


_TRUNCATED = ("The encrypted file is truncated or damaged (it ends before its last cipher block): download or "
              "copy it again, and check its size against the original.")


def _looks_like_tar(plain: bytes) -> bool:
    """Whether ``plain`` starts with a valid tar header (its checksum matches): proof that the
    password decrypted the start of the file."""
    if len(plain) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(plain[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def decrypt_openssl(encrypted: bytes, password: str) -> bytes:
    """Inverse of ``openssl enc -e -aes-256-cbc -a -pbkdf2``; WrongPasswordError when it fails."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    text = b"".join(encrypted.split())
    salted = text.startswith(base64.b64encode(_MAGIC)[:10])  # "U2FsdGVkX1": base64 of "Salted__"
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as error:
        if salted:
            raise UserError(_TRUNCATED) from error
        raise UserError("Not a base64 openssl file: expected the output of "
                        "`openssl enc -aes-256-cbc -a -pbkdf2` (text starting with U2FsdGVkX1).") from error
    if not raw.startswith(_MAGIC):
        raise UserError("Not a salted openssl file: it lacks the 'Salted__' header written by "
                        "`openssl enc -aes-256-cbc -a -pbkdf2`.")
    if len(raw) < 32 or (len(raw) - 16) % 16:
        raise UserError(_TRUNCATED)
    key, iv = _key_iv(password, raw[8:16])
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as error:
        if _looks_like_tar(padded):  # the password is right: only the end of the file is missing
            raise UserError(_TRUNCATED) from error
        raise WrongPasswordError("Wrong password: the file does not decrypt with it (bad padding). "
                                 "Use the password the C-STS authors sent you.") from error


def read_csts_csv(source, require_label: bool = True) -> pd.DataFrame:
    """Rows of a CSV (path or file object) with ``sentence1, sentence2, condition[, label]``.

    Missing columns raise a ValueError that names them and the columns the file has; labels must be
    numbers in [1, 5]. Extra columns are kept (an ``id`` column, for example).
    """
    if isinstance(source, (str, Path)):
        frame = read_csv(source, keep_default_na=False)
    else:
        frame = pd.read_csv(source, keep_default_na=False)
    return check_rows(frame, require_label=require_label, where=str(getattr(source, "name", source)))


def check_rows(frame: pd.DataFrame, require_label: bool = True, where: str = "the data") -> pd.DataFrame:
    """``frame`` with C-STS columns checked; text columns as str, ``label`` as float."""
    needed = COLUMNS if require_label else COLUMNS[:3]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"{where} lacks the column(s) {missing}; it has {list(frame.columns)}. A C-STS file "
                         f"needs a header row with {', '.join(needed)} (rename your columns to these names).")
    if frame.empty:
        raise UserError(f"{where} has a header but no rows: a C-STS file needs one row per sentence pair.")
    frame = frame.reset_index(drop=True).copy()
    for column in COLUMNS[:3]:
        frame[column] = frame[column].astype(str)
    if "label" in frame.columns:
        labels = pd.to_numeric(frame["label"], errors="coerce")
        bad = labels.isna() | (labels < 1) | (labels > 5)
        if require_label and bad.any():
            raise ValueError(f"{where}: {int(bad.sum())} label(s) are not numbers in [1, 5] "
                             f"(first bad row: {int(bad.idxmax())}).")
        frame["label"] = labels.astype(float)
    return frame


def load_reannotated(path: str | Path | None = None, split: str = "train") -> pd.DataFrame:
    """The re-annotated C-STS release: from a CSV file, or (``path=None``) from the HF hub."""
    if path is not None:
        return read_csts_csv(path)
    from datasets import load_dataset

    return check_rows(load_dataset(REANNOTATED_HUB_ID, split=split).to_pandas(), where=REANNOTATED_HUB_ID)


def load_official(archive: str | Path, password: str, split: str = "train") -> pd.DataFrame:
    """One split (``train``, ``validation`` or ``test``) of the official encrypted ``csts.tar.enc``.

    The archive is decrypted in memory; the member whose name ends with ``csts_<split>.csv`` is read.
    """
    plain = decrypt_openssl(Path(archive).read_bytes(), password)
    try:
        tar = tarfile.open(fileobj=io.BytesIO(plain))
    except tarfile.TarError as error:
        raise WrongPasswordError("The file decrypted but is not a tar archive: most likely a wrong "
                                 "password (or not the csts.tar.enc release).") from error
    with tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
        member = next((n for n in names if Path(n).name == f"csts_{split}.csv"), None)
        if member is None:
            raise ValueError(f"No csts_{split}.csv in {archive}; it holds {names}.")
        return read_csts_csv(io.BytesIO(tar.extractfile(member).read()), require_label=split != "test")


def split_rows(frame: pd.DataFrame, test_fraction: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split that keeps every sentence pair (with all its conditions) on one side."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}.")
    pair = frame["sentence1"] + "\x00" + frame["sentence2"]
    keys = pd.Series(pair.unique()).sample(frac=1.0, random_state=seed).tolist()
    test_keys = set(keys[: round(len(keys) * test_fraction)])
    in_test = pair.isin(test_keys)
    return frame[~in_test].reset_index(drop=True), frame[in_test].reset_index(drop=True)


def load_real_csts(csv: str | Path | None = None, archive: str | Path | None = None, password: str | None = None,
                   shared: str | Path | None = None, hub: bool = True) -> tuple[pd.DataFrame | None, str]:
    """Real C-STS rows from the first source that is given or present, and a sentence naming it:
    the official encrypted release (``archive`` and ``password``, its train split), a CSV (``csv``:
    the re-annotated file or any C-STS CSV), the ``shared`` re-annotated file, then the hub
    (``LivNLP/C-STS_Reannotated``, with ``hub``). ``(None, reason)`` when none is available: the
    caller falls back to synthetic data and records the reason as its ``data_source``."""
    if archive is not None:
        if not password:
            raise ValueError("The official C-STS archive needs its password (the one the C-STS authors sent you).")
        return load_official(archive, password, split="train"), f"official C-STS release {Path(archive).name} (train)"
    if csv is not None:
        if not Path(csv).is_file():
            raise FileNotFoundError(f"C-STS CSV {csv} does not exist; give the path of a CSV with "
                                    "sentence1, sentence2, condition, label.")
        return load_reannotated(csv), f"C-STS CSV {Path(csv).name}"
    if shared is not None and Path(shared).is_file():
        return load_reannotated(shared), f"re-annotated C-STS file {Path(shared).name}"
    if hub:
        try:
            return load_reannotated(), f"re-annotated C-STS from the hub ({REANNOTATED_HUB_ID})"
        except Exception as error:  # offline, or the datasets cache lacks it: say so and fall back
            return None, f"synthetic only (no C-STS file given; the hub {REANNOTATED_HUB_ID} failed: {type(error).__name__})"
    return None, "synthetic only (no C-STS file given or found)"
