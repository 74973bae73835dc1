"""Training recipes recorded with their models, so a run can be repeated
exactly: the baselines of notebook 2, VGG16 and the two-stage EfficientNet-Lite0
recipe of notebook 3, and the seed study of notebook 6 that retrains a recorded model with
further seeds."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .. import results, seeding
from ..config import OutputDirs, output_dirs
from ..data.arrays import DATA_ROOT, SplitArrays, load_other_data_sets, load_split_arrays
from ..evaluation.binary import binary_metrics
from ..models import baselines
from ..models.ensemble import mean_logit_ensemble
from ..models.transfer import (TransferModel, build_lite0_transfer, build_vgg16_transfer, calibrate_batch_norm, lite0_unfreezer,
                               split_backbone, unfreeze_vgg16_last_block)
from ..explain.counterfactual import training_bank
from .augment import ArtefactAugmentation, Augmentation
from .fitting import FitResult, fit, fit_transfer, predict_proba

MEMBER_SEED_STEP = 100  # member i of an ensemble trained with seed s gets seed s + 100 i: two seeds' ensembles share none


@dataclass(frozen=True)
class BaselineRecipe:
    """How notebook 2 trains a baseline from scratch (``training.fit``: early stopping
    on validation AUC). Recorded with the model, for the seed study."""

    builder: str                # "mlp" or "small_cnn": models.baselines.build_<builder>
    image_size: int = 64
    epochs: int = 40            # at most
    batch_size: int = 32
    patience: int = 8
    learning_rate: float = 1e-3
    augment: bool = False       # flips, rotations, crops and colour jitter (training.Augmentation)

    def __post_init__(self):
        if not callable(getattr(baselines, f"build_{self.builder}", None)):
            raise ValueError(f"no baseline called {self.builder!r}: one of mlp, small_cnn")

    def as_record(self) -> dict[str, Any]:
        return {"kind": "baseline", **asdict(self)}


def _check_image_size(recipe, arrays: SplitArrays) -> None:
    if arrays.image_size != recipe.image_size:
        raise ValueError(f"images are {arrays.image_size} px, the recipe wants {recipe.image_size}")


def train_baseline(recipe: BaselineRecipe, arrays: SplitArrays, seed: int):
    """Build and train one baseline by ``recipe``, seeded; returns (model, FitResult)."""
    _check_image_size(recipe, arrays)
    seeding.set_seed(seed)
    model = getattr(baselines, f"build_{recipe.builder}")(recipe.image_size)
    result = fit(model, arrays.x["train"], arrays.y["train"], arrays.x["val"], arrays.y["val"],
                 epochs=recipe.epochs, seed=seed, batch_size=recipe.batch_size, patience=recipe.patience,
                 learning_rate=recipe.learning_rate, augment=Augmentation() if recipe.augment else None,
                 verbose=0)
    return model, result


@dataclass(frozen=True)
class Vgg16Recipe:
    """How notebook 3 trains VGG16 (``training.fit_transfer``): the head on frozen
    features, then block 5 fine-tuned only where the ImageNet weights loaded
    (without them the base is random, and only the head is trained)."""

    image_size: int = 64
    head_epochs: int = 150      # at most (early stopping)
    finetune_epochs: int = 2    # block 5, ImageNet weights only
    batch_size: int = 32
    patience: int = 4

    def as_record(self) -> dict[str, Any]:
        return {"kind": "vgg16", **asdict(self)}


def train_vgg16(recipe: Vgg16Recipe, arrays: SplitArrays, seed: int, *, try_imagenet: bool = True):
    """Build and train VGG16 by ``recipe``, seeded; returns (TransferModel, FitResult).
    ``try_imagenet=False`` keeps the random base without trying the download."""
    _check_image_size(recipe, arrays)
    seeding.set_seed(seed)
    tm = build_vgg16_transfer(recipe.image_size, try_imagenet)
    fit = fit_transfer(tm, arrays.x, arrays.y, head_epochs=recipe.head_epochs,
                       finetune_epochs=recipe.finetune_epochs if tm.weights != "none" else 0,
                       unfreeze=unfreeze_vgg16_last_block, seed=seed, batch_size=recipe.batch_size,
                       patience=recipe.patience, augment=Augmentation(), verbose=0)
    return tm, fit


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
    # rulers, ink and black bars pasted onto both classes in stage 2, e.g.
    # {"n_scan": 800, "per_half": 8, "sticker_rate": 0.3, "letterbox_rate": 0.15}; None: off
    artefact_augmentation: dict | None = None
    # stage 2 on cached maps of the frozen bottom blocks: the original and pool_copies - 1
    # augmented copies of every training image (training.fit_transfer); None: on pixels,
    # augmentations drawn afresh every epoch (slower, the recipe of earlier runs)
    pool_copies: int | None = None
    # trained this many times (seeds seed, seed + 100, ...); more than 1: the saved model is their
    # mean logit (models.ensemble), steadier than any one seed
    members: int = 1

    def as_record(self) -> dict[str, Any]:
        return asdict(self)


def train_lite0(recipe: Lite0Recipe, arrays: SplitArrays, seed: int, *, pretrained: bool = True,
                finetune_epochs: int | None = None):
    """Build and train one Lite0 by ``recipe``; returns (TransferModel, FitResult).

    Without pretrained weights the base's batch-norm statistics are first estimated
    from training images (``calibrate_batch_norm``); ``finetune_epochs``
    overrides the recipe's stage-2 budget (to give two models the same one).
    """
    _check_image_size(recipe, arrays)
    if recipe.members > 1:
        return _train_lite0_ensemble(recipe, arrays, seed, pretrained=pretrained, finetune_epochs=finetune_epochs)
    augment = Augmentation()
    if recipe.artefact_augmentation:
        augment = artefact_augmentation(arrays, seed, **recipe.artefact_augmentation)
    seeding.set_seed(seed)
    tm = build_lite0_transfer(recipe.image_size, pretrained=pretrained,
                                     colour_constancy=recipe.colour_constancy)
    if not pretrained:
        calibrate_batch_norm(tm, arrays.x["train"], seed=seed)
    fit = fit_transfer(
        tm, arrays.x, arrays.y, head_epochs=recipe.head_epochs,
        finetune_epochs=recipe.finetune_epochs if finetune_epochs is None else finetune_epochs,
        unfreeze=lite0_unfreezer(recipe.finetune_blocks), seed=seed,
        batch_size=recipe.batch_size, augment=augment, verbose=0,
        **({"split": lambda m: split_backbone(m, recipe.finetune_blocks), "pool_copies": recipe.pool_copies}
           if recipe.pool_copies else {}))
    return tm, fit


def _train_lite0_ensemble(recipe: Lite0Recipe, arrays: SplitArrays, seed: int, **kwargs):
    """``recipe.members`` single Lite0s, seeds ``seed + 100 i``, as one mean-logit model.
    The FitResult is the first member's (history, epochs) with the time of all of them;
    each member's own model and fit are on ``tm.members`` and ``fit.members``."""
    trained = [train_lite0(replace(recipe, members=1), arrays, s, **kwargs) for s in member_seeds(recipe, seed)]
    first, first_fit = trained[0]
    tm = TransferModel(mean_logit_ensemble([t.model for t, _ in trained], name="lite0_ensemble"), first.features,
                       first.base, first.head, first.weights, first.backbone, first.preprocess,
                       members=[t.model for t, _ in trained])
    result = FitResult(first_fit.history, sum(f.seconds for _, f in trained), first_fit.epochs_run,
                       first_fit.best_epoch, first_fit.best_score, first_fit.finetune_epochs_run,
                       members=[f for _, f in trained])
    result.seconds_per_epoch = first_fit.seconds_per_epoch  # one member's epoch, not the sum over members
    return tm, result


