"""Notebook 06's study: its settings per profile and one entry point per result.

    cfg = preset(STEERING_PRESETS, "default")
    models = load_steering_models(cfg)              # float32 LM for the SAE, scoring engine, phrase ids
    own_graph = notebook05_graph("default")         # notebook 05's graph, read from its run folder
    sae = prepare_sae(cfg, models, out_dir)         # trained here (or the paper's, loaded), measured
    candidates, chosen = choose_features(cfg, models, sae, out_dir)
    items = steering_items(cfg)                     # test items of notebook 05's split
    train_roles, heldout_roles = steering_roles(cfg)
    sweep = sweep_directions(cfg, models, sae, chosen, items, train_roles, heldout_roles, out_dir)
    shares = up_same_down(cfg, sweep, train_roles, heldout_roles)
    prompts = steer_with_role_prompts(cfg, models, train_roles, items, out_dir)
    effects = graph_side_effects(sweep, prompts, graph_expectations(own_graph), out_dir)
    check = check_feature_choice(cfg, sweep, graph_expectations(own_graph), train_roles, heldout_roles, out_dir)
    summary = steering_summary(...)                 # what summary.json holds

The SAE is trained on the embedded LM (or, in the paper profile, the paper's published Gemma SAE
is loaded). Steered personas are new generated roles, split into train roles (where features are
chosen and ranked) and held-out roles (where the ranking is checked), plus the no-role baseline.
Each step takes the results of the steps before it as arguments and returns its own (DataFrames,
small dataclasses); the ``*_figure`` functions build the notebook's figures from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import torch

from ..artifacts import atomic_write_text
from ..causal.compare import (descendants_of, neighbours_of, own_value_change, schwartz_reference, score_changes,
                              side_effects)
from ..causal.discovery import Graph
from ..config import data_dir
from ..errors import UserError
from ..generation import HFEngine
from ..models import load_lm
from ..values.inventory import PAPER_VALUES, VALUEBENCH_URL, embedded_inventory, load_valuebench, split_items
from ..values.roles import NO_ROLE, NO_SETTING, Persona, Role, cross, generate_roles, value_settings
from ..values.scoring import STEERING_PHRASE, build_prompt, score_personas, scores_table
from ..steering.activations import ActivationSet
from ..steering.experiment import (direction_shares, share_consistency, specificity_check, sweep_features,
                                   yes_shift_pattern, yes_shift_share)
from ..steering.features import feature_direction, promoted_tokens, select_features, top_contexts
from ..steering.panel import steering_panel
from ..steering.pipeline import build_sae, split_heldout
from ..steering.sae import encode, load_published_sae
from ..steering.settings import HELDOUT_TOKENS, SAETrainingSettings
from .value_graph import STAGE as VALUE_GRAPH_STAGE

OWN_GRAPH = "own graph (notebook 05)"
SIDE_EFFECT_COLUMNS = ["expected", "unexpected", "gap"]
SPECIFICITY_COLUMNS = ["heldout_rank", "heldout_specificity", "spearman"]
# What the SAE quality measures should look like; the quality table shows those the SAE has.
QUALITY_TARGETS = {"fraction_variance_explained": ">= 0.8", "mean_l0": "<= 64", "dead_fraction": "low",
                   "lm_loss_clean": "", "lm_loss_spliced": "close to clean"}


@dataclass(frozen=True)
class SteeringConfig:
    """Everything that decides the results of notebook 06 (recorded in its manifest)."""

    model: str = "smollm2-135m-instruct"
    scoring_dtype: str = "auto"  # steering and scoring passes (models.generation_dtype); the SAE sees float32
    layer: int = 18  # of 30: middle-to-late, as the paper's layer 12 of Gemma-2B's 18
    published_sae: tuple[str, str] | None = None  # (sae-lens release, id): load it instead of training
    sae_tokens: int = 100_000  # training activations for the SAE
    heldout_tokens: int = HELDOUT_TOKENS  # held-out activations its quality is measured on
    sae: SAETrainingSettings = SAETrainingSettings()  # width, k, epochs, batch size, lr, seed
    inventory: str = "embedded"
    values: tuple[str, ...] | None = None
    items_per_value: int = 2  # test items of notebook 05's split, per value
    n_candidates: int = 25  # features ranked at " your values" (the paper's 25)
    n_features: int = 6  # steered (the paper kept 10 after inspection)
    # times the unit decoder direction; the layer-18 residual norm is about 200 here, and below
    # 100 the changes stay near the noise of bf16 scoring
    coefficients: tuple[float, ...] = (100.0, 200.0, 400.0)
    panel_max_coefficient: float = 800.0
    n_roles: int = 8  # train roles (the no-role baseline comes on top)
    n_heldout_roles: int = 8
    role_prompt_roles: int = 4  # roles scored under each value inclination / disinclination
    with_bio: bool = True
    seed: int = 0
    batch_size: int = 16


STEERING_PRESETS = {
    "smoke": SteeringConfig(sae_tokens=6_000, heldout_tokens=1_500, sae=SAETrainingSettings(width=512, k=16, epochs=2.0),
                            items_per_value=1, n_candidates=8, n_features=2, coefficients=(200.0,), n_roles=3,
                            n_heldout_roles=3, role_prompt_roles=1, with_bio=False),
    "default": SteeringConfig(),
    "paper": SteeringConfig(model="google/gemma-2b-it", layer=12,
                            published_sae=("gemma-2b-it-res-jb", "blocks.12.hook_resid_post"),
                            inventory=VALUEBENCH_URL, values=PAPER_VALUES, items_per_value=4, n_features=10,
                            coefficients=(50.0, 100.0, 150.0), panel_max_coefficient=300.0, n_roles=50,
                            n_heldout_roles=50, role_prompt_roles=10, batch_size=32),
}


def steering_inventory(cfg: SteeringConfig) -> pd.DataFrame:
    """Every item of the configured inventory (feature selection reads them all)."""
    if cfg.inventory == "embedded":
        return embedded_inventory(cfg.values)
    return load_valuebench(cfg.inventory, values=cfg.values)


def steering_items(cfg: SteeringConfig) -> pd.DataFrame:
    """Up to ``items_per_value`` test items per value, from the 70/30 split notebook 05 uses
    (seeded the same way), so that no item that found the graph scores the steering."""
    _, test = split_items(steering_inventory(cfg), 0.7, cfg.seed)
    return test.groupby("value", sort=False).head(cfg.items_per_value).reset_index(drop=True)


def steering_roles(cfg: SteeringConfig) -> tuple[list[Role], list[Role]]:
    """(train roles, held-out roles): generated with a seed of their own, distinct from notebook
    05's discovery roles."""
    roles = generate_roles(cfg.n_roles + cfg.n_heldout_roles, seed=cfg.seed + 606, with_bio=cfg.with_bio)
    return roles[:cfg.n_roles], roles[cfg.n_roles:]


