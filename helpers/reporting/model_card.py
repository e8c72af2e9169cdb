"""The series' model card (Mitchell et al., 2019, "Model Cards for Model Reporting"), written from the metrics files.

`write_model_card(reports_dir)` writes reports_dir/model_card.md from reports_dir/metrics/*.json; the site build
(helpers.reporting.site.build_site) writes it whenever notebook 07's metrics exist and links it from the index.
07's metrics are the card's main source (the system chosen on validation, every model on the internal and the
external test, the operating points, calibration, selective prediction); 04's subgroup table and the training data
of 03, 04 and 05 add to it. A missing piece (no external test, no 04 metrics) is said in a sentence.

The prose is fixed text; every number goes through `Sources.number`, which records the metrics file, the key path
and the value it came from (a test checks every number of the card against the files), and the card ends with the
files it read and their creation times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.io import atomic_open
from .results import DATA_NAMES, NO_VALUE, fmt, load_metrics
from .summaries import SYNTHETIC_NOTE

MODEL_CARD = "model_card.md"
CARD_SOURCE = "07_external_test"
SUBGROUP_SOURCE = "04_resnet_transfer"
TRAINING_SOURCES = ("03_custom_cnn", "04_resnet_transfer", "05_efficientnet_binary")
INTERNAL = "test"  # 07's name of the HAM10000 lesion-disjoint test split
SEP = " · "  # between system and split in the names of 07's models
SECTIONS = ("Model details", "Intended use", "Out-of-scope uses", "Factors", "Metrics", "Evaluation data",
            "Training data", "Quantitative analyses", "Ethical considerations", "Caveats and recommendations")
STYLES = ("fraction", "count", "percent", "short", "seconds", "text", "level")  # 0.685, 1,510, 90%, 0.2, 96.6 (s),
# a recorded string such as an interval "0.627–0.809", and a coverage level that is a key ("0.8")
NO_EXTERNAL = ("No external test set was in this run, so this card cannot say how the model does on images from "
               "another collection: get the ISIC 2018 test with `python -m helpers.data download --dataset "
               "isic2018-test` and rerun `07_external_test`.")

Key = str | int


@dataclass(frozen=True)
class Quote:
    """A number the card shows: its metrics file (by notebook name), key path, value, text and style."""

    source: str
    path: tuple[Key, ...]
    value: Any
    shown: str
    style: str


@dataclass
class Sources:
    """The metrics files a card may read (by notebook name), those it read, and every number it quoted from them."""

    metrics: Mapping[str, Mapping[str, Any]]
    read: list[str] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)

    def get(self, source: str, *path: Key) -> Any:
        """The value at path in a metrics file (None when the file or a key is missing); the file counts as read."""
        if source not in self.metrics:
            return None
        if source not in self.read:
            self.read.append(source)
        value: Any = self.metrics[source]
        for key in path:
            if isinstance(value, Mapping):
                value = value.get(key)
            elif isinstance(value, list) and isinstance(key, int) and -len(value) <= key < len(value):
                value = value[key]
            else:
                return None
        return value

    def number(self, source: str, *path: Key, style: str = "fraction") -> str:
        """The value at path shown in style (STYLES; "level": the last key itself), recorded as a Quote: the one way
        a number enters the card."""
        value = _level(path[-1]) if style == "level" else self.get(source, *path)
        shown = _formatted(value, style)
        self.quotes.append(Quote(source, tuple(path), value, shown, style))
        return shown

    def interval(self, source: str, *path: Key) -> str:
        """The 95% interval [low, high] at path as "low–high" (a dash when there is none)."""
        interval = self.get(source, *path)
        if not (isinstance(interval, list) and len(interval) == 2):
            return NO_VALUE
        return f"{self.number(source, *path, 0)}–{self.number(source, *path, 1)}"


def _level(key: Key) -> float | None:
    try:
        return float(key)
    except ValueError:
        return None


def _formatted(value: Any, style: str) -> str:
    """value as the card shows it in style (a dash when it is missing or not a number)."""
    if style not in STYLES:
        raise ValueError(f"unknown number style {style!r}: one of {', '.join(STYLES)}")
    if style == "text":
        return NO_VALUE if value is None or value == "" else str(value)
    if style == "fraction" or not _is_number(value):
        return fmt(value)
    if style == "count":
        return f"{value:,}" if isinstance(value, int) else NO_VALUE
    if style == "percent":
        return f"{value:.0%}"
    return f"{value:,.1f}" if style == "seconds" else f"{value:g}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ---------------------------------------------------------------- what 07's metrics hold


def external_name(s: Sources) -> str | None:
    """The name of 07's external test set (None when the run had none)."""
    name = s.get(CARD_SOURCE, "external", "name")
    return name if isinstance(name, str) and name else None


