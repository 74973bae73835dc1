"""Evaluation figures: ROC (one test set, or one panel per test set), precision-recall,
confusion matrices, reliability diagrams, sensitivity and specificity against the
threshold, per-class bars, the seed study, and the paired-bootstrap distribution of a gain."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from ..data.labels import CLASS_NAMES, DX_CLASSES
from ..evaluation.binary import apply_temperature, calibration_metrics
from ..evaluation.reader_studies import DERMATOLOGIST_POINTS
from .style import model_colour


_READER_MARKERS = ("s", "D", "^", "v", "P", "X")


def plot_roc(curves: Mapping[str, tuple], operating_points: Mapping[str, tuple] | None = None,
             show_dermatologists: bool = True, title: str = "ROC curve (test set)"):
    """ROC curves with AUC in the legend.

    ``curves``: name -> (y, p). ``operating_points``: name -> (sensitivity,
    specificity), drawn as a filled circle in the curve's colour (e.g. the
    threshold chosen on validation, evaluated on test). With
    ``show_dermatologists`` the published reader-study points are drawn as
    distinct black markers, labelled as coming from different images.
    """
    fig, ax = plt.subplots(figsize=(6.5, 6))
    _draw_roc(ax, curves, operating_points, show_dermatologists, title)
    return fig


def _draw_roc(ax, curves, operating_points, show_dermatologists: bool, title: str, point_labels: bool = True) -> None:
    for name, (y, p) in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, color=model_colour(name), lw=1.8, label=f"{name} (AUC {roc_auc_score(y, p):.3f})")
    for name, (sens, spec) in (operating_points or {}).items():
        ax.plot(1 - spec, sens, "o", ms=9, mec="black", color=model_colour(name),
                label=f"{name} operating point (sens {sens:.2f}, spec {spec:.2f})" if point_labels else "_nolegend_")
    if operating_points and not point_labels:  # one legend entry for all of them
        ax.plot([], [], "o", ms=9, mec="black", color="white", label="operating point (threshold from validation)")
    if show_dermatologists:
        for marker, point in zip(_READER_MARKERS, DERMATOLOGIST_POINTS):
            ax.plot(1 - point["specificity"], point["sensitivity"], marker, ms=8, color="black",
                    mfc="white", mew=1.5,
                    label=f"{point['label']}: published reader study, different images")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance")
    ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), xlabel="1 - specificity (false positive rate)",
           ylabel="sensitivity (true positive rate)", title=title, aspect="equal")
    ax.legend(loc="lower right", fontsize=9)


def plot_roc_panels(panels: Mapping[str, tuple[Mapping[str, tuple], Mapping[str, tuple]]]):
    """One ROC panel per test set, every model on it with its operating point (a dot
    in the model's colour; its sensitivity and specificity are in the tables).

    ``panels``: title (e.g. "HAM10000 test split (n = 1186)") -> (curves, operating
    points) as for ``plot_roc``. No reader-study points: those were other tasks
    on other images.
    """
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(7.2 * max(1, len(panels)), 7.4), squeeze=False)
    for ax, (title, (curves, points)) in zip(axes[0], panels.items()):
        _draw_roc(ax, curves, points, False, title, point_labels=False)
    return fig


def plot_threshold_sweep(panels: Mapping[str, tuple], threshold: float, model_name: str):
    """Sensitivity and specificity against the threshold, one panel per test set,
    with the threshold chosen on validation (dashed): how far a small shift of the
    threshold moves each. ``panels``: title -> (y, p)."""
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4.4), squeeze=False,
                             sharey=True)
    grid = np.linspace(0, 1, 201)
    for ax, (title, (y, p)) in zip(axes[0], panels.items()):
        y, p = np.asarray(y).astype(bool), np.asarray(p, dtype=float)
        sens = [(p[y] >= t).mean() for t in grid]
        spec = [(p[~y] < t).mean() for t in grid]
        ax.plot(grid, sens, color="C3", lw=1.8, label=f"sensitivity (n = {int(y.sum())} malignant)")
        ax.plot(grid, spec, color="C0", lw=1.8, label=f"specificity (n = {int((~y).sum())} benign)")
        ax.axvline(threshold, color="black", ls="--", lw=1, label=f"chosen on validation: {threshold:.3f}")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="threshold on P(malignant)", title=title)
        ax.legend(loc="lower center", fontsize=9)
    axes[0, 0].set_ylabel("share of the class called correctly")
    fig.suptitle(f"{model_name}: sensitivity and specificity against the threshold (test splits)")
    return fig


def plot_seed_studies(studies: Mapping[str, Mapping], bootstrap_ci95: Mapping[str, Sequence[float]]):
    """Each model's test AUC per training seed (dots, labelled by seed) beside the
    bootstrap 95% CI of its recorded run (grey bar): the spread a retraining gives
    against the spread the choice of test images gives. ``studies``: model name ->
    ``report.records.seed_summary``; ``bootstrap_ci95``: model name -> (low, high)."""
    names = list(studies)
    fig, ax = plt.subplots(figsize=(max(6.5, 2.2 * len(names)), 4.2))
    for i, name in enumerate(names):
        study, colour = studies[name], model_colour(name)
        lo, hi = bootstrap_ci95[name]
        ax.add_patch(plt.Rectangle((i - 0.32, lo), 0.64, hi - lo, color="0.86", zorder=0))
        offsets = np.linspace(-0.18, 0.18, len(study["seeds"])) if len(study["seeds"]) > 1 else [0.0]
        ax.plot(i + np.asarray(offsets), study["test_auc"], "o", ms=8, color=colour, zorder=3)
        for dx, auc, seed in zip(offsets, study["test_auc"], study["seeds"]):
            ax.annotate(str(seed), (i + dx, auc), xytext=(6, 0), textcoords="offset points", fontsize=9,
                        va="center")
        ax.hlines(study["mean"], i - 0.3, i + 0.3, color=colour, ls="--", lw=1.5, zorder=2)
    low = min(min(min(s["test_auc"]) for s in studies.values()), min(c[0] for c in bootstrap_ci95.values()))
    high = max(max(max(s["test_auc"]) for s in studies.values()), max(c[1] for c in bootstrap_ci95.values()))
    pad = 0.08 * (high - low) + 0.005

    def label(name):  # an ensemble studied one copy at a time: its dots are copies, its grey bar the ensemble's
        study, copy = studies[name], studies[name].get("unit") == "copy"
        return (f"{name}{' (one copy)' if copy else ''}\n"
                f"({len(study['seeds'])} {'copies' if copy else 'seeds'}, sd {study['sd']:.3f})")

    ax.set_xticks(range(len(names)), [label(n) for n in names])
    # No legend: over the bars it would hide data; the axis label says what the grey is.
    ax.set(xlim=(-0.6, len(names) - 0.4), ylim=(low - pad, high + pad), ylabel="test ROC AUC",
           xlabel="grey: bootstrap 95% CI of the recorded run (test images resampled)",
           title="Same recipe and split, other seeds (dots: seeds; dashed: mean)")
    return fig


def plot_pr(curves: Mapping[str, tuple], title: str = "Precision-recall curve (test set)"):
    """Precision-recall curves with average precision in the legend.

    A dashed line per distinct prevalence marks what a random ranking scores.
    """
    fig, ax = plt.subplots(figsize=(6.5, 5))
    prevalences = set()
    for name, (y, p) in curves.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.step(recall, precision, where="post", color=model_colour(name), lw=1.8,
                label=f"{name} (AP {average_precision_score(y, p):.3f})")
        prevalences.add(round(float(np.mean(y)), 6))
    for prev in sorted(prevalences):
        ax.axhline(prev, ls="--", color="grey", lw=1, label=f"random (prevalence {prev:.2f})")
    ax.set(xlim=(0, 1.01), ylim=(0, 1.01), xlabel="recall (sensitivity)",
           ylabel="precision (PPV)", title=title)
    ax.legend(loc="lower left", fontsize=9)
    return fig


def _as_matrix(confusion) -> np.ndarray:
    """Accept a k x k array/list, or binary_metrics' {"tn","fp","fn","tp"} dict."""
    if isinstance(confusion, Mapping):
        confusion = [[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]]
    cm = np.asarray(confusion, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    return cm


def _row_normalise(cm: np.ndarray) -> np.ndarray:
    sums = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, sums, out=np.zeros_like(cm), where=sums > 0)


def _heatmap(ax, values: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str,
             vmax: float | None = None):
    """Annotated heatmap on ``ax``; rows are true classes, columns predicted."""
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=vmax)
    k = values.shape[0]
    top = vmax if vmax is not None else (values.max() or 1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, labels[i, j], ha="center", va="center", fontsize=9 if k > 4 else 11,
                    color="white" if values[i, j] > 0.6 * top else "black")
    rotation = 45 if k > 4 else 0
    ax.set_xticks(range(k), class_names, rotation=rotation, ha="right" if rotation else "center")
    ax.set_yticks(range(k), class_names)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    return image