@dataclass
class SteeringModels:
    """The LM twice: in float32 for the SAE's activations and feature selection, and in
    ``cfg.scoring_dtype`` behind the engine that runs the steered scoring passes."""

    model: Any  # float32
    tokenizer: Any
    engine: HFEngine  # scoring model
    phrase_ids: list[int]  # token ids of " your values", where steering adds its direction


def load_steering_models(cfg: SteeringConfig) -> SteeringModels:
    """``cfg.model`` in float32 and in ``cfg.scoring_dtype``, the scoring engine and the phrase's token ids."""
    model, tokenizer = load_lm(cfg.model, dtype="float32")
    scoring_model, _ = load_lm(cfg.model, dtype=cfg.scoring_dtype)
    engine = HFEngine(scoring_model, tokenizer, batch_size=cfg.batch_size, score_batch_size=cfg.batch_size)
    phrase_ids = tokenizer(STEERING_PHRASE, add_special_tokens=False)["input_ids"]
    return SteeringModels(model, tokenizer, engine, phrase_ids)


def notebook05_graph(profile: str, method: str = "pc") -> Graph:
    """The value graph notebook 05 discovered with ``method`` in profile ``profile``, read from its
    run folder (``data/05_value_graph/<profile>/graph_<method>.json``); a UserError of one line
    says to run notebook 05 first when it is not there."""
    path = data_dir() / VALUE_GRAPH_STAGE / profile / f"graph_{method}.json"
    if not path.is_file():
        raise UserError(f"No value graph at {path}: run notebook 05 (05_value_graph_discovery) with "
                        f"PROFILE = {profile!r} first; this notebook reads the graph it writes there.")
    return Graph.from_json(path)


