"""Diagnosis codes of HAM10000 and the binary benign/malignant mapping."""

DX_CLASSES: tuple[str, ...] = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")

DX_NAMES: dict[str, str] = {
    "akiec": "Actinic keratoses / intraepithelial carcinoma",
    "bcc": "Basal cell carcinoma",
    "bkl": "Benign keratosis-like lesions",
    "df": "Dermatofibroma",
    "mel": "Melanoma",
    "nv": "Melanocytic nevi",
    "vasc": "Vascular lesions",
}

MALIGNANT_DX: frozenset[str] = frozenset({"mel", "bcc", "akiec"})
BINARY_CLASSES: tuple[str, ...] = ("benign", "malignant")


def binary_label(dx: str) -> str:
    """Map a HAM10000 diagnosis code to 'malignant' (mel, bcc, akiec) or 'benign'."""
    if dx not in DX_CLASSES:
        raise ValueError(f"unknown dx {dx!r}; expected one of {', '.join(DX_CLASSES)}")
    return "malignant" if dx in MALIGNANT_DX else "benign"