def plot_confusion(confusion, class_names: Sequence[str] = ("benign", "malignant"),
                   title: str | None = None):
    """Counts (left) and row-normalised fractions (right) side by side: two axes.

    ``confusion``: 2x2 or kxk counts (rows true, columns predicted), or the
    ``confusion`` dict from ``binary_metrics``.
    """
    cm = _as_matrix(confusion)
    if len(class_names) != cm.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {cm.shape[0]}x{cm.shape[0]} matrix")
    norm = _row_normalise(cm)
    size = 3.2 + 0.5 * cm.shape[0]
    fig, (ax_counts, ax_norm) = plt.subplots(1, 2, figsize=(2 * size, size))
    _heatmap(ax_counts, cm, cm.astype(int).astype(str), class_names, "counts")
    _heatmap(ax_norm, norm, np.char.mod("%.2f", norm), class_names, "fraction of true class", vmax=1.0)
    if title:
        fig.suptitle(title)
    return fig


def plot_multiclass_confusion(confusion, class_names: Sequence[str], title: str | None = None):
    """One row-normalised k x k heatmap annotated 'fraction (count)', with a colour bar.

    Diagonal = per-class recall; the mean of the diagonal is the balanced
    accuracy. Returns a Figure with two axes (matrix, colour bar).
    """
    cm = _as_matrix(confusion)
    if len(class_names) != cm.shape[0]:
        raise ValueError(f"{len(class_names)} class names for a {cm.shape[0]}x{cm.shape[0]} matrix")
    norm = _row_normalise(cm)
    labels = np.array([[f"{norm[i, j]:.2f}\n({int(cm[i, j])})" for j in range(cm.shape[1])]
                       for i in range(cm.shape[0])])
    size = 2.5 + 0.8 * cm.shape[0]
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = _heatmap(ax, norm, labels, class_names, title or "confusion matrix (row-normalised)", vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    return fig


def plot_reliability(y, p, p_after=None, n_bins: int = 10, title: str = "Reliability (test set)"):
    """Reliability diagram (top) and histogram of predictions (bottom): two axes.

    Points are drawn for non-empty bins only, each with its number of images
    (a bin of 3 images says little); ECE is given in the title, before and, with
    ``p_after`` (e.g. temperature-scaled), after recalibration.
    """
    fig, (ax, ax_hist) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="perfect calibration")
    series = [("before", p)] + ([("after", p_after)] if p_after is not None else [])
    eces = []
    edges = np.linspace(0, 1, n_bins + 1)
    for i, (name, probs) in enumerate(series):
        cal = calibration_metrics(y, probs, n_bins)
        filled = [b for b in cal["bins"] if b["count"]]
        ax.plot([b["mean_pred"] for b in filled], [b["frac_pos"] for b in filled], "o-", color=f"C{i}",
                label=f"{name} (ECE {cal['ece']:.3f}, Brier {cal['brier']:.3f}; n per bin)")
        for b in filled:  # before above its point, after below, so the two series' counts do not collide
            ax.annotate(str(b["count"]), (b["mean_pred"], b["frac_pos"]), textcoords="offset points",
                        xytext=(0, 6 if i == 0 else -12), ha="center", fontsize=9, color=f"C{i}")
        ax_hist.hist(np.asarray(probs, dtype=float), bins=edges, color=f"C{i}", alpha=0.5, label=name)
        eces.append(f"{name} {cal['ece']:.3f}")
    ax.set(xlim=(0, 1), ylim=(0, 1), ylabel="fraction malignant", title=f"{title}\nECE " + ", ".join(eces))
    ax.legend(loc="upper left", fontsize=9)
    ax_hist.set(xlabel="predicted probability of malignant", ylabel="images")
    return fig