def member_seeds(recipe: Lite0Recipe, seed: int) -> list[int]:
    """The seeds of the members ``train_lite0`` trains for ``recipe`` and ``seed``."""
    return [seed + MEMBER_SEED_STEP * i for i in range(recipe.members)]


def artefact_augmentation(arrays: SplitArrays, seed: int, *, n_scan: int = 800, per_half: int = 8,
                          sticker_rate: float = 0.3, letterbox_rate: float = 0.15) -> ArtefactAugmentation:
    """The ``"train"`` half of the sticker bank cut from ``n_scan`` training images
    of the binary data set (``explain.counterfactual.training_bank``; notebook 4
    tests with the other half), at the arrays' image size, pasted by
    ``ArtefactAugmentation``."""
    train = arrays.tables["train"]
    if "root" in train:
        # Cut from the binary data set's training rows only, as notebook 4 cuts its bank: the same rows
        # give the same two halves, so a model trained on both archives never meets, in notebook 4's
        # test, a sticker it was trained with.
        train = train[train["root"] == DATA_ROOT].reset_index(drop=True)
    bank = training_bank(train, n_scan, per_half, seed)["train"]
    stickers = [s.at(arrays.image_size) for pool in bank.values() for s in pool]
    size = arrays.image_size
    pixels = np.stack([s.pixels for s in stickers]) if stickers else np.zeros((0, size, size, 3), np.uint8)
    masks = np.stack([s.mask for s in stickers]) if stickers else np.zeros((0, size, size), bool)
    return ArtefactAugmentation(pixels, masks, sticker_rate=sticker_rate, letterbox_rate=letterbox_rate)


