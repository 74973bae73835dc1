"""The steps notebooks 2-4 share: read the saved split, load its images, and
judge, save and record a trained model the same way for every model."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import data, evaluation, evaluation_figures, figures, results, splits
from .config import OutputDirs, output_dirs, resolve_data_dir


@dataclass
class SplitArrays:
    """Images (uint8, N x S x S x 3) and labels of each split, with their table rows
    and the images that could not be loaded."""

    image_size: int
    tables: dict[str, pd.DataFrame]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    skipped: list[tuple[str, str]]

    def counts(self) -> pd.DataFrame:
        rows = {s: {c: int((self.y[s] == i).sum()) for i, c in enumerate(data.CLASS_NAMES)}
                for s in self.x}
        return pd.DataFrame(rows).T.assign(total=lambda d: d.sum(axis=1))


def save_split(split: pd.DataFrame, data_root: Path, out: OutputDirs | None = None) -> Path:
    """Save the split with paths relative to the data folder, so the committed
    file means the same on every machine."""
    out = out or output_dirs()
    rel = split.assign(path=[os.path.relpath(p, data_root) for p in split["path"]])
    splits.save_split(rel, out.split)
    return out.split


def load_split_table(data_dir: str | None = None, out: OutputDirs | None = None) -> pd.DataFrame:
    """The split saved by notebook 1, with paths under this machine's data folder."""
    out = out or output_dirs()
    root = resolve_data_dir(data_dir)
    table = splits.load_split(out.split)
    table["path"] = [str(root / p) for p in table["path"]]
    missing = [p for p in table["path"] if not Path(p).exists()]
    if len(missing) == len(table):
        raise FileNotFoundError(
            f"None of the {len(table)} images in {out.split} exist under {root}: the split was made from "
            "another data folder. Run notebooks/1_Data_Exploration.ipynb with this data_dir first.")
    return table


def load_split_arrays(image_size: int, data_dir: str | None = None,
                      out: OutputDirs | None = None) -> SplitArrays:
    """Load the split saved by notebook 1 and its images at ``image_size``.

    Images that fail to load now (e.g. deleted since notebook 1) are reported and
    left out of every split, never silently.
    """
    return arrays_from_split(load_split_table(data_dir, out or output_dirs()), image_size)


def arrays_from_split(table: pd.DataFrame, image_size: int, labels=None) -> SplitArrays:
    """Images and labels of each split of ``table`` (``labels(part)``, default its
    ``label`` column). Images that fail to load are listed and left out, never silently."""
    tables, xs, ys, skipped = {}, {}, {}, []
    for name in ("train", "val", "test"):
        part = table[table["split"] == name].reset_index(drop=True)
        x, bad = data.load_images(part["path"].tolist(), image_size)
        if bad:
            bad_paths = {p for p, _ in bad}
            part = part[~part["path"].isin(bad_paths)].reset_index(drop=True)
            skipped.extend(bad)
        y = labels(part) if labels else part["label"].to_numpy(dtype="int64")
        tables[name], xs[name], ys[name] = part, x, y
    if skipped:
        print(f"{len(skipped)} image(s) could not be loaded and were left out:")
        for path, reason in skipped:
            print(f"  {path}: {reason}")
    return SplitArrays(image_size, tables, xs, ys, skipped)


def judge_model(name: str, p_val: np.ndarray, p_test: np.ndarray, arrays: SplitArrays, *,
                extra: dict[str, Any], target_sensitivity: float = 0.90, seed: int = 0,
                n_resamples: int = 1000, out: OutputDirs | None = None) -> dict[str, Any]:
    """Evaluate one model's validation and test probabilities, write its ISIC-format
    predictions and figures, and record it in results.json. Returns its record."""
    out = out or output_dirs()
    report = evaluation.evaluate_binary(
        arrays.y["val"], p_val, arrays.y["test"], p_test,
        target_sensitivity=target_sensitivity, n_resamples=n_resamples, seed=seed)
    pred_path = out.models / f"{name}_test_predictions.csv"
    evaluation.write_isic_predictions(
        pred_path, arrays.tables["test"]["image_id"].tolist(),
        np.column_stack([1 - p_test, p_test]), list(data.CLASS_NAMES))
    record = {**extra, **report, "seed": seed, "predictions": pred_path.name}
    results.record_model(name, record, out.results)
    return record


