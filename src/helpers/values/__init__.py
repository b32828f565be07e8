"""Value questionnaires for LMs: inventories, roles, scoring (see the modules' docstrings).

``inventory`` loads ValueBench or the embedded Schwartz inventory and splits it; ``roles`` makes
the personas an LM plays; ``scoring`` turns answers into one score per value and persona;
notebook 05's study is ``helpers.studies.value_graph``.
"""