def recorded_recipe(name: str = "lite0_imagenet", out: OutputDirs | None = None
                    ) -> tuple[dict[str, Any], Lite0Recipe | BaselineRecipe | Vgg16Recipe]:
    """The results.json record of a model notebook 2 or 3 trained by a recipe, and the recipe."""
    out = out or output_dirs()
    record = results.load_results(out.results).get("models", {}).get(name)
    if record is None or "recipe" not in record:
        raise LookupError(f"{out.results} has no {name} trained by a recorded recipe: run notebooks 2 and 3 "
                          "(2_Image_Processing_and_Modeling, 3_Transfer_Learning_Models) first, with the same "
                          "settings.")
    fields = dict(record["recipe"])
    kind = fields.pop("kind", None)
    if kind == "baseline":
        return record, BaselineRecipe(**fields)
    if kind == "vgg16":
        return record, Vgg16Recipe(**fields)
    return record, Lite0Recipe(**fields)


def seed_study(name: str = "lite0_imagenet", repeats: int = 3, data_dir: str | None = None,
               out: OutputDirs | None = None) -> dict[int, float]:
    """Retrain a recorded model with ``repeats - 1`` further seeds by its own recipe
    and split (both archives' for a model trained on both); returns the test AUC of
    every seed (the recorded run counts as the first), which
    ``report.records.record_seed_studies`` records."""
    out = out or output_dirs()
    record, recipe = recorded_recipe(name, out)
    arrays = load_split_arrays(recipe.image_size, data_dir, out)
    if len(arrays.y["test"]) != record["test"]["n"]:
        raise ValueError(f"the test set now has {len(arrays.y['test'])} images, {name} was judged on "
                         f"{record['test']['n']}: rerun the notebook that trained it on this split first.")
    # A model trained on both archives is retrained on both (notebook 3's split_both) and, like
    # its recorded run, judged on the binary data set's test split.
    training = arrays
    if len(record.get("trained_on") or []) > 1:
        training = load_split_arrays(recipe.image_size, data_dir, out, roots=None)
        found = sorted(training.tables["train"]["dataset"].unique())
        if found != sorted(record["trained_on"]):
            raise ValueError(f"{name} was trained on {' + '.join(record['trained_on'])}, but the split now "
                             f"holds {' + '.join(found)}: rerun notebooks 1 and 3 with the same data first.")
    aucs = {int(record["seed"]): float(record["test"]["auc"])}
    for seed in range(int(record["seed"]) + 1, int(record["seed"]) + repeats):
        if isinstance(recipe, BaselineRecipe):
            model, _ = train_baseline(recipe, training, seed)
        elif isinstance(recipe, Vgg16Recipe):
            # the same kind of base as the recorded run: a random-feature baseline does not try the download again
            model = train_vgg16(recipe, training, seed, try_imagenet=record["weights"] != "none")[0].model
        else:
            # The random-init control was given the pretrained model's fine-tuning budget: keep it.
            tm, _ = train_lite0(recipe, training, seed, pretrained=record["weights"] != "none",
                                finetune_epochs=record.get("finetune_epochs_budget"))
            model = tm.model
        aucs[seed] = binary_metrics(arrays.y["test"], predict_proba(model, arrays.x["test"]), 0.5)["auc"]
    return aucs


