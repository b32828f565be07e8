"""The thin, tested library behind the notebooks of this suite.

One concern per module: ``config`` (paths, profiles), ``artifacts`` (manifests, atomic files,
resumable JSONL), ``models`` (embedded and Hugging Face LMs and encoders), ``generation``
(batched engine, vLLM backend, log-prob scoring), ``throughput``, ``plots`` (``save_fig``),
``widgets`` (ipywidgets browsers), ``tasks`` (registry, checkers, sandbox, loaders),
``reflection`` (prompts, pipeline, curation, ReflectEvo formats, analysis, stages), ``training``
(trl + peft recipes), ``evaluation`` (Acc@t1 / Acc@t2, statistics, error localization,
self-evolution), ``values`` (inventories, roles, scoring), ``causal`` (discovery, comparison with
reference graphs, the paper's graphs), ``csts`` (conditioned encoders for C-STS), ``kgc``
(text-based link prediction), ``steering`` (activation hooks), ``run_notebooks`` (headless
execution) and ``cli`` (``python -m helpers``). ``threads`` chooses PyTorch's thread count and
OpenMP wait policy at import, before torch loads.
"""

from .threads import configure_threads

configure_threads()

__version__ = "0.1.0"
