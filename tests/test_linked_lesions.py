"""Lesions filed under two lesion_ids: found by near-identical embeddings, kept in one split group."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.data.splits import LINK_COLUMNS, LINK_SOURCES, LINKED_LESIONS, lesion_groups, lesion_split, read_links
from helpers.evaluation.leakage import LINK_SIMILARITY, crossing_pairs, linked_pairs, search_recall

SEARCH, PUBLISHED = LINK_SOURCES


def toy_index() -> pd.DataFrame:
    return pd.DataFrame({"image_id": [f"I{i}" for i in range(6)], "lesion_id": ["A", "A", "B", "C", "D", "E"],
                         "dx": ["nv"] * 6, "sex": ["f", "f", "f", "f", "m", "f"], "localization": ["back"] * 6,
                         "age": [40.0, 40.0, 40.0, 40.0, 40.0, np.nan]})


def links(*pairs: tuple[str, str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=list(LINK_COLUMNS))


def test_groups_merge_linked_lesions_transitively_and_only_where_both_images_are_there() -> None:
    index = toy_index()
    groups = lesion_groups(index, links(("I2", "B", "I3", "C"), ("I3", "C", "I4", "D"), ("I9", "Z", "I5", "E"),
                                        ("I5", "X", "I0", "A")))  # the last two: an image absent, a lesion id wrong
    assert groups.tolist() == ["A", "A", "B", "B", "B", "E"]
    assert lesion_groups(index, links()).tolist() == index["lesion_id"].tolist()


def test_the_split_never_separates_a_linked_pair(synthetic_dir: Path) -> None:
    from helpers.data import load_ham10000

    index = load_ham10000(synthetic_dir, progress=False)
    firsts = index.groupby("lesion_id", observed=True).head(1).reset_index(drop=True)
    pairs = [(a.image_id, a.lesion_id, b.image_id, b.lesion_id)
             for a, b in zip(firsts.iloc[0:40:2].itertuples(), firsts.iloc[1:40:2].itertuples())]
    plain, grouped = lesion_split(index, seed=0, links=links()), lesion_split(index, seed=0, links=links(*pairs))
    table = pd.DataFrame(pairs, columns=list(LINK_COLUMNS)).assign(similarity=1.0)
    assert crossing_pairs(table, index, plain) > 0, "the toy links should cross an ungrouped split"
    assert crossing_pairs(table, index, grouped) == 0
    assert set(grouped) == {"train", "val", "test"}


def test_linked_pairs_need_near_identical_embeddings_and_equal_metadata() -> None:
    index = toy_index()
    rng = np.random.default_rng(0)
    base = rng.normal(size=(6, 16))
    base[3] = base[2] + 0.01  # B and C: one photograph twice
    base[4] = base[2] + 0.01  # D: the same picture, but another sex: not linked
    base[1] = base[0] + 0.01  # A twice: already one lesion, not a link
    embeddings = base / np.linalg.norm(base, axis=1, keepdims=True)
    pairs = linked_pairs(index, embeddings, threshold=0.99)
    assert pairs[["lesion_id_a", "lesion_id_b"]].values.tolist() == [["B", "C"]]
    with pytest.raises(ValueError, match="6 images but 5 embeddings"):
        linked_pairs(index, embeddings[:5])


def test_the_shipped_links_are_well_formed() -> None:
    shipped = pd.read_csv(LINKED_LESIONS, dtype={"similarity": float})
    assert set(LINK_COLUMNS) <= set(shipped.columns) and len(shipped) > 0
    sources = shipped["source"].str.split("; ")
    assert sources.map(lambda names: len(names) > 0 and set(names) <= set(LINK_SOURCES)).all()
    searched = sources.map(lambda names: SEARCH in names)
    assert (shipped.loc[searched, "similarity"] >= LINK_SIMILARITY).all()  # what the search found passed its threshold
    assert shipped.loc[~searched, "similarity"].isna().all()  # a published-only pair has no similarity of ours
    pairs = shipped[["image_id_a", "image_id_b"]].apply(frozenset, axis=1)
    assert not pairs.duplicated().any()  # a pair both found is one row naming both sources
    assert (shipped["lesion_id_a"] != shipped["lesion_id_b"]).all()
    assert shipped[["lesion_id_a", "lesion_id_b"]].stack().str.match(r"HAM_\d{7}$").all()
    assert len(read_links()) == len(shipped)


def test_search_recall_counts_the_published_pairs_the_search_also_found() -> None:
    table = links(("I0", "A", "I1", "B"), ("I2", "C", "I3", "D"), ("I4", "E", "I5", "F"), ("I6", "G", "I7", "H"))
    table["source"] = [SEARCH, f"{SEARCH}; {PUBLISHED}", PUBLISHED, PUBLISHED]
    assert search_recall(table) == (1, 3)
    assert search_recall(links(("I0", "A", "I1", "B"))) == (0, 0)  # a list without sources publishes nothing


@pytest.mark.skipif(not os.environ.get("HAM10000_DIR"), reason="real HAM10000 data not configured (set HAM10000_DIR)")
def test_on_real_data_every_link_fits_its_images_and_no_pair_crosses_the_default_split(tmp_path: Path) -> None:
    from helpers.data import load_ham10000, load_or_make_split

    index = load_ham10000(os.environ["HAM10000_DIR"], progress=False)
    shipped = read_links()
    rows = index.set_index("image_id")
    for side in ("a", "b"):
        assert shipped[f"image_id_{side}"].isin(rows.index).all()
        assert (rows.loc[shipped[f"image_id_{side}"], "lesion_id"].astype(str).to_numpy()
                == shipped[f"lesion_id_{side}"].to_numpy()).all()
    searched = shipped[shipped["source"].str.contains(SEARCH, regex=False)]
    for key in ("dx", "sex", "localization"):  # the search's rule (the published list has two pairs that differ)
        assert (rows.loc[searched["image_id_a"], key].astype(str).to_numpy()
                == rows.loc[searched["image_id_b"], key].astype(str).to_numpy()).all()
    assert (rows.loc[shipped["image_id_a"], "dx"].to_numpy() == rows.loc[shipped["image_id_b"], "dx"].to_numpy()).all()
    split = load_or_make_split(index, path=tmp_path / "split.csv")
    assert crossing_pairs(shipped, index, split) == 0
    old = lesion_split(index, seed=0, links=shipped.iloc[:0])
    print(f"{crossing_pairs(shipped, index, old)} of {len(shipped)} linked pairs cross the split that ignores links")


def test_linked_in_split_says_what_grouping_changes(synthetic_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from helpers import plots
    from helpers.data import load_ham10000
    from helpers.evaluation.leakage import linked_in_split

    index = load_ham10000(synthetic_dir, progress=False)
    present, line = linked_in_split(index, lesion_split(index))
    assert present.empty and "changes nothing here" in line
    if os.environ.get("HAM10000_DIR"):
        real = load_ham10000(os.environ["HAM10000_DIR"], progress=False)
        present, line = linked_in_split(real, lesion_split(real))
        found, published = search_recall(read_links())
        assert len(present) == len(read_links()) and "separates 0." in line
        assert f"Of the {published} pairs published by {PUBLISHED}, our embedding search found {found}" in line
        figure = plots.linked_pairs_grid(present, real, n=2)
        assert len([ax for ax in figure.axes if ax.images]) == 4
