"""What an image-level split leaks (notebook 02): test lesions with images in train, and accuracy by kind of image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.splits import LINK_SOURCES, leaked_lesions

KINDS = ("lesion also in train", "other images of the lesion, none in train", "single-image lesion")


def leak_table(index: pd.DataFrame, splits: Mapping[str, pd.Series]) -> pd.DataFrame:
    """Per split: test images and lesions, test lesions that also have images in train, and the test images they cover."""
    def leak(split: pd.Series) -> dict[str, Any]:
        test, train = index.loc[split == "test", "lesion_id"], index.loc[split == "train", "lesion_id"]
        return {"test images": len(test), "test lesions": test.nunique(),
                "test lesions also in train": leaked_lesions(index, split),
                "share of test images whose lesion is in train": round(float(test.isin(train).mean()), 3)}

    return pd.DataFrame.from_dict({name: leak(split) for name, split in splits.items()}, orient="index")


def accuracy_by_lesion(data: Any, evaluation: Any) -> pd.DataFrame:
    """Each test image of data (a SplitData): whether evaluation got it right, and what train holds of its lesion
    (the `kind` column, one of KINDS)."""
    test = data.rows("test").assign(correct=evaluation.y_pred == evaluation.y_true)
    several = test["lesion_id"].map(data.index["lesion_id"].value_counts()) > 1
    kind = np.select([test["lesion_id"].isin(data.rows("train")["lesion_id"]), several], list(KINDS[:2]), KINDS[2])
    return test.assign(kind=pd.Categorical(kind, categories=list(KINDS)))


# ---------------------------------------------------------------- one lesion filed under two lesion_ids

LINK_SIMILARITY = 0.93  # cosine similarity of image embeddings; see linked_pairs
LINK_KEYS = ("dx", "sex", "localization", "age")  # a lesion photographed twice keeps these
EMBED_HEIGHT = 192  # embeddings of 256 x 192 inputs (HAM10000's 4:3 shape), no crop


def image_embeddings(paths: Sequence[str | Path], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """L2-normalised, globally pooled EfficientNet-Lite0 (ImageNet) features of each image file, shape (N, 1280)."""
    import torch
    from PIL import Image
    from tqdm import tqdm

    from ..models import create_model

    net = create_model("efficientnet_lite0", 1000, pretrained=True).eval()
    width = EMBED_HEIGHT * 4 // 3
    features = []
    with torch.no_grad():
        for start in tqdm(range(0, len(paths), batch_size), desc="embed images", disable=not progress):
            batch = [np.asarray(Image.open(p).convert("RGB").resize((width, EMBED_HEIGHT), Image.Resampling.BICUBIC),
                                dtype=np.float32) / 255 for p in paths[start:start + batch_size]]
            x = (torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2) - 0.5) / 0.5  # Lite0's input scaling
            features.append(torch.nn.functional.normalize(net.extract_features(x).mean((2, 3)), dim=1).numpy())
    return np.concatenate(features) if features else np.zeros((0, 1280), np.float32)


def linked_pairs(index: pd.DataFrame, embeddings: np.ndarray, threshold: float = LINK_SIMILARITY,
                 keys: Sequence[str] = LINK_KEYS) -> pd.DataFrame:
    """Pairs of images under different lesion_ids with embedding similarity >= threshold and equal `keys`.

    Why these rules (judged by looking at the pairs of HAM10000): with equal dx, sex, site and age, pairs above about
    0.94 are mostly the same lesion photographed again (same hairs, ruler marks, outline), and 0.93 to 0.94 still
    holds some among look-alikes; a false link only merges two lesions into one split group, which costs nothing,
    while a missed one leaks, so the threshold errs low. Copies re-framed much more than that look to an embedding
    like any similar lesion, and stay unfound.
    """
    if len(index) != len(embeddings):
        raise ValueError(f"{len(index)} images but {len(embeddings)} embeddings")
    missing = [k for k in ("image_id", "lesion_id", *keys) if k not in index]
    if missing:
        raise ValueError(f"linked_pairs needs the column(s) {', '.join(missing)}")
    key = np.array(["|".join(map(str, row)) for row in index[list(keys)].itertuples(index=False)])
    lesion = index["lesion_id"].astype(str).to_numpy()
    rows = []
    for start in range(0, len(index), 1024):
        similarity = embeddings[start:start + 1024] @ embeddings.T
        for i, j in zip(*np.nonzero(similarity >= threshold)):
            a, b = start + i, j
            if a < b and lesion[a] != lesion[b] and key[a] == key[b]:
                rows.append((index["image_id"].iloc[a], lesion[a], index["image_id"].iloc[b], lesion[b],
                             round(float(similarity[i, j]), 4)))
    columns = ["image_id_a", "lesion_id_a", "image_id_b", "lesion_id_b", "similarity"]
    pairs = pd.DataFrame(rows, columns=columns).sort_values("similarity", ascending=False, ignore_index=True)
    return pairs.assign(source=LINK_SOURCES[0])


def crossing_pairs(pairs: pd.DataFrame, index: pd.DataFrame, split: pd.Series) -> int:
    """How many linked pairs have their two images in different splits."""
    where = pd.Series(split.to_numpy(), index=index["image_id"].astype(str).to_numpy())
    a, b = pairs["image_id_a"].map(where), pairs["image_id_b"].map(where)
    return int((a.notna() & b.notna() & (a != b)).sum())


def search_recall(links: pd.DataFrame) -> tuple[int, int]:
    """(how many of the published pairs the embedding search also found, how many pairs are published)."""
    search, published = LINK_SOURCES
    sources = links["source"].fillna("") if "source" in links else pd.Series("", index=links.index)
    listed = sources.str.contains(published, regex=False)
    return int((listed & sources.str.contains(search, regex=False)).sum()), int(listed.sum())


def linked_in_split(index: pd.DataFrame, split: pd.Series, seed: int = 0) -> tuple[pd.DataFrame, str]:
    """The shipped linked pairs among index's images, and one generated line on what grouping them changes."""
    from ..data.splits import lesion_split, read_links

    links = read_links()
    ids = set(index["image_id"].astype(str))
    present = links[links["image_id_a"].isin(ids) & links["image_id_b"].isin(ids)].reset_index(drop=True)
    if present.empty:
        return present, ("None of the linked pairs is among this data's images (the list names HAM10000 images), "
                         "so grouping them changes nothing here.")
    ungrouped = lesion_split(index, seed=seed, links=links.iloc[:0])
    lesions = present[["lesion_id_a", "lesion_id_b"]].stack().nunique()
    line = (f"{len(present)} linked pairs ({lesions} lesion ids) are among this data's images. A split that "
            f"ignores them puts the two images of {crossing_pairs(present, index, ungrouped)} pairs in "
            f"different splits; the default split, which groups them, separates "
            f"{crossing_pairs(present, index, split)}.")
    found, published = search_recall(present)
    if published:
        line += (f" Of the {published} pairs published by {LINK_SOURCES[1]}, our embedding search found {found} "
                 f"(recall {found / published:.2f}); the list merges both.")
    return present, line