def card_splits(s: Sources) -> list[str]:
    """07's test splits: the internal one, then the external one when there is one."""
    external = external_name(s)
    return [INTERNAL] + ([external] if external else [])


def systems(s: Sources) -> list[str]:
    """The systems 07 tested (its models' names without the split), in order."""
    names = [name.split(SEP)[0] for name in s.get(CARD_SOURCE, "models") or {}]
    return list(dict.fromkeys(names))


def split_name(s: Sources, split: str) -> str:
    """A test split as readers know it: the internal split with its data set, an external one by its name."""
    if split != INTERNAL:
        return split
    source = str(s.get(CARD_SOURCE, "data_source"))
    return f"{DATA_NAMES.get(source, source)} lesion-disjoint test"


def entry_key(system: str, split: str) -> str:
    """The name of a system's entry on a split in 07's models."""
    return f"{system}{SEP}{split}"


def decision_path(s: Sources, key: str) -> tuple[str, ...]:
    """The key path of a model's balanced decision in 07's metrics, else of its arg-max metrics (binary models)."""
    decided = ("models", key, "balanced_decision")
    return decided if isinstance(s.get(CARD_SOURCE, *decided), Mapping) else ("models", key)


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table (pipes in cells escaped)."""
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell).replace("|", "\\|") for cell in line) + " |" for line in lines)


def with_ci(value: str, interval: str) -> str:
    """A shown value with its interval in brackets, or a lone dash when both are missing."""
    return NO_VALUE if value == interval == NO_VALUE else f"{value} ({interval})"


def bullets(lines: Iterable[str]) -> str:
    """A markdown list."""
    return "\n".join(f"- {line}" for line in lines)


# ---------------------------------------------------------------- the sections


def title_block(s: Sources) -> str:
    """The card's title, what it is, and the warnings a synthetic or smoke run needs."""
    lines = [f"# Model card: {s.get(CARD_SOURCE, 'choices', 'best')}", "",
             "*A teaching model from the skin-lesion course, not a medical device.* This card follows Mitchell et al., "
             "2019, \"Model Cards for Model Reporting\". The site build (`python -m helpers.reports --site`) writes it "
             "from the metrics files in `metrics/`: change `helpers/reporting/model_card.py`, not this file."]
    if s.get(CARD_SOURCE, "data_source") == "synthetic":
        lines += ["", SYNTHETIC_NOTE]
    if s.get(CARD_SOURCE, "preset") == "smoke":
        lines += ["", "*`smoke` preset: a few small images and a moment of training per model; these numbers only show "
                      "that the code runs.*"]
    return "\n".join(lines)


def model_details(s: Sources) -> str:
    """What the system is: the models, the ensemble, the decision rules fitted on validation, the run."""
    c, best = CARD_SOURCE, s.get(CARD_SOURCE, "choices", "best")
    trained_by = ", ".join(f"[`{name}`]({name}.html)" for name in TRAINING_SOURCES)
    models = "; ".join(f"**{name}**: {description}" for name, description in (s.get(c, "models_tested") or {}).items())
    lines = [f"**System:** {best}, the system with the best validation balanced accuracy under its balanced decision "
             f"({s.number(c, 'choices', 'validation_balanced_accuracy', best)}).",
             f"**Models** (trained by {trained_by}): {models}.", *ensemble_line(s),
             "**Test-time augmentation:** " + ("flips, for every model." if s.get(c, "tta") else "none."),
             f"**Run:** `{c}`, preset `{s.get(c, 'preset')}`, on {s.get(c, 'device_name')}, created "
             f"{s.get(c, 'created')}, wall time {s.number(c, 'wall_time_s', style='seconds')} s."]
    target = s.number(c, "choices", "target_sensitivity", style="percent")
    return (bullets(lines) + "\n\nThe decision rules, each fitted on the validation split: a temperature per model "
            "(probabilities), tau of the balanced decision (logit adjustment by the training split's class "
            f"frequencies), and the malignant threshold on P(mel + bcc + akiec) fitted for {target} sensitivity:\n\n"
            + decision_rules(s))


