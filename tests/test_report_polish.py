"""What reports show: history tables (learning rates, counts), mixed-number tables, text cells in full, and the
scaling plots' log axes (labels that do not collide), legends beside the axes and one colour per arm."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from helpers import plots  # noqa: E402
from helpers.course.plots import compact_number, count_ticks  # noqa: E402
from helpers.course.tables import full_text, history_table, value_table  # noqa: E402


def test_history_table_shows_learning_rates_and_counts() -> None:
    history = pd.DataFrame({"epoch": [1, 2], "train_loss": [0.90123, 0.7], "lr": [1e-4, 3e-3],
                            "train_images": [6992.0, 6992.0], "epoch_time_s": [50.1704, 47.0]})
    table = history_table(history)
    assert list(table["lr"]) == ["1.0e-04", "3.0e-03"] and history.round(3)["lr"].tolist() == [0.0, 0.003]
    assert table["train_images"].dtype == "int64" and table["train_loss"].tolist() == [0.901, 0.7]
    assert "6992.0" not in table.to_string() and list(history["lr"]) == [1e-4, 3e-3]  # the input is untouched


def test_value_table_keeps_counts_whole() -> None:
    outcome = {"lesions": 1119, "threshold": 0.2393493, "mel_lesions": 92.0, "mel_lesions_per_1000": 82.2, "note": "x"}
    table = value_table(outcome)
    assert table["value"].tolist() == ["1,119", "0.239", "92", "82.2", "x"]
    assert "1119.000000" in pd.Series({k: v for k, v in outcome.items() if k != "note"}).to_string()  # pandas alone
    assert "000000" not in table.to_string() and list(table.index) == list(outcome)


def test_full_text_shows_long_cells_whole() -> None:
    note = "c at 0: no floor visible within the grid; parameters uncertain (SD of b larger than b)"
    frame = pd.DataFrame({"label": ["alexnet"], "note": [note]})
    assert note not in frame._repr_html_()  # pandas cuts it at 50 characters
    assert note in full_text(frame)._repr_html_() and note in repr(full_text(frame))


@pytest.mark.parametrize(("low", "high", "expected"), [
    (367, 7005, ["500", "1k", "2k", "5k"]),
    (30, 45, ["30", "40"]),
    (3e6, 6e7, ["5M", "10M", "20M", "50M"]),
    (1e11, 1e17, ["100G", "1T", "10T", "100T", "1P", "10P", "100P"]),
])
def test_count_ticks_never_crowd(low: float, high: float, expected: list[str]) -> None:
    assert [compact_number(t) for t in count_ticks(low, high)] == expected


def scaling_table() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for label, model, pretrained, params in (("small", "small", False, 3e6), ("small (pretrained)", "small", True, 3e6),
                                             ("large", "large", False, 6e7)):
        for n in (367, 705, 1762, 3502, 7005):
            acc = 0.2 + 0.05 * np.log10(n) + (0.2 if pretrained else 0)
            rows.append({"label": label, "model": model, "pretrained": pretrained, "parameters": params, "n_train": n,
                         "fraction": n / 7005, "seed": 0, "balanced_accuracy": acc, "error": 1 - acc,
                         "train_compute_flops": params * n * 10})
    table = pd.DataFrame(rows)
    fits = pd.DataFrame([{"label": label, "a": 1.0, "b": 0.05, "c": 0.0} for label in table["label"].unique()])
    return table, fits


def visible_labels_overlap(ax: plt.Axes) -> bool:
    """Whether any two visible x tick labels of ax overlap once drawn."""
    ax.figure.canvas.draw()
    boxes = sorted((label.get_window_extent() for label in ax.get_xticklabels() if label.get_text() and label.get_visible()),
                   key=lambda box: box.x0)
    return any(left.x1 > right.x0 for left, right in zip(boxes, boxes[1:]))


def test_scaling_plots_put_the_legend_beside_and_keep_ticks_apart() -> None:
    table, fits = scaling_table()
    for ax in (plots.scaling_error(table, fits), plots.scaling_metric(table), plots.scaling_cost(table, "parameters"),
               plots.scaling_cost(table, "train_compute_flops")):
        ax.figure.canvas.draw()
        legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
        assert legend.x0 >= axes.x1, "the legend sits beside the axes, over no point"
        assert not visible_labels_overlap(ax)
        assert all(label.get_text() in ("", *map(compact_number, count_ticks(*ax.get_xlim()))) for label in ax.get_xticklabels())
        plt.close(ax.figure)


def test_an_arm_keeps_its_colour_in_a_plot_of_fewer_arms() -> None:
    table, fits = scaling_table()
    colour = lambda ax: {c.get_label(): to_rgb(c.lines[0].get_color()) for c in ax.containers}  # noqa: E731
    full = plots.scaling_metric(table)
    subset = plots.scaling_metric(table[table["model"] == "small"])
    both = {label: colour(full)[label] for label in colour(subset)}
    assert colour(subset) == both and len(set(colour(full).values())) == 3
    plt.close("all")