def graph_expectations(own_graph: Graph) -> dict[str, dict[str, set[str]]]:
    """Per graph, the values it expects a change of each value to move: descendants in the model's
    own graph, neighbours in the (undirected) Schwartz reference."""
    return {OWN_GRAPH: descendants_of(own_graph), "Schwartz reference": neighbours_of(schwartz_reference())}


@dataclass
class PreparedSAE:
    """The SAE that steering reads from, where it came from and how good it is."""

    sae: Any  # a sae-lens SAE
    layer: int  # the decoder layer whose output it reads
    quality: dict  # build_sae's measures (trained here) or its source (published)
    activations: ActivationSet | None  # the corpus activations (None for a published SAE)
    seconds: float


def prepare_sae(cfg: SteeringConfig, models: SteeringModels, out_dir: Path,
                log: Callable | None = print) -> PreparedSAE:
    """Seed torch's global generator with ``cfg.seed``, then load the published SAE
    ``cfg.published_sae`` or train a TopK SAE on ``cfg.sae_tokens`` corpus activations of layer
    ``cfg.layer`` (reused from ``out_dir / "sae"`` when already trained with the same settings) and
    measure it on ``cfg.heldout_tokens`` held-out activations."""
    torch.manual_seed(cfg.seed)
    start = time.perf_counter()
    if cfg.published_sae:
        sae, layer = load_published_sae(*cfg.published_sae)
        quality, activations = {"source": "/".join(cfg.published_sae), "layer": layer}, None
    else:
        layer = cfg.layer
        sae, quality, activations = build_sae(models.model, models.tokenizer, cfg.model, cfg.layer, cfg.sae_tokens,
                                              cfg.sae, out_dir / "sae", heldout_tokens=cfg.heldout_tokens)
    seconds = time.perf_counter() - start
    if log:
        log(f"SAE ready in {seconds:.0f} s: {sae.cfg.d_sae} features on layer {layer}; "
            f"{quality.get('train_activations', 'n/a')} training activations, "
            f"{quality.get('sink_share', 0):.1%} of positions left out as sinks.")
    return PreparedSAE(sae, layer, quality, activations, seconds)


def sae_quality_table(prepared: PreparedSAE) -> pd.DataFrame:
    """The SAE's quality measures beside what they should be (``QUALITY_TARGETS``)."""
    return pd.DataFrame([{"measure": k, "value": prepared.quality[k], "target": t}
                         for k, t in QUALITY_TARGETS.items() if k in prepared.quality])


def feature_density_figure(prepared: PreparedSAE, cfg: SteeringConfig) -> go.Figure | None:
    """Histogram over features of log10 of the share of held-out tokens where each fires (-7:
    never); None for a published SAE (no corpus activations here)."""
    if prepared.activations is None:
        return None
    sae, quality = prepared.sae, prepared.quality
    _, heldout = split_heldout(prepared.activations, cfg.heldout_tokens)
    firing = (encode(sae, heldout.activations) > 0).float().mean(0)
    density = pd.DataFrame({"log10 firing share": torch.log10(firing + 1e-7).numpy()})
    fig = px.histogram(density, x="log10 firing share", nbins=60, template="plotly_white",
                       title=f"How often each of the {sae.cfg.d_sae} SAE features fires on held-out tokens "
                             f"(FVE {quality['fraction_variance_explained']:.2f}, L0 {quality['mean_l0']:.0f})")
    fig.update_layout(xaxis_title="log10 share of held-out tokens where the feature fires (-7: never)",
                      yaxis_title="features")
    return fig


