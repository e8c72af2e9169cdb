"""The Results sections of notebooks 03–07 as Markdown, written from the run's own numbers (the notebook displays them).

Every function takes metric summaries (helpers.evaluation.metrics.metrics_summary dictionaries, keyed by the row
names of the notebook's tables) and the few other values it quotes; none computes a metric of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .results import fmt

Summaries = Mapping[str, Mapping[str, Any]]
SYNTHETIC_NOTE = ("*Synthetic demo data: these numbers show that the pipeline runs, not how well a model diagnoses "
                  "skin lesions.*")


def data_name(data_source: str) -> str:
    """How a Results section names the data: HAM10000 or the synthetic demo."""
    return "synthetic demo" if data_source == "synthetic" else "HAM10000"


def with_interval(summary: Mapping[str, Any], metric: str = "balanced_accuracy", label: str = "balanced accuracy") -> str:
    """'balanced accuracy 0.673 (95% CI 0.621–0.733)': a metric with its lesion-bootstrap interval."""
    low, high = (summary.get("ci95") or {}).get(metric) or (None, None)
    return f"{label} {fmt(summary.get(metric))} (95% CI {fmt(low)}–{fmt(high)})"


def compare(a: str, b: str, summaries: Summaries, metric: str = "balanced_accuracy") -> str:
    """Whether a and b differ beyond their 95% intervals of metric, in words."""
    (a_low, a_high), (b_low, b_high) = (summaries[name]["ci95"][metric] for name in (a, b))
    if a_low > b_high:
        return f"{a} beats {b} beyond the 95% intervals"
    if b_low > a_high:
        return f"{b} beats {a} beyond the 95% intervals"
    return f"the intervals of {a} and {b} overlap, so this split cannot tell them apart"


def last_gap(history: pd.DataFrame) -> float:
    """Training minus validation accuracy after the last epoch of a fit's history."""
    return float((history["train_accuracy"] - history["val_accuracy"]).iloc[-1])


def _ending(data_source: str) -> str:
    return "\n\n" + SYNTHETIC_NOTE if data_source == "synthetic" else ""


def custom_cnn(summaries: Summaries, config: Any, *, reference: str, no_dropout: str, improved: str,
               baseline: Mapping[str, Any], gaps: Mapping[str, float], weights: Mapping[str, int],
               sizes: Mapping[str, int]) -> str:
    """Notebook 03's Results: the reference recipe against the majority class, dropout, the improved CNN.

    reference, no_dropout, improved: row names (improved without " + TTA"); gaps: the last epoch's training minus
    validation accuracy per dropout label, the reference's first; weights and sizes: per "reference"/"improved";
    config: the run's Config (data source and preset).
    """
    ref, ours = summaries[reference], summaries[f"{improved} + TTA"]
    (with_label, with_gap), (without_label, without_gap) = gaps.items()
    return (
        f"**This run** ({data_name(config.data_source)} data, `{config.preset}` preset, {ref['n_test']:,} lesion-disjoint "
        "test images):\n\n"
        f"- the **reference recipe** reached accuracy {fmt(ref['accuracy'])}, against {fmt(baseline['accuracy'])} for "
        f"always answering `{baseline['class']}`; its {with_interval(ref)} (chance: {fmt(baseline['balanced_accuracy'])}) "
        "is what it learned beyond the majority class;\n"
        f"- **dropout**: after the last epoch, training accuracy exceeded validation accuracy by {with_gap:+.3f} with "
        f"{with_label} and {without_gap:+.3f} with {without_label}; with {without_label} the model reached a test "
        f"{with_interval(summaries[no_dropout])};\n"
        f"- the **improved CNN** ({weights['improved']:,} weights at {sizes['improved']} px, against "
        f"{weights['reference']:,} for the reference CNN at {sizes['reference']} px) reached accuracy "
        f"{fmt(ours['accuracy'])}, {with_interval(ours)} and macro AUC {fmt(ours['macro_auc'])} with test-time "
        f"augmentation ({with_interval(summaries[improved])} without);\n"
        f"- improved CNN against the reference recipe: {compare(f'{improved} + TTA', reference, summaries)}."
        + _ending(config.data_source))