def model_figures(name: str, record: Mapping[str, Any], y_test: np.ndarray, p_test: np.ndarray) -> dict[str, Any]:
    """``{"<name>_confusion": fig, "<name>_reliability": fig}`` of one binary model:
    the test confusion matrix at the threshold chosen on validation, and the
    reliability diagram before and after temperature scaling (fitted on validation)."""
    conf = record["test"]["confusion"]
    confusion = plot_confusion(np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]]), list(CLASS_NAMES))
    confusion.suptitle(f"{name}: test set at threshold {record['threshold']:.3f} (chosen on validation)")
    temperature = record["calibration"].get("temperature")
    p_after = apply_temperature(p_test, temperature) if temperature else None
    return {f"{name}_confusion": confusion, f"{name}_reliability": plot_reliability(y_test, p_test, p_after=p_after)}


def roc_and_pr(probs: Mapping[str, np.ndarray], y: np.ndarray, records: Mapping[str, Mapping[str, Any]]):
    """(ROC, PR) figures of several binary models on the same test images, each
    model's operating point (threshold chosen on validation) on the ROC, with
    published reader studies for orientation."""
    curves = {n: (y, p) for n, p in probs.items()}
    points = {n: (records[n]["test"]["sensitivity"], records[n]["test"]["specificity"]) for n in probs}
    return plot_roc(curves, points, show_dermatologists=True), plot_pr(curves)


