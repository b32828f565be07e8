"""Value questionnaires for LMs: inventories, roles, scoring (see the modules' docstrings).

``inventory`` loads ValueBench or the embedded Schwartz inventory and splits it; ``roles`` makes
the personas an LM plays; ``scoring`` turns answers into one score per value and persona;
``study`` runs a whole scoring study for notebook 05; ``cli`` adds ``python -m helpers values``.
"""