def resnet_transfer(summaries: Summaries, config: Any, *, rows: Mapping[str, str], sizes: Mapping[str, int],
                    pretrained_arch: str, calibration: Mapping[str, Any], cam_size: tuple[int, int], agreement: Any,
                    dermamnist: Any) -> str:
    """Notebook 04's Results: a line per row, then pretraining, class weights, calibration, Grad-CAM and DermaMNIST.

    rows: row names under the keys scratch, probe, tuned, plain and best (the best with TTA); sizes: input sizes
    under scratch, probe and tuned; calibration: model, temperature, before, after (the expected calibration error);
    agreement: helpers.evaluation.gradcam.mask_agreement's result (None without masks); dermamnist: the
    DermaMNIST runs (their models and leaked_test_lesions).
    """
    def line(name: str) -> str:
        s = summaries[name]
        return f"- {name}: {with_interval(s)}, accuracy {fmt(s['accuracy'])}, macro AUC {fmt(s['macro_auc'])}"

    temperature = calibration["temperature"]
    mask_check = (f"{agreement.ratio['all']:.2f} times a uniform map's mass inside the lesions;" if agreement is not None
                  else "no lesion masks, so no mask check;")
    derma = (f"{len(dermamnist.models)} runs on the official split, {dermamnist.leaked_test_lesions:,} of whose test "
             "lesions also have training images (table in section 7)." if dermamnist.models else "skipped.")
    lines = [f"**This run** ({data_name(config.data_source)} data, `{config.preset}` preset, "
             f"{summaries[rows['scratch']]['n_test']:,} lesion-disjoint test images; from scratch at {sizes['scratch']} px, "
             f"pretrained arm {pretrained_arch}: probe at {sizes['probe']} px, fine-tuned at {sizes['tuned']} px):", "",
             *(line(rows[key]) for key in ("scratch", "probe", "tuned", "plain", "best")), "",
             f"- pretraining: {compare(rows['tuned'], rows['scratch'], summaries)};",
             f"- class weights: {compare(rows['scratch'], rows['plain'], summaries)};",
             f"- calibration of {calibration['model']}: T = {temperature:.2f} "
             f"({'over' if temperature > 1 else 'under'}-confident before scaling), expected calibration error "
             f"{calibration['before']:.3f} before, {calibration['after']:.3f} after;",
             f"- Grad-CAM on a {cam_size[0]}×{cam_size[1]} feature map: {mask_check}", f"- DermaMNIST: {derma}"]
    return "\n".join(lines) + _ending(config.data_source)


def efficientnet_binary(task_b: Mapping[str, Any], task_a: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]], *,
                        data_name: str, melanoma_name: str, threshold: float, target_sensitivity: float, goal_auc: float,
                        outcome: Mapping[str, Any], kept: int, images: int) -> str:
    """Notebook 05's Results: the task B headline per 1,000 lesions, then task A's recipes on the official test folder.

    task_b: the lesion-disjoint test summary at threshold; task_a: per recipe ('reference', 'our') the official test's
    summary and its metrics without the near-duplicates of training images (kept of images are left);
    outcome: helpers.evaluation.screening.per_thousand_lesions at threshold.
    """
    auc, (low, high) = task_b["auc"], task_b["ci95"]["auc"]
    (reference_all, reference_kept), (our_all, our_kept) = task_a["reference"], task_a["our"]
    overlap = (reference_all["ci95"]["auc"][0] <= our_all["ci95"]["auc"][1]
               and our_all["ci95"]["auc"][0] <= reference_all["ci95"]["auc"][1])
    shift = max(abs(everything["auc"] - without["auc"]) for everything, without in task_a.values())
    per_lesion = 1000 / outcome["lesions"]
    return f"""
**Headline: task B, {data_name} lesion-disjoint test split** ({task_b['n_test']:,} images of {outcome['lesions']:,} lesions, none of them seen in training): AUC **{auc:.3f}** (95% CI {low:.3f}–{high:.3f}; the goal of {goal_auc} is {'reached' if auc >= goal_auc else 'not reached'}). At the threshold {threshold:.2f}, chosen on validation images for {target_sensitivity:.0%} sensitivity, the test sensitivity is {task_b['sensitivity']:.3f} and the specificity {task_b['specificity']:.3f}. Per 1,000 lesions like these, about {outcome['mel_lesions_per_1000']:.0f} are melanomas, and the model would call about **{outcome['mel_missed_per_1000']:.0f} of them benign** ({outcome['mel_missed']} of {outcome['mel_lesions']} melanoma lesions here; one more or one fewer would move that by {per_lesion:.1f} per 1,000), while flagging about {outcome['benign_flagged_per_1000']:.0f} benign lesions for a closer look.

**Task A, {melanoma_name}, official test folder** ({images:,} images; {kept:,} after removing the {images - kept} with a near-duplicate among the training images):

| recipe | AUC | accuracy | AUC, duplicates removed | accuracy, duplicates removed |
|---|--:|--:|--:|--:|
| reference (`reference recipe`) | {reference_all['auc']:.3f} | {reference_all['accuracy']:.3f} | {reference_kept['auc']:.3f} | {reference_kept['accuracy']:.3f} |
| ours (with TTA) | {our_all['auc']:.3f} | {our_all['accuracy']:.3f} | {our_kept['auc']:.3f} | {our_kept['accuracy']:.3f} |

Our recipe's AUC is {abs(our_all['auc'] - reference_all['auc']):.3f} {'above' if our_all['auc'] >= reference_all['auc'] else 'below'} the reference recipe's, and their 95% intervals {'overlap: this run does not separate the two recipes' if overlap else 'do not overlap'}. Removing the duplicates moves either AUC by at most {shift:.3f}. Both numbers come from an image-level split of a set without lesion ids, so they are not comparable with task B's.
"""


