"""Does a model rely on artefacts? Detector agreement with tags by eye, test AUC
with and without each artefact, and how predictions move when it is removed
(against a control that fills as many pixels elsewhere); plus the plain
sentences a notebook prints from those numbers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ..evaluation.binary import binary_metrics, bootstrap_auc_ci, proportion_ci
from .artefacts import DEFAULT, DETECTED, Scan, Settings, control_mask, fill, remove, resize


def agreement(detected: pd.DataFrame, tags: pd.DataFrame) -> pd.DataFrame:
    """Detector vs labels by eye, per artefact the two tables both carry: counts,
    agreement, Cohen's kappa, and the detector's precision and recall (taking
    the eye as truth) with 95% Wilson intervals.

    Both tables carry ``path`` and one boolean column per artefact.
    """
    merged = tags.merge(detected, on="path", suffixes=("_eye", "_detector"))
    rows = []
    for artefact in [a for a in DETECTED if a in tags.columns and a in detected.columns]:
        eye = merged[f"{artefact}_eye"].astype(bool).to_numpy()
        det = merged[f"{artefact}_detector"].astype(bool).to_numpy()
        tp, fp = int((eye & det).sum()), int((~eye & det).sum())
        fn, tn = int((eye & ~det).sum()), int((~eye & ~det).sum())
        n = tp + fp + fn + tn
        observed = (tp + tn) / n if n else np.nan
        expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2 if n else np.nan
        kappa = (observed - expected) / (1 - expected) if n and expected < 1 else np.nan
        rows.append({"artefact": artefact, "n": n, "by_eye": tp + fn, "detected": tp + fp, "both": tp,
                     "detector_only": fp, "eye_only": fn, "agreement": observed, "kappa": kappa,
                     "precision": tp / (tp + fp) if tp + fp else np.nan,
                     "precision_ci95": list(proportion_ci(tp, tp + fp)),
                     "recall": tp / (tp + fn) if tp + fn else np.nan,
                     "recall_ci95": list(proportion_ci(tp, tp + fn))})
    return pd.DataFrame(rows).set_index("artefact")


def detector_sentences(table: pd.DataFrame, images: str) -> list[str]:
    """One line per artefact from ``agreement``: precision and recall with their
    intervals and the counts behind them."""
    return [f"{a}: precision {_value(r['precision'])}{_ci_text(r['precision_ci95'])} ({r['both']} of "
            f"{r['detected']} flagged), recall {_value(r['recall'])}{_ci_text(r['recall_ci95'])} ({r['both']} of "
            f"{r['by_eye']} marked by eye), on {r['n']} {images}." for a, r in table.iterrows()]


def _value(x) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{x:.2f}"


def _auc_with_ci(y: np.ndarray, p: np.ndarray, seed: int, n_resamples: int):
    """(AUC, (lo, hi)); (None, (None, None)) when the group holds one class only."""
    if len(np.unique(y)) < 2:
        return None, (None, None)
    return binary_metrics(y, p, 0.5)["auc"], bootstrap_auc_ci(
        y, p, n_resamples=n_resamples, seed=seed)


@dataclass
class Removal:
    """One model's predictions before and after each artefact is removed.

    ``p_all``: every scanned image, resized from the scan's resolution to the
    model's input the same way the cleaned images are, so ``after - before``
    is the removal alone and not a difference in resizing. Per artefact:
    ``index`` of the flagged images, ``after`` (artefact removed) and
    ``control`` (the same amount of filling elsewhere; None for vignettes and
    letterbox bars).
    """

    p_all: np.ndarray
    index: dict[str, np.ndarray]
    after: dict[str, np.ndarray]
    control: dict[str, np.ndarray | None]


def removal_predictions(predict: Callable[[np.ndarray], np.ndarray], image_size: int, images: np.ndarray,
                        found: Scan, settings: Settings = DEFAULT, method: str = "smooth") -> Removal:
    """Remove each artefact from the images flagged with it and predict again.

    ``predict`` maps uint8 images at ``image_size`` to P(malignant); ``images``
    are the scanned images (at the scan's resolution).
    """
    p_all = predict(resize(images, image_size))
    index, after, control = {}, {}, {}
    for artefact in DETECTED:
        idx = found.flagged(artefact)
        index[artefact] = idx
        if len(idx) == 0:
            after[artefact], control[artefact] = np.array([]), None
            continue
        masks = [found.masks[artefact][i] for i in idx]
        cleaned = np.stack([remove(images[i], artefact, m, settings, method) for i, m in zip(idx, masks)])
        after[artefact] = predict(resize(cleaned, image_size))
        if artefact in ("vignette", "letterbox"):
            control[artefact] = None  # painting borders elsewhere has no meaning
        else:
            moved = np.stack([fill(images[i], control_mask(m, found.lesions[i]), method)
                              for i, m in zip(idx, masks)])
            control[artefact] = predict(resize(moved, image_size))
    return Removal(p_all, index, after, control)


def effects(model: str, flags: pd.DataFrame, y: np.ndarray, p_test: np.ndarray, removal: Removal,
            threshold: float, *, seed: int = 0, n_resamples: int = 1000) -> pd.DataFrame:
    """One row per artefact for one model.

    * ``auc_with`` / ``auc_without``: test AUC of the model's own predictions
      (``p_test``) on the images with and without the artefact, 95% bootstrap CI;
    * ``mean_dp``, ``mean_abs_dp``: change of P(malignant) when the artefact is
      removed (after - before), over the flagged images; ``control_mean_abs_dp``:
      the same for filling as many pixels elsewhere;
    * ``flips``: decisions at the validation-chosen threshold that change;
    * ``auc_all_before`` / ``auc_all_after``: AUC over all scanned images, with
      the flagged ones as they are and with the artefact removed from them.
    """
    y = np.asarray(y)
    rows = []
    for artefact in DETECTED:
        has = flags[artefact].to_numpy(bool)
        idx = removal.index[artefact]
        before, after = removal.p_all[idx], removal.after[artefact]
        auc_with, ci_with = _auc_with_ci(y[has], p_test[has], seed, n_resamples)
        auc_without, ci_without = _auc_with_ci(y[~has], p_test[~has], seed, n_resamples)
        changed = (before >= threshold) != (after >= threshold)
        p_cleaned = removal.p_all.copy()
        p_cleaned[idx] = after
        control = removal.control[artefact]
        rows.append({
            "artefact": artefact, "model": model, "n_with": int(has.sum()),
            "n_with_benign": int((y[has] == 0).sum()), "n_with_malignant": int((y[has] == 1).sum()),
            "n_without": int((~has).sum()),
            "auc_with": auc_with, "auc_with_ci95": list(ci_with),
            "auc_without": auc_without, "auc_without_ci95": list(ci_without),
            "mean_dp": float((after - before).mean()) if len(idx) else None,
            "mean_abs_dp": float(np.abs(after - before).mean()) if len(idx) else None,
            "mean_dp_malignant": float((after - before)[y[idx] == 1].mean()) if (y[idx] == 1).any() else None,
            "mean_dp_benign": float((after - before)[y[idx] == 0].mean()) if (y[idx] == 0).any() else None,
            "control_mean_abs_dp": (float(np.abs(control - before).mean())
                                    if control is not None and len(idx) else None),
            "flips": int(changed.sum()),
            "flips_to_benign": int((changed & (after < threshold)).sum()),
            "flips_to_malignant": int((changed & (after >= threshold)).sum()),
            "auc_all_before": binary_metrics(y, removal.p_all, threshold)["auc"],
            "auc_all_after": binary_metrics(y, p_cleaned, threshold)["auc"],
        })
    return pd.DataFrame(rows)


def rates_by_class(flags: pd.DataFrame, y: np.ndarray) -> pd.DataFrame:
    """Share of benign and of malignant images flagged with each artefact: an
    artefact more common in one class is a shortcut a model can learn."""
    y = np.asarray(y)
    return pd.DataFrame({artefact: {"benign": float(flags.loc[y == 0, artefact].mean()),
                                    "malignant": float(flags.loc[y == 1, artefact].mean()),
                                    "all": float(flags[artefact].mean())}
                         for artefact in DETECTED}).T


def _ci_text(ci) -> str:
    return f" [{ci[0]:.2f}-{ci[1]:.2f}]" if ci and ci[0] is not None else ""


def interpret(table: pd.DataFrame, rates: pd.DataFrame, small_change: float = 0.02) -> list[str]:
    """Plain sentences from the effects table (``effects``) and the class rates
    (``rates_by_class``), so a notebook's text follows its numbers on every run.

    A removal counts as mattering when the mean |change| of P(malignant) is
    above ``small_change`` and above twice the control's.
    """
    lines = []
    for artefact in dict.fromkeys(table["artefact"]):
        r = rates.loc[artefact]
        if r["all"] == 0:
            lines.append(f"{artefact}: not found on any scanned test image.")
            continue
        ratio = (r["malignant"] + 1e-9) / (r["benign"] + 1e-9)
        skew = (" - far more often on malignant images, a shortcut a model can learn" if ratio >= 2 else
                " - far more often on benign images, a shortcut a model can learn" if ratio <= 0.5 else
                " - about as often in both classes")
        lines.append(f"{artefact}: flagged on {r['malignant']:.0%} of malignant and {r['benign']:.0%} of benign "
                     f"test images{skew}.")
        for row in table[table["artefact"] == artefact].itertuples():
            lines.append("  " + _auc_sentence(row) + " " + _removal_sentence(row, small_change))
    return lines


def _auc_sentence(row) -> str:
    if row.auc_with is None or pd.isna(row.auc_with):
        cls = "malignant" if row.n_with_benign == 0 else "benign"
        return (f"{row.model}: AUC with {row.artefact} is undefined (all {row.n_with} flagged images are {cls}); "
                f"without it {row.auc_without:.3f}.")
    lo_w, hi_w = row.auc_with_ci95
    lo_o, hi_o = row.auc_without_ci95
    overlap = lo_w is not None and lo_o is not None and lo_w <= hi_o and lo_o <= hi_w
    verdict = ("the intervals overlap, so no evidence the model ranks these images differently" if overlap else
               "better with it" if row.auc_with > row.auc_without else "worse with it")
    fewer = min(row.n_with_benign, row.n_with_malignant)
    if fewer < 10:
        cls = "benign" if row.n_with_benign <= row.n_with_malignant else "malignant"
        verdict += f" (but only {fewer} {cls} image{'s carry' if fewer != 1 else ' carries'} it: too few to judge)"
    return (f"{row.model}: AUC {row.auc_with:.3f}{_ci_text(row.auc_with_ci95)} with {row.artefact} "
            f"(n={row.n_with}: {row.n_with_malignant} malignant) vs {row.auc_without:.3f}"
            f"{_ci_text(row.auc_without_ci95)} without (n={row.n_without}): {verdict}.")


def _removal_sentence(row, small_change: float) -> str:
    if row.mean_abs_dp is None or pd.isna(row.mean_abs_dp):
        return "Nothing to remove."
    control = row.control_mean_abs_dp
    has_control = control is not None and not pd.isna(control)
    text = (f"Removing it changed P(malignant) by {row.mean_dp:+.3f} on average (mean |change| "
            f"{row.mean_abs_dp:.3f}" + (f"; filling as many pixels elsewhere: {control:.3f}" if has_control else "")
            + f") and flipped {row.flips} of {row.n_with} decisions "
            f"({row.flips_to_benign} to benign, {row.flips_to_malignant} to malignant); "
            f"AUC over all images {row.auc_all_before:.3f} -> {row.auc_all_after:.3f}.")
    matters = row.mean_abs_dp > small_change and (not has_control or row.mean_abs_dp > 2 * control)
    if not matters:
        return text + " The model barely relies on it."
    malignant_dp = row.mean_dp_malignant if row.mean_dp_malignant is not None else 0.0
    benign_dp = row.mean_dp_benign if row.mean_dp_benign is not None else 0.0
    if malignant_dp < -small_change or benign_dp < -small_change:
        return text + f" Without it the model sees less malignancy: it used {row.artefact} as evidence for malignant."
    if malignant_dp > small_change or benign_dp > small_change:
        return text + f" Without it the model sees more malignancy: it used {row.artefact} as evidence for benign."
    return text + " The changes go both ways: the model reacts to it, but not in one direction."


def bottom_line(table: pd.DataFrame, small_change: float = 0.02) -> list[str]:
    """One sentence per model: which artefact moves its predictions most, and
    whether any moves them beyond ``small_change`` and twice the control."""
    lines = []
    for model, part in table.groupby("model", sort=False):
        part = part[part["n_with"] > 0]
        if part.empty:
            lines.append(f"{model}: no artefact found in the scanned images.")
            continue
        top = part.loc[part["mean_abs_dp"].astype(float).idxmax()]
        control = part["control_mean_abs_dp"].astype(float).fillna(0)
        strong = part[(part["mean_abs_dp"] > small_change) & (part["mean_abs_dp"] > 2 * control)]
        flips, n = int(part["flips"].sum()), int(part["n_with"].sum())
        lines.append(
            f"{model}: removing {top['artefact']} moves its predictions most (mean |change| "
            f"{top['mean_abs_dp']:.3f} over {top['n_with']} images); "
            + (f"{', '.join(strong['artefact'])} move{'s' if len(strong) == 1 else ''} them beyond {small_change} "
               "and twice the control" if len(strong) else "no artefact moves them beyond "
               f"{small_change} and twice the control")
            + f"; {flips} decisions flipped in {n} removals.")
    return lines
