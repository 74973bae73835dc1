"""Training the seven-class models: a softmax fit stopped early on validation
**balanced accuracy** (the ISIC 2018 metric), for heads on extracted
features and for the Lite0 top blocks fine-tuned on cached feature maps;
and the scikit-learn metadata-only baselines.
"""
from __future__ import annotations

import math
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from ..data.labels import DX_CLASSES
from ..evaluation.multiclass import balanced_accuracy
from ..models.fusion import head_outputs
from .fitting import FitResult, predict_array
from .imbalance import LossChoice, make_loss


def _balanced_accuracy_callback(x_val, y_val, patience: int, n_heads: int = 1):
    class BestOnValidation(keras.callbacks.Callback):
        """Score validation balanced accuracy after every epoch; keep the best
        weights and stop after ``patience`` epochs without improvement.

        Keras has no balanced-accuracy metric, and validation loss (with or
        without class weights) is a poor proxy for mean per-class recall.
        With several heads the score is their mean, so one epoch (one set of
        shared weights) is kept for all of them.
        """

        def on_train_begin(self, logs=None):
            self.best, self.best_epoch, self.wait, self.best_weights = -1.0, 0, 0, None
            self.scores, self.losses, self.head_scores = [], [], []

        def on_epoch_end(self, epoch, logs=None):
            heads = head_outputs(predict_array(self.model, x_val), n_heads)
            per_head = [balanced_accuracy(y_val, P) for P in heads]
            score = float(np.mean(per_head))
            p_true = np.clip(heads[0][np.arange(len(y_val)), y_val], 1e-7, 1.0)
            self.scores.append(score)
            self.head_scores.append(per_head)
            self.losses.append(float(-np.log(p_true).mean()))
            if score > self.best + 1e-9:
                self.best, self.best_epoch, self.wait = score, epoch + 1, 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return BestOnValidation()


def _train_stream(x, y: np.ndarray, batch_size: int, seed: int, augment, class_weight):
    """Endless shuffled batches of (x, y[, sample weight]).

    Class weights become per-example sample weights here, in the stream,
    rather than through Keras' ``class_weight`` (which it cannot apply to
    dict inputs the same way).
    """
    n = len(y)
    w = (np.array([class_weight[int(c)] for c in y], dtype="float32") if class_weight
         else np.ones(n, dtype="float32"))
    idx = tf.data.Dataset.from_tensor_slices(np.arange(n)).shuffle(n, seed=seed, reshuffle_each_iteration=True)
    xs = x if isinstance(x, dict) else {"x": x}
    tensors = {k: tf.constant(v) for k, v in xs.items()}
    y_t, w_t = tf.constant(y.astype("float32")), tf.constant(w)
    aug_seeds = tf.data.Dataset.random(seed=seed).batch(2)

    @tf.autograph.experimental.do_not_convert  # no Python control flow on tensors here
    def take(i, s):
        feats = {k: tf.cast(tf.gather(v, i), tf.float32) for k, v in tensors.items()}
        if augment is not None:
            feats = {k: augment(v, s) for k, v in feats.items()}
        inputs = feats if isinstance(x, dict) else feats["x"]
        return inputs, tf.gather(y_t, i), tf.gather(w_t, i)

    ds = tf.data.Dataset.zip((idx.repeat(), aug_seeds)).map(take, num_parallel_calls=tf.data.AUTOTUNE,
                                                             deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def fit_multiclass(model, x_train, y_train, x_val, y_val, *, choice: LossChoice, epochs: int, seed: int,
                   batch_size: int = 32, learning_rate: float = 1e-3, patience: int = 5,
                   augment=None, steps_per_epoch: int | None = None, n_heads: int = 1,
                   verbose: int = 0) -> FitResult:
    """Compile with ``choice``'s loss and train with its class weights, keeping the
    epoch with the best validation balanced accuracy.

    ``x_train``: an array (images, cached maps or features) or a dict of arrays
    by input name; ``augment`` (images only) is drawn afresh for every example.
    An epoch is ``steps_per_epoch`` batches (default: one pass over ``y_train``).
    ``n_heads``: for a ``joint_model`` (summed loss; the epoch kept is the one
    with the best mean validation balanced accuracy of the heads, whose
    scores are in ``history["val_balanced_accuracy_per_head"]``).
    """
    y_train = np.asarray(y_train, dtype="int64")
    y_val = np.asarray(y_val, dtype="int64")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=make_loss(choice.loss, choice.gamma, n_heads=n_heads))
    callback = _balanced_accuracy_callback(x_val, y_val, patience, n_heads)
    ds = _train_stream(x_train, y_train, batch_size, seed, augment, choice.weights(y_train))
    steps = steps_per_epoch or math.ceil(len(y_train) / batch_size)
    start = time.perf_counter()
    hist = model.fit(ds, steps_per_epoch=steps, epochs=epochs, callbacks=[callback], shuffle=False,
                     verbose=verbose)
    seconds = time.perf_counter() - start
    history = {"loss": [float(v) for v in hist.history["loss"]],
               "val_loss": callback.losses, "val_balanced_accuracy": callback.scores}
    if n_heads > 1:
        history["val_balanced_accuracy_per_head"] = callback.head_scores
    return FitResult(history, seconds, len(history["loss"]), callback.best_epoch,
                     callback.best)


def predict_head(head, features: np.ndarray, metadata: np.ndarray | None = None) -> np.ndarray:
    """(n, 7) float64 probabilities of a head on features (and metadata)."""
    inputs = features if metadata is None else {"features": features, "metadata": metadata}
    return predict_array(head, inputs, dtype="float64")


def metadata_baselines(seed: int) -> dict[str, Any]:
    """Two class-balanced metadata-only classifiers; the notebook keeps the one
    with the better validation balanced accuracy."""
    return {
        "logistic_regression": LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0),
        "gradient_boosting": HistGradientBoostingClassifier(
            class_weight="balanced", max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
            min_samples_leaf=20, l2_regularization=1.0, random_state=seed),
    }


def full_proba(clf, X: np.ndarray) -> np.ndarray:
    """(n, 7) probabilities in ``DX_CLASSES`` order, zero for a class the
    classifier never saw (possible in tiny quick-mode subsets)."""
    P = np.zeros((len(X), len(DX_CLASSES)))
    P[:, np.asarray(clf.classes_, dtype="int64")] = clf.predict_proba(X)
    return P