def _loosely_fitted(fit: Any) -> bool:
    return bool(pd.isna(fit.b) or pd.isna(fit.b_sd) or fit.b_sd > fit.b or fit.n_points < 4)


def power_law_fits(fits: pd.DataFrame) -> str:
    """Notebook 06's fits in words: per arm the sizes and runs it rests on and b ± its standard deviation, then how
    many arms have no fit, at most three sizes or a standard deviation of b above b (helpers.course.powerlaw.fit_arms)."""
    def line(fit: Any) -> str:
        rests_on = f"**{fit.label}**: {fit.n_points} size{'s' * (fit.n_points != 1)}, {fit.n_runs} run{'s' * (fit.n_runs != 1)}"
        if pd.isna(fit.b):
            return f"- {rests_on}: not fitted (three parameters need at least three sizes)"
        sd = "" if pd.isna(fit.b_sd) else f" ± {fit.b_sd:.2f}"
        return f"- {rests_on} ({fit.n_min:,} to {fit.n_max:,} images): b = {fit.b:.2f}{sd}, c = {fit.c:.2f}"

    loose = sum(map(_loosely_fitted, fits.itertuples()))
    return ("Each arm's fit rests on its mean error at a few training-set sizes (± is the fit's standard deviation of b):\n\n"
            + "\n".join(map(line, fits.itertuples()))
            + f"\n\nThree parameters fitted to at most {fits['n_points'].max()} points per arm pin the exponents only "
            f"loosely: in {loose} of {len(fits)} arms there is no fit, at most three sizes, or a standard deviation of b "
            "larger than b. Read such a b as *not measured*, not as *more data does not help*.")