def ensemble_line(s: Sources) -> list[str]:
    """The ensemble's line of the model details: its members and the weight validation chose (none without two)."""
    c, members = CARD_SOURCE, s.get(CARD_SOURCE, "choices", "members") or []
    if len(members) != 2:
        return []
    weight = s.number(c, "choices", "ensemble_weight", style="short")
    return [f"**Ensemble** ({s.get(c, 'choices', 'ensemble')}): the average of the calibrated probabilities of "
            f"{members[0]} and {members[1]}, with weight {weight} on {members[1]}, chosen by validation log loss."]


def decision_rules(s: Sources) -> str:
    """The table of each system's temperature, tau, malignant threshold and validation balanced accuracy."""
    c = CARD_SOURCE
    rows = [[system, s.number(c, "choices", "temperatures", system),
             s.number(c, "choices", "taus", system, style="short"), s.number(c, "choices", "malignant_thresholds", system),
             s.number(c, "choices", "validation_balanced_accuracy", system)] for system in systems(s)]
    return table(["system", "temperature", "tau", "malignant threshold", "validation balanced accuracy"], rows)


def intended_use(s: Sources) -> str:
    """Who the model is for and what for (fixed text)."""
    return ("A teaching model. It lets learners of the course see, on real dermoscopic images, how a classifier is "
            "evaluated beyond one test score: on an external test set, at operating points fitted on validation, after "
            "calibration, and when it may abstain. It is also a baseline for methodological exercises (another external "
            "set, test-time adaptation, conformal prediction). Its users are the course's learners and teachers.")


def out_of_scope(s: Sources) -> str:
    """Uses the model is not for (fixed text, and the classes it knows)."""
    best = s.get(CARD_SOURCE, "choices", "best")
    classes = ", ".join(s.get(CARD_SOURCE, "models", entry_key(best, INTERNAL), "per_class_recall") or {})
    return bullets([
        "Any clinical use: diagnosis, triage, screening or reassurance of real patients. It is not a medical device, "
        "has no regulatory approval and was never tested in a clinic.",
        "Clinical (non-dermoscopic) photographs, smartphone pictures, histology or any image that is not a dermoscopic "
        "image of a single lesion.",
        f"Diagnoses outside the classes it was trained on ({classes}): it gives every image one of them.",
        "Patients unlike those of its training data, in particular darker skin types, children and lesions on mucosa "
        "or nails, which the data barely hold.",
        "Use without a clinician's judgement, or to rank people's risk."])


def factors(s: Sources) -> str:
    """The factors that move its performance, and which of them this card measures (fixed text)."""
    collection = ("measured, as the internal test against an external test set." if external_name(s) else
                  "not measured in this run: it had no external test set.")
    groups = (f"measured on the internal test in `{SUBGROUP_SOURCE}`'s subgroup table, for one model of that notebook."
              if s.get(SUBGROUP_SOURCE, "subgroups") else f"not measured here: no subgroup table of `{SUBGROUP_SOURCE}`.")
    return bullets([
        f"**Collection (clinic, camera, period):** {collection}",
        "**Diagnosis:** measured, as the recall of each class.",
        f"**Age, sex and anatomical site, and how the diagnosis was confirmed:** {groups}",
        "**Skin type:** not measured. HAM10000 records no Fitzpatrick type, and its patients are mostly fair-skinned.",
        "**Image quality, hair, ink marks, rulers:** not measured separately."])


