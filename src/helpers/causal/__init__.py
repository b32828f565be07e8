"""Causal structure between value dimensions (see the modules' docstrings).

``discovery`` runs PC / FCI / GES from causal-learn with the paper's post-processing and
reduction, and bootstrap edge stability; ``compare`` holds the Schwartz reference graph, SHD,
edge precision / recall and the expected / unexpected side-effect analysis; ``paper`` reproduces
the published graphs of Kang et al. (2025) from their published score tables.
"""
