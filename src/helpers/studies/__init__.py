"""What the notebooks run: one entry point per result, built from the domain packages.

* ``reflection_variants``        -- notebooks 02-04: the trained variants, their run folders, training;
* ``self_evolution``             -- notebook 04: generate with round k's model, train round k+1;
* ``value_graph``                -- notebook 05: score roles, discover the value graph, compare it with
                                    the Schwartz reference, side effects, the paper's graphs;
* ``value_steering``             -- notebook 06: the SAE, feature choice, the coefficient sweep, role
                                    prompts, side effects and feature choice guided by notebook 05's graph;
* ``knowledge_graph_completion`` -- notebook 08: ``KGCConfig``, its presets and ``run_kgc``.

Studies import domains and core, never interfaces (``helpers.cli``, ``helpers.widgets``).
"""