def metrics_section(s: Sources) -> str:
    """How the card measures (fixed text, the bootstrap resamples and the target sensitivity)."""
    c = CARD_SOURCE
    boot = s.get(c, "config", "recipe", "settings", "n_boot")
    resamples = (f"{s.number(c, 'config', 'recipe', 'settings', 'n_boot', style='count')} bootstrap resamples"
                 if boot is not None else "bootstrap resamples")
    return bullets([
        "**Balanced accuracy** (the mean recall over the classes) is the headline: nevi dominate the data, so plain "
        "accuracy mostly measures nevi.",
        "**Accuracy** and **macro AUC** (one class against the rest, averaged; for the binary model its AUC) beside it.",
        "**Per-class recall**, and at the malignant threshold the **sensitivity** and **specificity** for malignant "
        f"lesions (mel, bcc, akiec), the threshold fitted on validation for "
        f"{s.number(c, 'choices', 'target_sensitivity', style='percent')} sensitivity.",
        "**Expected calibration error** (ECE) of the probabilities, before and after temperature scaling.",
        "**Selective prediction:** the area under the risk–coverage curve (AURC, lower is better) and, at each "
        "coverage level, the share of images decided and their balanced accuracy.",
        f"**95% intervals** from {resamples}: of lesions on the internal test, of images on the external test."])


def evaluation_data(s: Sources) -> str:
    """The internal and the external test sets."""
    best = s.get(CARD_SOURCE, "choices", "best")
    images = s.number(CARD_SOURCE, "models", entry_key(best, INTERNAL), "n_test", style="count")
    internal = (f"**{split_name(s, INTERNAL)}** ({images} images): lesions none of whose images were used for training "
                "or validation, from the same collection as the training images.")
    external = external_name(s)
    if external is None:
        return bullets([internal]) + "\n\n" + NO_EXTERNAL
    isic = ("" if "ISIC 2018" not in external else "\n\nThe ISIC 2018 Task 3 test set was held out of the public "
            "HAM10000 release; part of it comes from the same clinics in a later period, so it is a mild shift, not a new "
            "population. It has no lesion ids, so its intervals resample images.")
    return bullets([internal, external_line(s, external)]) + isic


def external_line(s: Sources, external: str) -> str:
    """The external test set: its images, how many this preset keeps, and what was left out of it."""
    c, settings = CARD_SOURCE, ("config", "recipe", "settings")
    kept = ("" if s.get(c, *settings, "max_external_images") is None else
            f"; this preset keeps at most {s.number(c, *settings, 'max_external_images', style='count')}, an equal share "
            "per diagnosis")
    left_out = ", ".join(f"{reason} {s.number(c, 'external', 'excluded', reason, style='count')}"
                         for reason in s.get(c, "external", "excluded") or {})
    return (f"**{external}** ({s.number(c, 'external', 'n_images', style='count')} images{kept}): another collection, "
            "never used for any choice." + (f" Left out: {left_out}." if left_out else ""))


def training_data(s: Sources) -> str:
    """The data the models were trained on: fixed text on HAM10000, then each training notebook's run."""
    lines = []
    for name in TRAINING_SOURCES:
        if name not in s.metrics:
            lines.append(f"`{name}`: no metrics in this reports folder, so its training data is not described here.")
            continue
        lines.append(f"[`{name}`]({name}.html): {s.number(name, 'n_images', style='count')} images of "
                     f"`{s.get(name, 'data_source')}`, split `{s.get(name, 'split')}`, preset `{s.get(name, 'preset')}`, "
                     f"created {s.get(name, 'created')}.")
    return ("HAM10000 (Tschandl et al., 2018) holds dermoscopic images of pigmented lesions from a clinic in Vienna and "
            "a practice in Queensland: mostly fair-skinned Central European and Australian patients. Nevi are most of "
            "it; dermatofibromas and vascular lesions are rare. Every notebook shares one lesion-disjoint split into "
            "training, validation and test, so no lesion has images on two sides. The image counts below are those of "
            "the data each notebook split, not of its training split alone:\n\n" + bullets(lines))


def quantitative(s: Sources) -> str:
    """The chosen system, every model, the operating points, calibration, selective prediction and 04's subgroups."""
    parts = [("The chosen system", chosen_system(s)), ("Every model on each test set", every_model(s)),
             ("Operating points", operating_points(s)), ("Calibration", calibration(s)),
             ("Selective prediction", selective(s)), ("Subgroups", subgroups(s))]
    return "\n\n".join(f"### {title}\n\n{body}" for title, body in parts)