def choose_features(cfg: SteeringConfig, models: SteeringModels, prepared: PreparedSAE,
                    out_dir: Path) -> tuple[pd.DataFrame, list[int]]:
    """Rank SAE features by their mean activation at " your values" when the no-role persona is
    asked every inventory item with the values cue; returns the top ``cfg.n_candidates`` (also
    written to ``candidates.csv``) and the ids of the top ``cfg.n_features``, the ones steered."""
    no_role = Persona(NO_ROLE, NO_SETTING)
    prompts = [build_prompt(no_role, item, "logprob_yes_no", models.tokenizer, values_cue=True)
               for _, item in steering_inventory(cfg).iterrows()]
    candidates = select_features(models.model, models.tokenizer, prepared.sae, prepared.layer, prompts,
                                 models.phrase_ids, top_k=cfg.n_candidates)
    chosen = [int(f) for f in candidates["feature"][:cfg.n_features]]
    atomic_write_text(out_dir / "candidates.csv", candidates.to_csv(index=False))
    return candidates, chosen


def inspect_features(models: SteeringModels, prepared: PreparedSAE, chosen: list[int]) -> pd.DataFrame:
    """Per chosen feature: the tokens its decoder direction promotes through the unembedding and,
    for an SAE trained here, the three corpus contexts where it fires most."""
    inspection = promoted_tokens(models.model, models.tokenizer, prepared.sae, chosen)
    if prepared.activations is not None:
        contexts = top_contexts(prepared.sae, prepared.activations, models.tokenizer, chosen, k=3)
        first = contexts.groupby("feature")["context"].apply(lambda c: "  ||  ".join(c)).rename("top contexts")
        inspection = inspection.merge(first, left_on="feature", right_index=True, how="left")
    return inspection


def steering_directions(sae, chosen: list[int], seed: int) -> dict[str, torch.Tensor]:
    """The unit decoder direction of each chosen feature ("f<id>"), then "random": a unit random
    direction of the residual's size drawn from its own generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    random_direction = torch.randn(sae.cfg.d_in, generator=generator)
    directions = {f"f{f}": feature_direction(sae, f) for f in chosen}
    directions["random"] = random_direction / random_direction.norm()
    return directions


@dataclass
class FeatureSweep:
    """Every persona scored unsteered and under each (direction, coefficient)."""

    personas: list[Persona]  # the baseline, the train roles and the held-out roles
    values: list[str]
    directions: dict[str, torch.Tensor]
    scores: pd.DataFrame  # sweep_features' table (sweep_scores.csv)
    changes: pd.DataFrame  # steered minus the same persona unsteered, with direction and coefficient
    threshold: dict[str, float]  # a value "changed" when it moved by more than its std across unsteered roles
    seconds: float

    def at(self, coefficient: float) -> pd.DataFrame:
        """The changes of the runs at ``coefficient``."""
        return self.changes[self.changes["coefficient"] == coefficient]


def sweep_directions(cfg: SteeringConfig, models: SteeringModels, prepared: PreparedSAE, chosen: list[int],
                     items: pd.DataFrame, train_roles: list[Role], heldout_roles: list[Role], out_dir: Path,
                     log: Callable | None = print) -> FeatureSweep:
    """Score the baseline, train and held-out roles on ``items``, unsteered and with each
    direction of ``steering_directions`` times each of ``cfg.coefficients`` added at " your
    values"; writes ``sweep_scores.csv``."""
    values = sorted(items["value"].unique())
    personas = cross([NO_ROLE, *train_roles, *heldout_roles])
    directions = steering_directions(prepared.sae, chosen, cfg.seed)
    start = time.perf_counter()
    scores = sweep_features(models.engine, personas, items, prepared.layer, directions, cfg.coefficients,
                            models.phrase_ids)
    seconds = time.perf_counter() - start
    atomic_write_text(out_dir / "sweep_scores.csv", scores.to_csv(index=False))
    changes = score_changes(scores, values).merge(scores[["setting", "direction", "coefficient"]].drop_duplicates(),
                                                  on="setting")
    threshold = scores[scores["setting"] == "none"][values].std().to_dict()
    if log:
        log(f"{len(personas)} personas x {len(items)} items x {len(directions) * len(cfg.coefficients) + 1} settings "
            f"in {seconds:.0f} s")
    return FeatureSweep(personas, values, directions, scores, changes, threshold, seconds)