def save_evaluation_figures(name: str, record: dict[str, Any], p_test: np.ndarray,
                            arrays: SplitArrays, out: OutputDirs | None = None) -> list[Path]:
    """Confusion matrix (at the validation-chosen threshold) and reliability diagram of one model."""
    out = out or output_dirs()
    paths = []
    conf = record["test"]["confusion"]
    fig = evaluation_figures.plot_confusion(
        np.array([[conf["tn"], conf["fp"]], [conf["fn"], conf["tp"]]]), list(data.CLASS_NAMES))
    fig.suptitle(f"{name}: test set at threshold {record['threshold']:.3f} (chosen on validation)")
    paths.append(figures.save_fig(f"{name}_confusion", fig, images_dir=out.images))
    temperature = record["calibration"].get("temperature")
    p_after = evaluation.apply_temperature(p_test, temperature) if temperature else None
    fig = evaluation_figures.plot_reliability(arrays.y["test"], p_test, p_after=p_after)
    paths.append(figures.save_fig(f"{name}_reliability", fig, images_dir=out.images))
    return paths


def compare_models(names_probs: dict[str, np.ndarray], y: np.ndarray, records: dict[str, dict],
                   fig_prefix: str, out: OutputDirs | None = None) -> list[Path]:
    """ROC (with operating points and published reader studies) and PR curves of several models."""
    out = out or output_dirs()
    curves = {n: (y, p) for n, p in names_probs.items()}
    points = {n: (records[n]["test"]["sensitivity"], records[n]["test"]["specificity"])
              for n in names_probs}
    roc = evaluation_figures.plot_roc(curves, points, show_dermatologists=True)
    pr = evaluation_figures.plot_pr(curves)
    return [figures.save_fig(f"{fig_prefix}_roc", roc, images_dir=out.images),
            figures.save_fig(f"{fig_prefix}_pr", pr, images_dir=out.images)]


def summary_table(records: dict[str, dict]) -> pd.DataFrame:
    """One row per model: the test metrics at the validation-chosen threshold."""
    rows = []
    for name, r in records.items():
        t = r["test"]
        rows.append({"model": name, "weights": r.get("weights"), "threshold": r["threshold"],
                     "auc": t["auc"], "auc_ci95": t.get("auc_ci95"), "sensitivity": t["sensitivity"],
                     "specificity": t["specificity"], "balanced_accuracy": t.get("balanced_accuracy"),
                     "accuracy": t["accuracy"], "val_auc": r["validation"]["auc"],
                     "train_seconds": r.get("train_seconds")})
    return pd.DataFrame(rows).set_index("model")


def predict(model, x: np.ndarray) -> np.ndarray:
    """P(malignant) for uint8 images."""
    from .training import predict_proba

    return predict_proba(model, x)