def chosen_system(s: Sources) -> str:
    """The chosen system's balanced decision and AUC on each test set, its per-class recall, the published reference
    and 07's goals."""
    c, best = CARD_SOURCE, s.get(CARD_SOURCE, "choices", "best")
    lines = []
    for split in card_splits(s):
        key = entry_key(best, split)
        decided = decision_path(s, key)
        images = s.number(c, "models", key, "n_test", style="count")
        lines.append(f"On the **{split_name(s, split)}** ({images} images), {best}'s balanced decision reaches "
                     f"balanced accuracy {s.number(c, *decided, 'balanced_accuracy')} "
                     f"(95% CI {s.interval(c, *decided, 'ci95', 'balanced_accuracy')}) and accuracy "
                     f"{s.number(c, *decided, 'accuracy')}; its probabilities reach macro AUC "
                     f"{s.number(c, 'models', key, 'macro_auc')} "
                     f"(95% CI {s.interval(c, 'models', key, 'ci95', 'macro_auc')}).")
    if external_name(s) is None:
        lines.append(NO_EXTERNAL)
    parts = [" ".join(lines), recall_table(s, best)]
    if s.get(c, "published", "source"):
        parts.append(f"For comparison, {s.get(c, 'published', 'source')} reports accuracy "
                     f"{s.number(c, 'published', 'accuracy')} and macro AUC {s.number(c, 'published', 'macro_auc')} on "
                     f"the ISIC 2018 test set for {s.get(c, 'published', 'model')}.")
    goals = s.get(c, "goals") or {}
    if goals:
        parts.append(f"The goals `{c}` sets itself:\n\n" + table(
            ["goal", "value", "target", "met"],
            [[goal, s.number(c, "goals", goal, "value"), s.number(c, "goals", goal, "target"),
              "yes" if s.get(c, "goals", goal, "met") else "no"] for goal in goals]))
    return "\n\n".join(parts)


def recall_table(s: Sources, system: str) -> str:
    """The per-class recall of a system's balanced decision on each test set."""
    splits = card_splits(s)
    paths = [decision_path(s, entry_key(system, split)) + ("per_class_recall",) for split in splits]
    classes = s.get(CARD_SOURCE, *paths[0]) or {}
    rows = [[dx, *(s.number(CARD_SOURCE, *path, dx) for path in paths)] for dx in classes]
    return table(["class", *(f"recall, {split_name(s, split)}" for split in splits)], rows)


def every_model(s: Sources) -> str:
    """Every system's metrics on each test set, with 95% intervals."""
    c = CARD_SOURCE
    rows = []
    for split in card_splits(s):
        for system in systems(s):
            key = entry_key(system, split)
            entry = s.get(c, "models", key)
            if not isinstance(entry, Mapping):
                continue
            auc = "auc" if "auc" in entry else "macro_auc"
            decided = (with_ci(s.number(c, "models", key, "balanced_decision", "balanced_accuracy"),
                               s.interval(c, "models", key, "balanced_decision", "ci95", "balanced_accuracy"))
                       if isinstance(entry.get("balanced_decision"), Mapping) else NO_VALUE)
            rows.append([system, split_name(s, split), s.number(c, "models", key, "n_test", style="count"),
                         s.number(c, "models", key, "accuracy"),
                         with_ci(s.number(c, "models", key, "balanced_accuracy"),
                                 s.interval(c, "models", key, "ci95", "balanced_accuracy")),
                         with_ci(s.number(c, "models", key, auc), s.interval(c, "models", key, "ci95", auc)), decided])
    return ("Arg-max decisions, with the balanced decision beside them (95% intervals in brackets):\n\n"
            + table(["system", "test set", "images", "accuracy", "balanced accuracy", "macro AUC (binary: AUC)",
                     "balanced decision: balanced accuracy"], rows))


def operating_points(s: Sources) -> str:
    """The malignant thresholds' sensitivity and specificity, and the balanced decision's melanoma recall, per split."""
    c, records = CARD_SOURCE, s.get(CARD_SOURCE, "operating_points") or []
    if not records:
        return "07's metrics record no operating points."
    rows = [[s.get(c, "operating_points", i, "system"), split_name(s, str(s.get(c, "operating_points", i, "split")))]
            + [s.number(c, "operating_points", i, column) for column in
               ("malignant threshold", "sensitivity", "specificity", "balanced decision: bal. acc.",
                "balanced decision: mel recall")] for i in range(len(records))]
    return (f"Each threshold was fitted on validation for {s.number(c, 'choices', 'target_sensitivity', style='percent')} "
            "malignant sensitivity; here is what it reached on each test set:\n\n"
            + table(["system", "test set", "malignant threshold", "sensitivity", "specificity",
                     "balanced decision: balanced accuracy", "balanced decision: melanoma recall"], rows))


