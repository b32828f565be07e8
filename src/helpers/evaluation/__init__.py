"""Evaluation of reflection learning on held-out questions.

* ``protocol`` -- the per-question protocol (trial 1, self-judgement, reflection, trial 2), the
  variants, held-out items, Acc@t1 / Acc@t2 / Acc@self summaries and the CLI's result file;
* ``statistics`` -- bootstrap intervals, McNemar's paired test, the paper's table;
* ``localization`` -- does a reflection point at the step where the trial went wrong.

Self-evolution (generate with the round-k model, train round k+1, evaluate every round) is a study:
``helpers.studies.self_evolution``.
"""