def plot_per_class(records: Mapping[str, Mapping[str, Any]], split: str = "test"):
    """Recall, precision and F1 of every diagnosis, one bar per model."""
    fig, axes = plt.subplots(1, 3, figsize=(16, 4), sharey=True)
    width = 0.8 / max(len(records), 1)
    x = np.arange(len(DX_CLASSES))
    for ax, metric in zip(axes, ("recall", "precision", "f1")):
        for i, (name, rec) in enumerate(records.items()):
            per = rec[split]["per_class"]
            values = [per[c][metric] if per[c][metric] is not None else np.nan for c in DX_CLASSES]
            ax.bar(x + (i - (len(records) - 1) / 2) * width, values, width, label=name, color=model_colour(name))
        ax.set_xticks(x, [f"{c}\n(n={records[next(iter(records))][split]['per_class'][c]['support']})"
                          for c in DX_CLASSES], fontsize=9)
        ax.set(title=metric, ylim=(0, 1))
    axes[0].legend(fontsize=9)
    fig.suptitle(f"Per-diagnosis results ({split} set)")
    return fig


def plot_metadata_gain(gain: Mapping[str, Any], rec_image: Mapping[str, Any], rec_fused: Mapping[str, Any],
                       split: str = "test"):
    """Left: bootstrap distribution of the balanced-accuracy gain with its 95% CI.
    Right: per-diagnosis change in recall from adding the metadata."""
    fig, (ax_d, ax_c) = plt.subplots(1, 2, figsize=(12, 4))
    d = np.asarray(gain["distribution"])
    ax_d.hist(d, bins=40, color="C0", alpha=0.7)
    ax_d.axvline(0, color="black", lw=1)
    ax_d.axvline(gain["difference"], color="C3", lw=2, label=f"observed {gain['difference']:+.3f}")
    for v in gain["ci95"]:
        ax_d.axvline(v, color="C3", ls="--", lw=1)
    ax_d.set(xlabel="balanced accuracy: with metadata minus without", ylabel="bootstrap resamples",
             title=f"paired bootstrap, 95% CI {gain['ci95'][0]:+.3f} to {gain['ci95'][1]:+.3f}")
    ax_d.legend(fontsize=9)
    change = [rec_fused[split]["per_class"][c]["recall"] - rec_image[split]["per_class"][c]["recall"]
              for c in DX_CLASSES]
    ax_c.bar(DX_CLASSES, change, color=["C2" if v >= 0 else "C3" for v in change])
    ax_c.axhline(0, color="black", lw=1)
    ax_c.set(ylabel="change in recall", title=f"per diagnosis ({split} set)")
    return fig