def calibration(s: Sources) -> str:
    """The expected calibration error of each model before and after its validation temperature, per split."""
    c, records = CARD_SOURCE, s.get(CARD_SOURCE, "calibration") or []
    if not records:
        return "07's metrics record no calibration."
    rows = [[s.get(c, "calibration", i, "model"), split_name(s, str(s.get(c, "calibration", i, "split")))]
            + [s.number(c, "calibration", i, column) for column in ("temperature", "ECE before", "ECE after")]
            for i in range(len(records))]
    return ("Expected calibration error before and after the temperature fitted on validation:\n\n"
            + table(["model", "test set", "temperature", "ECE before", "ECE after"], rows))


def selective(s: Sources) -> str:
    """What abstention buys on each split: the AURC of each score and what is decided at each coverage level."""
    results = s.get(CARD_SOURCE, "selective") or {}
    if not results:
        return "07's metrics record no selective prediction."
    return "\n\n".join(selective_split(s, split) for split in results)


def selective_split(s: Sources, split: str) -> str:
    """Selective prediction on one split: a sentence with the AURCs, then a row per coverage level."""
    c, base = CARD_SOURCE, ("selective", split)
    aurc = ", ".join(f"{score} {s.number(c, *base, 'aurc', score)}" for score in s.get(c, *base, "aurc") or {})
    rows = [selective_row(s, (*base, "full_coverage"), "all (no abstention)")]
    rows += [selective_row(s, (*base, "at_coverage", level), s.number(c, *base, "at_coverage", level, style="level"))
             for level in s.get(c, *base, "at_coverage") or {}]
    return (f"**{split_name(s, split)}:** {s.get(c, *base, 'system')}'s balanced decision abstains when its "
            f"{s.get(c, *base, 'score')} is below the threshold fitted on validation for the coverage level. AURC: "
            f"{aurc}.\n\n" + table(["coverage level", "threshold", "coverage reached", "decided", "set aside",
                                    "melanomas set aside", "balanced accuracy", "accuracy", "melanoma sensitivity"], rows))


SELECTIVE_COLUMNS = (("threshold", "fraction"), ("coverage", "fraction"), ("n_kept", "count"), ("n_set_aside", "count"),
                     ("mel_set_aside", "count"), ("balanced_accuracy", "fraction"), ("accuracy", "fraction"),
                     ("mel_sensitivity", "fraction"))


def selective_row(s: Sources, path: tuple[Key, ...], level: str) -> list[str]:
    """One coverage level's row: the level, then SELECTIVE_COLUMNS of the result at path."""
    return [level] + [s.number(CARD_SOURCE, *path, column, style=style) for column, style in SELECTIVE_COLUMNS]


def subgroups(s: Sources) -> str:
    """04's subgroup table (age, sex, site, diagnosis type), or a sentence saying why there is none."""
    name = SUBGROUP_SOURCE
    if name not in s.metrics:
        return f"No metrics of `{name}` in this reports folder, so there is no subgroup table."
    records = s.get(name, "subgroups") or []
    if not records:
        return f"The metrics of `{name}` have no subgroup table."
    model = s.get(name, "subgroups_model")
    columns = (("images", "count"), ("lesions", "count"), ("mel lesions", "count"))
    rows = [[s.get(name, "subgroups", i, "subgroup"), s.number(name, "subgroups", i, "group", style="text")]
            + [s.number(name, "subgroups", i, column, style=style) for column, style in columns]
            + [with_ci(s.number(name, "subgroups", i, metric), s.number(name, "subgroups", i, ci, style="text"))
               for metric, ci in (("balanced_accuracy", "bal. acc. 95% CI"), ("macro_auc", "macro AUC 95% CI"),
                                  ("sensitivity", "sensitivity 95% CI"))]
            + [s.get(name, "subgroups", i, "flag") or ""] for i in range(len(records))]
    which = model or "one of its models (its metrics do not name which)"
    data = DATA_NAMES.get(str(s.get(name, "data_source")), "HAM10000")
    return (f"From [`{name}`]({name}.html): {which} on the {data} lesion-disjoint test, by subgroup of the metadata "
            "(95% intervals resample lesions within the group). `dx_type`, how the diagnosis was confirmed, belongs to "
            "the label, not the patient, so its groups differ in class mix by construction. Small groups have wide "
            "intervals, and a difference inside them says nothing.\n\n"
            + table(["factor", "group", "images", "lesions", "melanoma lesions", "balanced accuracy", "macro AUC",
                     "melanoma sensitivity", "note"], rows))