def mean_change_by_setting(sweep: FeatureSweep) -> pd.DataFrame:
    """Per steered run (direction @ coefficient), each value's score change averaged over personas."""
    return sweep.changes.groupby("setting", sort=False)[sweep.values].mean()


def yes_shift_by_setting(sweep: FeatureSweep, items: pd.DataFrame) -> pd.Series:
    """Per steered run, the share of its squared score change that a plain shift of every answer
    towards "yes" (or "no") explains (``helpers.steering.experiment.yes_shift_share``)."""
    return yes_shift_share(sweep.changes, sweep.values, yes_shift_pattern(items))


def dose_response_figure(sweep: FeatureSweep) -> go.Figure:
    """One panel per direction: each value's mean score change against the coefficient (0: unsteered)."""
    values = sweep.values
    dose = sweep.changes.groupby(["direction", "coefficient"])[values].mean().reset_index()
    zero = pd.DataFrame([{"direction": d, "coefficient": 0.0, **{v: 0.0 for v in values}} for d in sweep.directions])
    dose = pd.concat([zero, dose]).melt(id_vars=["direction", "coefficient"], var_name="value",
                                        value_name="mean change")
    fig = px.line(dose.sort_values("coefficient"), x="coefficient", y="mean change", color="value",
                  facet_col="direction", facet_col_wrap=4, markers=True, template="plotly_white",
                  title="Dose-response: mean change of each value score against the steering coefficient")
    fig.update_layout(xaxis_title="coefficient (x unit decoder direction)", yaxis_title="mean score change")
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return fig


def role_names(train_roles: list[Role], heldout_roles: list[Role]) -> tuple[set[str], set[str]]:
    """(train role names with the no-role baseline, held-out role names)."""
    return {r.name for r in train_roles} | {NO_ROLE.name}, {r.name for r in heldout_roles}


@dataclass
class RoleGroupShares:
    """Up / same / down shares on the train roles, and how well the held-out roles reproduce them."""

    consistency: dict[float, float]  # coefficient -> Pearson r of up-minus-down shares, train vs held-out
    train_shares: pd.DataFrame  # at the largest coefficient: direction x value -> up, same, down


def up_same_down(cfg: SteeringConfig, sweep: FeatureSweep, train_roles: list[Role], heldout_roles: list[Role],
                 log: Callable | None = print) -> RoleGroupShares:
    """Per direction and value, the share of roles whose score went up, stayed (within the value's
    threshold) or went down, on the train roles and on the held-out roles at each coefficient; their
    train/held-out consistency per coefficient, and the train shares at the largest coefficient."""
    train_names, heldout_names = role_names(train_roles, heldout_roles)

    def shares_on(names: set[str], coefficient: float) -> pd.DataFrame:
        runs = sweep.at(coefficient)
        return direction_shares(runs[runs["role"].isin(names)], sweep.values, sweep.threshold, by=["direction"])

    consistency = {c: share_consistency(shares_on(train_names, c), shares_on(heldout_names, c), by=["direction"])
                   for c in cfg.coefficients}
    train_shares = shares_on(train_names, max(cfg.coefficients))
    if log:
        log(f"train/held-out consistency of up-minus-down shares (Pearson r) by coefficient: "
            f"{ {c: round(r, 2) for c, r in consistency.items()} }")
    return RoleGroupShares(consistency, train_shares)