def plot_auc_by_dataset(by_model: Mapping[str, Mapping[str, Mapping[str, Any]]]):
    """Test AUC with its 95% CI of every model (``{model: by_dataset}``) on every data
    set's test split, grouped by data set."""
    datasets = list(dict.fromkeys(d for by in by_model.values() for d in by))
    fig, ax = plt.subplots(figsize=(3.6 + 1.2 * len(by_model) * len(datasets) / 2, 4.2))
    width = 0.8 / max(len(by_model), 1)
    for m, (name, by) in enumerate(by_model.items()):
        for k, dataset in enumerate(datasets):
            t = by.get(dataset, {}).get("test")
            if not t or t.get("auc") is None:
                continue
            lo, hi = t.get("auc_ci95") or (t["auc"], t["auc"])
            x = k + (m - (len(by_model) - 1) / 2) * width
            ax.bar(x, t["auc"], width * 0.9, color=model_colour(name), label=name if k == 0 else None)
            ax.errorbar(x, t["auc"], yerr=[[t["auc"] - lo], [hi - t["auc"]]], color="black", capsize=3)
    ax.set_xticks(range(len(datasets)), [f"{d}\ntest split" for d in datasets])
    ax.set(ylim=(0.5, 1.0), ylabel="ROC AUC (95% bootstrap CI)", title="Each model on each archive's test split")
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: no bar hidden
    return fig


def plot_per_diagnosis(rates):
    """Per diagnosis, the share of test images each model calls malignant (95% Wilson
    interval): sensitivity for a malignant diagnosis, false-alarm rate for a benign
    one. ``rates``: ``report.cross.per_diagnosis``."""
    models = list(dict.fromkeys(rates["model"]))
    order = list(dict.fromkeys(rates.sort_values(["malignant", "diagnosis"], ascending=[False, True])["diagnosis"]))
    fig, ax = plt.subplots(figsize=(11, 4.2))
    width = 0.8 / max(len(models), 1)
    for m, model in enumerate(models):
        part = rates[rates["model"] == model].set_index("diagnosis").reindex(order)
        x = np.arange(len(order)) + (m - (len(models) - 1) / 2) * width
        ax.bar(x, part["rate"], width * 0.9, color=model_colour(model), label=model)
        ax.errorbar(x, part["rate"], yerr=[part["rate"] - part["95% CI low"], part["95% CI high"] - part["rate"]],
                    fmt="none", color="black", capsize=2, lw=0.8)
    n = rates.groupby("diagnosis")["n"].first()
    malignant = rates.groupby("diagnosis")["malignant"].first()
    ax.set_xticks(range(len(order)), [f"{d}\n{'sensitivity' if malignant[d] else 'false alarms'}\n(n={n[d]})"
                                      for d in order], fontsize=9)
    ax.set(ylim=(0, 1), ylabel="share called malignant", title="Per diagnosis, at each model's threshold")
    ax.legend(fontsize=9)
    return fig