def ethical_considerations(s: Sources) -> str:
    """Risks and harms (fixed text)."""
    return bullets([
        "**Skin type:** HAM10000's patients are mostly fair-skinned Central Europeans and Australians, and it records no "
        "skin type. Classifiers trained on such data are known to do worse on darker skin; this one was never measured "
        "there.",
        "**Missed melanoma:** a melanoma called benign can delay treatment; a benign lesion called malignant costs a "
        "biopsy and worry. The sensitivity at the fitted threshold is a promise about data like the validation split "
        "only.",
        "**False reassurance and automation bias:** a confident wrong answer is worse than none. Abstention moves the "
        "hard cases to a clinician, which only helps when one is there to take them.",
        "**Data:** public, de-identified research images, used under their licences; no image is redistributed."])


def caveats(s: Sources) -> str:
    """What the numbers rest on, and what to do before trusting them (fixed text, the preset and hardware)."""
    c = CARD_SOURCE
    lines = [f"The numbers come from the `{s.get(c, 'preset')}` preset on {s.get(c, 'device_name')} "
             f"(`{c}` created {s.get(c, 'created')}); another preset or machine gives other numbers.",
             "Every choice (the system, the temperatures, the ensemble weight, the taus, the malignant thresholds and "
             "the selective-prediction thresholds) was fitted on the validation split; the test splits were only "
             "reported.",
             "The internal test comes from the same collection as the training images, so it is optimistic about other "
             "clinics and cameras."]
    external = external_name(s)
    lines.append(f"The {external} intervals resample images: where a lesion has several images there, they are too "
                 "narrow." if external else "Without an external test, nothing here says how the model does elsewhere.")
    lines.append("Before any use on new images, refit the temperature, the thresholds and the coverage levels on a "
                 "validation set from the new setting, and look at each subgroup; never use it on patients.")
    return bullets(lines)


SECTION_BODIES = (model_details, intended_use, out_of_scope, factors, metrics_section, evaluation_data, training_data,
                  quantitative, ethical_considerations, caveats)


def sources_line(s: Sources) -> str:
    """The metrics files the card read and their creation times."""
    files = "; ".join(f"`metrics/{name}.json` (created {s.metrics[name].get('created', NO_VALUE)})" for name in s.read)
    return f"*Sources: {files}.*"


# ---------------------------------------------------------------- the card


def source_path(reports_dir: Path) -> Path:
    """The card's main source: notebook 07's metrics file in reports_dir."""
    return reports_dir / "metrics" / f"{CARD_SOURCE}.json"


def written_card(reports_dir: Path) -> tuple[str, Sources]:
    """The model card of reports_dir and its Sources (files read, numbers quoted); raises without 07's metrics."""
    if not source_path(reports_dir).exists():
        raise FileNotFoundError(f"no {source_path(reports_dir)}: the model card is written from notebook 07's metrics")
    s = Sources(load_metrics(reports_dir))
    s.get(CARD_SOURCE)
    blocks = [title_block(s)] + [f"## {title}\n\n{body(s)}" for title, body in zip(SECTIONS, SECTION_BODIES)]
    return "\n\n".join(blocks + [sources_line(s)]) + "\n", s


def model_card(reports_dir: Path) -> str:
    """The model card (markdown) from reports_dir/metrics/*.json; raises FileNotFoundError without 07's metrics."""
    return written_card(reports_dir)[0]


def write_model_card(reports_dir: Path) -> Path | None:
    """Write reports_dir/model_card.md atomically from its metrics; None, and nothing written, without 07's metrics."""
    if not source_path(reports_dir).exists():
        return None
    path = reports_dir / MODEL_CARD
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(model_card(reports_dir))
    return path