def score_alone(model, seed: int, sets: dict[str, SplitArrays], primary: str) -> dict[str, Any]:
    """One trained copy of a recipe scored alone: its validation and test AUC on every
    data set of ``sets`` (by name) and, as ``test_auc``, that on ``primary``'s test split."""
    by_dataset = {d: {f"{part}_auc": binary_metrics(a.y[s], predict_proba(model, a.x[s]), 0.5)["auc"]
                      for part, s in (("validation", "val"), ("test", "test"))} for d, a in sets.items()}
    return {"seed": int(seed), "test_auc": by_dataset[primary]["test_auc"], "by_dataset": by_dataset}


def copy_seed_study(name: str = "lite0_both", copies: int = 3, data_dir: str | None = None,
                    out: OutputDirs | None = None) -> list[dict[str, Any]]:
    """The seed spread of an ensemble's recipe, one copy at a time: the copies notebook 3
    trained and scored alone (``models[name]["members"]``), then further copies with the
    next member seeds (seed + 100 i), each trained on the recorded split and scored
    alone by ``score_alone``, until there are ``copies``. Far cheaper than retraining the
    whole ensemble per seed (``seed_study``), but it measures one copy's spread, not the
    ensemble's. Returns one row per copy, the recorded ones first."""
    out = out or output_dirs()
    record, recipe = recorded_recipe(name, out)
    rows = list(record.get("members") or [])
    if not isinstance(recipe, Lite0Recipe) or recipe.members < 2 or not rows:
        raise ValueError(f"{name} is not an ensemble whose copies notebook 3 scored alone: use seed_study.")
    if len(rows) >= copies:
        return rows[:copies]
    arrays = load_split_arrays(recipe.image_size, data_dir, out)
    primary = str(arrays.tables["test"]["dataset"].iloc[0])
    sets = {primary: arrays, **load_other_data_sets(recipe.image_size, data_dir, out)}
    if set(rows[0]["by_dataset"]) - set(sets) or len(arrays.y["test"]) != record["test"]["n"]:
        raise ValueError(f"the split is not the one {name} was judged on: rerun notebooks 1 and 3 on it first.")
    sets = {d: sets[d] for d in rows[0]["by_dataset"]}  # the data sets its recorded copies were scored on
    training = arrays
    if len(record.get("trained_on") or []) > 1:  # trained on both archives, as notebook 3 did
        training = load_split_arrays(recipe.image_size, data_dir, out, roots=None)
    one = replace(recipe, members=1)
    for i in range(len(rows), copies):
        seed = int(record["seed"]) + MEMBER_SEED_STEP * i
        tm, _ = train_lite0(one, training, seed, pretrained=record["weights"] != "none")
        rows.append(score_alone(tm.model, seed, sets, primary))
    return rows