def scaling_study(table: pd.DataFrame, fits: pd.DataFrame, overtakes: pd.DataFrame, noise: float | None,
                  n_test: int) -> str:
    """Notebook 06's Results: the grid, the ranking on the whole training split, pretrained against from scratch,
    the power laws and overtaking. table: helpers.course.scaling.results_table; noise: the typical seed spread."""
    largest = table[table["fraction"] == table["fraction"].max()]
    ranking = largest.groupby("label")["balanced_accuracy"].mean().sort_values(ascending=False)
    by_arm = table.groupby(["model", "pretrained", "n_train"])["balanced_accuracy"].mean()
    pretrained = [f"- **{model}**, {n:,} training images: {by_arm[model, False, n]:.3f} from scratch, "
                  f"{by_arm[model, True, n]:.3f} pretrained"
                  for model, is_pretrained, n in by_arm.index if is_pretrained and (model, False, n) in by_arm.index]
    resolved = int((~overtakes["verdict"].str.contains("seed noise")).sum()) if len(overtakes) else 0
    loose = sum(map(_loosely_fitted, fits.itertuples()))
    overtaking = (f"**Overtaking:** of {len(overtakes)} pairs of from-scratch models, {resolved} differ at the largest "
                  f"size by more than about two seed standard deviations ({2 * noise:.3f} in balanced accuracy); the "
                  "others are within seed noise (section 5)." if noise is not None and len(overtakes) else
                  "**Overtaking:** no size has two seeds of an arm here, so no gap between models can be told apart "
                  "from seed noise.")
    return (f"**The grid:** {len(table)} runs in {table['label'].nunique()} arms, training sets of "
            f"{table['n_train'].min():,} to {table['n_train'].max():,} images, every run tested on the same "
            f"{n_test:,} test images.\n\n"
            "**Test balanced accuracy on the whole training split** (mean over seeds), best first:\n\n"
            + "\n".join(f"- **{label}**: {value:.3f}" for label, value in ranking.items())
            + "\n\n**Pretrained against from scratch**, same model and subset:\n\n"
            + ("\n".join(pretrained) or "- no pretrained arm ran here (no ImageNet weights on this machine)")
            + f"\n\n**Power laws:** {loose} of {len(fits)} arms have no fit or only a loosely determined exponent "
            "(section 4). " + overtaking)


def external_test(summaries: Mapping[str, Summaries], choices: Mapping[str, Any], selective: Mapping[str, Any],
                  goals: Mapping[str, Mapping[str, Any]], config: Any, *, internal: str, external: str | None) -> str:
    """Notebook 07's Results: the system chosen on validation internally and externally, the operating point, the
    ensemble against its members, what abstention buys, and the goals.

    summaries: split -> system -> metrics summary (helpers.evaluation.shift.split_summaries); choices: the
    validation choices as a dictionary; selective: split -> selective results without curves; goals: shift.goals.
    """
    best, inside = choices["best"], summaries[internal]
    decided = inside[best]["balanced_decision"]
    lines = [f"The system chosen on validation is **{best}** (validation balanced accuracy "
             f"{fmt(choices['validation_balanced_accuracy'][best])} under its balanced decision, tau {choices['taus'][best]:g}). "
             f"On {data_name(config.data_source)}'s lesion-disjoint test its balanced decision reaches balanced accuracy "
             f"{fmt(decided['balanced_accuracy'])} and its probabilities macro AUC {fmt(inside[best]['macro_auc'])}."]
    if external is None:
        lines.append("No external test set was configured, so nothing here says how it does elsewhere: get the ISIC 2018 "
                     "test with `python -m helpers.data download --dataset isic2018-test` and rerun.")
        return " ".join(lines) + _ending(config.data_source)
    outside = summaries[external]
    lines.append(f"On {external} ({outside[best]['n_test']} images) the balanced decision reaches "
                 f"{with_interval(outside[best]['balanced_decision'])}, a drop of "
                 f"{fmt(decided['balanced_accuracy'] - outside[best]['balanced_decision']['balanced_accuracy'])}, and "
                 f"{with_interval(outside[best], 'macro_auc', 'macro AUC')}.")
    members = [m for m in choices["members"]]
    lines.append("The ensemble's external balanced accuracy (arg-max) is " + fmt(outside[choices["ensemble"]]["balanced_accuracy"])
                 + ", against " + " and ".join(f"{fmt(outside[m]['balanced_accuracy'])} for {m}" for m in members) + ".")
    kept = selective[external]["at_coverage"]
    level = next(iter(kept))
    lines.append(f"Abstaining by {choices['score'].replace('_', ' ')} at the validation threshold for coverage {level}, "
                 f"the model decides {fmt(kept[level]['coverage'])} of the external images with balanced accuracy "
                 f"{fmt(kept[level]['balanced_accuracy'])} and sets aside {kept[level]['n_set_aside']} "
                 f"({kept[level]['mel_set_aside']} of them melanomas).")
    table = ["", "| goal | value | target | met |", "|---|---|---|---|"]
    table += [f"| {name} | {fmt(g['value'])} | {fmt(g['target'])} | {'yes' if g['met'] else 'no'} |" for name, g in goals.items()]
    return " ".join(lines) + "\n" + "\n".join(table) + _ending(config.data_source)