def up_same_down_figure(shares: RoleGroupShares, cfg: SteeringConfig) -> go.Figure:
    """One panel per direction: per value, the shares of train roles that went up / stayed / went down."""
    long = shares.train_shares.melt(id_vars=["direction", "value"], value_vars=["up", "same", "down"], var_name="went",
                                    value_name="share of roles")
    fig = px.bar(long, x="value", y="share of roles", color="went", facet_col="direction", facet_col_wrap=4,
                 color_discrete_map={"up": "#2a9d8f", "same": "#cccccc", "down": "#e76f51"}, template="plotly_white",
                 title=f"Share of train roles whose value score went up / stayed / went down "
                       f"(coefficient {max(cfg.coefficients):g})")
    fig.update_layout(xaxis_title="value", yaxis_title="share of roles")
    fig.update_xaxes(tickangle=45)
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return fig


@dataclass
class RolePromptSteering:
    """The first train roles and the baseline scored under +/- each value written into the role."""

    scores: pd.DataFrame  # role_prompt_scores.csv
    changes: pd.DataFrame  # steered minus the same role unsteered
    own_change: pd.DataFrame  # mean change of the targeted value: target x direction ("+" / "-")
    seconds: float


def steer_with_role_prompts(cfg: SteeringConfig, models: SteeringModels, train_roles: list[Role],
                            items: pd.DataFrame, out_dir: Path, log: Callable | None = print) -> RolePromptSteering:
    """Score the baseline and the first ``cfg.role_prompt_roles`` train roles, unsteered and with an
    inclination and a disinclination to every value in the role (no SAE), with the values cue;
    writes ``role_prompt_scores.csv``."""
    values = sorted(items["value"].unique())
    personas = cross([NO_ROLE, *train_roles[:cfg.role_prompt_roles]], [NO_SETTING, *value_settings(values)])
    start = time.perf_counter()
    scores = scores_table(score_personas(models.engine, personas, items, values_cue=True))
    seconds = time.perf_counter() - start
    atomic_write_text(out_dir / "role_prompt_scores.csv", scores.to_csv(index=False))
    changes = score_changes(scores, values)
    if log:
        log(f"{len(personas)} role-prompt personas in {seconds:.0f} s")
    return RolePromptSteering(scores, changes, own_value_change(changes), seconds)


def graph_side_effects(sweep: FeatureSweep, prompts: RolePromptSteering, expectations: dict[str, dict[str, set[str]]],
                       out_dir: Path) -> pd.DataFrame:
    """The side-effect table for each kind of steering (SAE features, the random direction, role
    prompts) and each graph of ``expectations``, with the sweep's per-value thresholds; written to
    ``side_effects.csv``, columns ``steering`` and ``graph`` naming the two."""
    values, changes = sweep.values, sweep.changes
    kinds = (("SAE features", changes[changes["direction"] != "random"]),
             ("random direction", changes[changes["direction"] == "random"]), ("role prompts", prompts.changes))
    effects = pd.concat([side_effects(runs[values], expected, sweep.threshold).assign(graph=name, steering=kind)
                         for kind, runs in kinds for name, expected in expectations.items()])
    atomic_write_text(out_dir / "side_effects.csv", effects.to_csv(index=False))
    return effects


def side_effect_means(effects: pd.DataFrame) -> pd.DataFrame:
    """Per (steering, graph): the mean expected and unexpected share of co-changed values and their gap."""
    return effects.groupby(["steering", "graph"])[SIDE_EFFECT_COLUMNS].mean()


def side_effects_figure(means: pd.DataFrame) -> go.Figure:
    """Per kind of steering (panels) and graph (x): mean expected against unexpected share."""
    long = means.reset_index().melt(id_vars=["steering", "graph"], value_vars=["expected", "unexpected"],
                                    var_name="kind", value_name="share")
    fig = px.bar(long, x="graph", y="share", color="kind", barmode="group", facet_col="steering", template="plotly_white",
                 title="Side effects: share of other values that changed too, where each graph expects it and elsewhere")
    fig.update_layout(xaxis_title="graph", yaxis_title="share of other values that changed too")
    fig.update_yaxes(range=[0, 1])
    fig.for_each_annotation(lambda a: a.update(text=a.text.split("=")[-1]))
    return fig


