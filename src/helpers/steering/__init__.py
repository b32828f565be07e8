"""Value steering with sparse autoencoders and role prompts (notebook 06).

* ``hooks``: capture and steer the residual stream through forward hooks (chosen positions, or the
  tokens of a phrase), removed even when the forward pass raises.
* ``activations``: the offline corpus and its residual activations, sink tokens left out.
* ``sae``: TopK SAE training, resuming and loading through sae-lens; published SAEs; quality
  (variance explained, L0, dead features, the LM's loss with the SAE spliced in).
* ``pipeline``: model -> activations -> SAE -> quality.json, behind ``steer train-sae``.
* ``features``: the paper's feature selection at " your values", top contexts, promoted tokens.
* ``experiment``: coefficient sweeps, up / same / down shares, graph-guided specificity.
* ``panel``: the live slider panel. Notebook 06's study is ``helpers.studies.value_steering``, the
  ``steer`` commands are ``helpers.cli.steering``.
"""
