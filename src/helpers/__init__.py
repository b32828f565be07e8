"""The thin, tested library behind the notebooks of this suite.

One concern per module, in four layers that import downward only (``import-linter`` checks the
contracts in ``pyproject.toml``). Core: ``config`` (paths, profiles, presets), ``artifacts`` (run folders,
manifests, atomic files, resumable JSONL), ``models`` (embedded and Hugging Face LMs and encoders),
``generation`` (batched engine, vLLM backend, log-prob scoring), ``throughput``, ``plots``
(``save_fig``), ``errors`` (one-line user errors) and ``threads`` (PyTorch's thread count and
OpenMP wait policy, chosen at import, before torch loads). Domains: ``tasks`` (registry, checkers,
sandbox, loaders), ``reflection`` (prompts, pipeline, curation, ReflectEvo formats, analysis),
``training`` (trl + peft recipes), ``evaluation`` (Acc@t1 / Acc@t2, statistics, error
localization, self-evolution), ``values`` (inventories, roles, scoring), ``causal`` (discovery,
comparison with reference graphs, the paper's graphs), ``steering`` (hooks, activations, SAEs,
feature selection, steering experiments, the slider panel), ``csts`` (conditioned encoders for
C-STS) and ``kgc`` (text-based link prediction). Studies (``studies``): what a notebook runs, one
entry point per result. Interfaces: ``widgets`` (ipywidgets browsers),
``run_notebooks`` (headless execution) and ``cli`` (``python -m helpers``).

Every notebook and command takes its sizes from one of three profiles and, unless told otherwise,
runs offline on the two embedded models:

>>> from helpers.config import PROFILES
>>> PROFILES
('smoke', 'default', 'paper')
>>> from helpers.models import DEFAULT_ENCODER, DEFAULT_LM
>>> DEFAULT_LM, DEFAULT_ENCODER
('smollm2-135m-instruct', 'all-minilm-l6-v2')

Loading a model takes seconds, so this is shown rather than run as a doctest::

    from helpers.generation import SamplingParams, make_engine
    engine = make_engine()   # the embedded LM; any hub id or folder; vLLM when installed on a GPU
    outputs = engine.generate(["2 + 2 ="], SamplingParams(max_new_tokens=8))
    outputs[0][0].text
"""

from .threads import configure_threads

configure_threads()

__version__ = "0.1.0"