def check_feature_choice(cfg: SteeringConfig, sweep: FeatureSweep, expectations: dict[str, dict[str, set[str]]],
                         train_roles: list[Role], heldout_roles: list[Role], out_dir: Path) -> pd.DataFrame:
    """For each graph of ``expectations`` and "no graph" (every other value should stay), and each
    target value: the direction with the best predicted specificity on the train roles at the
    largest coefficient, and how it does on the held-out roles
    (``helpers.steering.experiment.specificity_check``); written to ``specificity_check.csv``."""
    train_names, heldout_names = role_names(train_roles, heldout_roles)
    top = sweep.at(max(cfg.coefficients))
    choices = {**expectations, "no graph": {v: set() for v in sweep.values}}
    check = specificity_check(top[top["role"].isin(train_names)], top[top["role"].isin(heldout_names)], sweep.values,
                              choices, by="direction")
    atomic_write_text(out_dir / "specificity_check.csv", check.to_csv(index=False))
    return check


def specificity_means(check: pd.DataFrame) -> pd.DataFrame:
    """Per graph, the mean held-out rank and specificity of the chosen directions and the mean Spearman rho."""
    return check.groupby("graph")[SPECIFICITY_COLUMNS].mean()


def best_direction_by_target(check: pd.DataFrame) -> pd.DataFrame:
    """The direction each graph chooses for each target value (target x graph)."""
    return check.pivot_table(index="target", columns="graph", values="best", aggfunc="first")


def live_panel(cfg: SteeringConfig, models: SteeringModels, prepared: PreparedSAE, sweep: FeatureSweep,
               role: Role, items: pd.DataFrame):
    """The slider panel (``helpers.steering.panel.steering_panel``) for ``role``, one slider per
    chosen feature's direction (the random control left out), up to ``cfg.panel_max_coefficient``."""
    return steering_panel(models.engine, Persona(role, NO_SETTING), items, prepared.layer,
                          {name: d for name, d in sweep.directions.items() if name != "random"}, models.phrase_ids,
                          max_coefficient=cfg.panel_max_coefficient)


def steering_summary(profile: str, cfg: SteeringConfig, prepared: PreparedSAE, candidates: pd.DataFrame,
                     sweep: FeatureSweep, items: pd.DataFrame, yes_shift: pd.Series, shares: RoleGroupShares,
                     prompts: RolePromptSteering, effects: pd.DataFrame, check: pd.DataFrame,
                     notebook_seconds: float) -> dict:
    """What ``summary.json`` records: settings, the SAE's quality, the steered candidates, sizes and
    timings, the mean absolute change per direction at the largest coefficient, the yes-shift shares,
    the train/held-out consistency, how much each role prompt moved its own value, the mean side
    effects per (steering, graph) and the specificity check per graph."""
    top = sweep.at(max(cfg.coefficients))
    return {"profile": profile, "model": cfg.model, "layer": prepared.layer, "sae_quality": prepared.quality,
            "sae_seconds": round(prepared.seconds, 1),
            "candidates": candidates.head(cfg.n_features).to_dict(orient="records"),
            "coefficients": list(cfg.coefficients), "personas": len(sweep.personas), "items": len(items),
            "sweep_seconds": round(sweep.seconds, 1), "role_prompt_seconds": round(prompts.seconds, 1),
            "mean_abs_change_at_max": top.groupby("direction")[sweep.values].apply(
                lambda d: float(d.abs().to_numpy().mean())).round(4).to_dict(),
            "yes_shift_share": yes_shift.round(3).to_dict(),
            "consistency": {str(c): round(r, 3) for c, r in shares.consistency.items()},
            "own_value_change": prompts.own_change.round(4).to_dict(),
            "side_effects": {f"{s} | {g}": row
                             for (s, g), row in side_effect_means(effects).round(4).to_dict(orient="index").items()},
            "specificity": specificity_means(check).round(3).to_dict(orient="index"),
            "notebook_seconds": round(notebook_seconds, 1)}
