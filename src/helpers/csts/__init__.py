"""Conditioned sentence representations on Conditional STS (C-STS).

A sentence embedding that depends on a condition ("the colour of the car"): two sentences are
similar under one condition and not under another. The subpackage holds

* ``data``       -- C-STS loaders (official encrypted release, re-annotated CSV or HF dataset,
                    any CSV with ``sentence1, sentence2, condition, label``) and a seeded split;
* ``synthetic``  -- a templated C-STS generator with known labels (offline runs and tests);
* ``methods``    -- one interface, five methods: cross-encoder, bi-encoder, tri-encoder
                    (Hadamard or concat+linear), hypernetwork (Hyper-CL), condition-specified router;
* ``router``     -- the router's thin wrapper around each layer's self-attention;
* ``training``   -- MSE (+ optional pairwise contrastive) training, scoring, metrics, save/load;
* ``explorer``   -- an ipywidgets explorer (scores of each method, router token weights);
* ``cli``        -- ``python -m helpers csts train|predict|decrypt``.
"""
