"""Reflection data in ReflectEvo's way: answer, fail, reflect, retry.

* ``prompts``  -- the instruction pool, the trial, reflection and retry prompts;
* ``pipeline`` -- ``ReflectionConfig`` and ``generate``: the resumable trial-reflect-retry run;
* ``curation`` -- D+, D+- and Dpref from a run, judged pairs, the release formats written;
* ``formats``  -- ReflectEvo's JSONL layouts;
* ``analysis`` -- tables over a run (accuracy by task, reflection lengths, instruction effects).

Training on the curated sets is ``helpers.training``; the variants notebooks 02-04 train and
evaluate are ``helpers.studies.reflection_variants``.
"""