def finish_model(name: str, model, fit, arrays: SplitArrays, *, backbone: str, weights: str,
                 target_sensitivity: float = 0.90, seed: int = 0, extra: dict[str, Any] | None = None,
                 out: OutputDirs | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Everything after training, identical for every model: predict validation
    and test, evaluate, save the model and its figures, record it (with ``extra``
    keys). Returns (record, test probabilities)."""
    from .models import count_trainable
    from .training import save_model

    out = out or output_dirs()
    model_file = save_model(model, out.models / f"{name}.keras")
    p_val, p_test = predict(model, arrays.x["val"]), predict(model, arrays.x["test"])
    extra = {"backbone": backbone, "weights": weights, "image_size": arrays.image_size,
             "train_seconds": round(fit.seconds, 1), "seconds_per_epoch": round(fit.seconds_per_epoch, 2),
             "epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
             "trainable_params": count_trainable(model), "model_file": model_file.name,
             "seed_note": "single seed", **(extra or {})}
    record = judge_model(name, p_val, p_test, arrays, extra=extra, target_sensitivity=target_sensitivity,
                         seed=seed, out=out)
    save_evaluation_figures(name, record, p_test, arrays, out)
    return record, p_test


@dataclass(frozen=True)
class Lite0Recipe:
    """How notebook 3 trains EfficientNet-Lite0 (two stages, see ``training.fit_transfer``).
    Recorded with the model, so the seed study repeats exactly the same recipe."""

    image_size: int = 128
    head_epochs: int = 20       # stage 1: head on frozen features
    finetune_epochs: int = 40   # stage 2 at most (early stopping on validation AUC)
    finetune_blocks: int = 8    # top blocks of 16 opened in stage 2
    colour_constancy: bool = True
    batch_size: int = 32

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def train_lite0(recipe: Lite0Recipe, arrays: SplitArrays, seed: int, *, pretrained: bool = True,
                finetune_epochs: int | None = None):
    """Build and train one Lite0 by ``recipe``; returns (TransferModel, FitResult).

    Without pretrained weights the base's batch-norm statistics are first estimated
    from training images (``models.calibrate_batch_norm``); ``finetune_epochs``
    overrides the recipe's stage-2 budget (to give two models the same one).
    """
    from . import models, seeding, training

    if arrays.image_size != recipe.image_size:
        raise ValueError(f"images are {arrays.image_size} px, the recipe wants {recipe.image_size}")
    seeding.set_seed(seed)
    tm = models.build_lite0_transfer(recipe.image_size, pretrained=pretrained,
                                     colour_constancy=recipe.colour_constancy)
    if not pretrained:
        models.calibrate_batch_norm(tm, arrays.x["train"], seed=seed)
    fit = training.fit_transfer(
        tm, arrays.x, arrays.y, head_epochs=recipe.head_epochs,
        finetune_epochs=recipe.finetune_epochs if finetune_epochs is None else finetune_epochs,
        unfreeze=models.lite0_unfreezer(recipe.finetune_blocks), seed=seed,
        batch_size=recipe.batch_size, augment=training.Augmentation(), verbose=0)
    return tm, fit


def paired_auc_comparison(name: str, others: list[str], arrays: SplitArrays, *, seed: int = 0,
                          n_resamples: int = 1000, out: OutputDirs | None = None) -> pd.DataFrame:
    """Test AUC of ``name`` minus that of each model in ``others``, with paired bootstrap
    intervals, from the test predictions every model's notebook wrote. Recorded in
    results.json as ``models[name]["auc_vs"]``; returns one row per other model."""
    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    ids = arrays.tables["test"]["image_id"].tolist()

    def test_probabilities(model: str) -> np.ndarray:
        if model not in recorded:
            raise LookupError(f"{model} is not recorded in {out.results}: run the notebook that trains it first.")
        path = out.models / recorded[model]["predictions"]
        return evaluation.read_isic_predictions(path, ids, data.CLASS_NAMES)[:, 1]

    p_name = test_probabilities(name)
    rows = {other: evaluation.paired_auc_difference(arrays.y["test"], test_probabilities(other), p_name,
                                                    n_resamples=n_resamples, seed=seed) for other in others}
    results.update_results({"models": {name: {"auc_vs": rows}}}, out.results)
    return pd.DataFrame({other: {"AUC difference": r["difference"], "95% CI low": r["ci95"][0],
                                 "95% CI high": r["ci95"][1], "P(not better)": r["p_b_not_better"]}
                         for other, r in rows.items()}).T.rename_axis(f"{name} minus")


def load_best_model(out: OutputDirs | None = None):
    """(name, record, model) of the recorded model with the best validation AUC
    whose file is present. The test set plays no part in the choice."""
    import keras

    from . import models  # noqa: F401  registers the custom layers for loading

    out = out or output_dirs()
    recorded = results.load_results(out.results).get("models", {})
    present = {n: r for n, r in recorded.items() if (out.models / r.get("model_file", "")).is_file()}
    if not present:
        raise FileNotFoundError(f"No saved model recorded in {out.results}: run notebooks "
                                "2_Image_Processing_and_Modeling.ipynb (and 3) first.")
    missing = sorted(set(recorded) - set(present))
    if missing:
        print(f"not considered (model file absent): {', '.join(missing)}")
    name = max(present, key=lambda n: present[n]["validation"]["auc"])
    return name, present[name], keras.models.load_model(out.models / present[name]["model_file"])


def cross_split_pairs(pairs: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Duplicate pairs with one image in the given test split and one in train."""
    given = dict(zip(table["path"], table["given_split"]))
    rows = []
    for r in pairs.itertuples():
        sides = {given.get(r.path_a): r.path_a, given.get(r.path_b): r.path_b}
        if set(sides) == {"train", "test"}:
            rows.append({"test_path": sides["test"], "train_path": sides["train"], "kind": r.kind,
                         "distance": r.distance})
    return pd.DataFrame(rows, columns=["test_path", "train_path", "kind", "distance"])


def record_data_summary(report: dict[str, Any], data_root: Path, out: OutputDirs | None = None) -> dict:
    """The headline numbers of the data report, into results.json under "data"."""
    out = out or output_dirs()
    dup = report["duplicates"]
    summary = {
        "name": Path(data_root).name,
        "layout": report["data"]["layout"],
        "images_found": report["data"]["found"],
        "images_read": report["data"]["read"],
        "images_skipped": report["data"]["skipped"],
        "images_used": sum(sum(c.values()) for c in report["split"]["counts"].values()),
        "duplicate_groups": dup["n_groups_with_several_images"],
        "exact_pairs": dup["n_exact_pairs"],
        "near_pairs": dup["n_near_pairs"],
        "test_duplicates_dropped": report["dropped_test_duplicates"]["count"],
        "split_counts": report["split"]["counts"],
        "source_per_class": report["source_per_class"],
    }
    results.update_results({"data": summary}, out.results)
    return summary


def recorded_recipe(name: str = "lite0_imagenet", out: OutputDirs | None = None
                    ) -> tuple[dict[str, Any], Lite0Recipe]:
    """The results.json record of a Lite0 model notebook 3 trained, and its recipe."""
    out = out or output_dirs()
    record = results.load_results(out.results).get("models", {}).get(name)
    if record is None or "recipe" not in record:
        raise LookupError(f"{out.results} has no {name} trained by a recorded recipe: run "
                          "notebooks/3_Transfer_Learning_Models.ipynb first (with the same settings).")
    return record, Lite0Recipe(**record["recipe"])


def seed_study(name: str = "lite0_imagenet", repeats: int = 3, data_dir: str | None = None,
               out: OutputDirs | None = None) -> dict[str, Any]:
    """Retrain a recorded Lite0 model with ``repeats - 1`` further seeds by its own
    recipe and split; record the spread of test AUC over all seeds (the recorded
    run counts as the first)."""
    out = out or output_dirs()
    record, recipe = recorded_recipe(name, out)
    arrays = load_split_arrays(recipe.image_size, data_dir, out)
    if len(arrays.y["test"]) != record["test"]["n"]:
        raise ValueError(f"the test set now has {len(arrays.y['test'])} images, {name} was judged on "
                         f"{record['test']['n']}: rerun notebook 3 on this split first.")
    aucs = {int(record["seed"]): float(record["test"]["auc"])}
    for seed in range(int(record["seed"]) + 1, int(record["seed"]) + repeats):
        # The random-init control was given the pretrained model's fine-tuning budget: keep it.
        tm, _ = train_lite0(recipe, arrays, seed, pretrained=record["weights"] != "none",
                            finetune_epochs=record.get("finetune_epochs_budget"))
        aucs[seed] = evaluation.binary_metrics(arrays.y["test"], predict(tm.model, arrays.x["test"]), 0.5)["auc"]
    return record_seed_study(name, aucs, out)


def record_seed_study(name: str, test_auc_by_seed: dict[int, float], out: OutputDirs | None = None) -> dict:
    """Mean and spread of one model's test AUC over several seeds, into results.json."""
    out = out or output_dirs()
    values = np.array(list(test_auc_by_seed.values()), dtype=float)
    study = {"model": name, "seeds": [int(s) for s in test_auc_by_seed], "test_auc": values.tolist(),
             "mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
             "min": float(values.min()), "max": float(values.max())}
    results.update_results({"seed_study": study}, out.results)
    return study
