"""Notebook 7's readings are written from its tables: they change when the numbers do."""
from __future__ import annotations

import pandas as pd

from helpers.report import cross


def _paired(rows):
    return pd.DataFrame([{"test set": d, "minus": m, "AUC difference": diff, "95% CI low": lo,
                          "95% CI high": hi, "P(not better)": 0.0, "n": n} for d, m, diff, lo, hi, n in rows])


def test_paired_sentences_sort_models_by_their_interval():
    paired = _paired([("ham10000", "mlp", 0.14, 0.11, 0.17, 1186), ("ham10000", "small_cnn", 0.06, 0.04, 0.09, 1186),
                      ("ham10000", "lite0_7class", 0.0003, -0.016, 0.017, 1186),
                      ("isic-mvb", "mlp", 0.07, 0.04, 0.10, 607), ("isic-mvb", "other", -0.03, -0.05, -0.01, 607)])
    ham, isic = cross.paired_sentences(paired, "lite0_both")
    assert ham.startswith("On the ham10000 test split (n = 1186), lite0_both's AUC is higher than that of mlp and "
                          "small_cnn (paired 95% CI above zero)")
    assert "no different beyond noise from lite0_7class (+0.000, CI -0.016 to +0.017)" in ham
    assert "lower than" not in ham
    assert "higher than that of mlp" in isic and isic.endswith("lower than other.")
    none = cross.paired_sentences(_paired([("x", "a", -0.01, -0.03, 0.01, 50)]), "ref")
    assert none == ["On the x test split (n = 50), ref clearly beats no model; no different beyond noise from a "
                    "(-0.010, CI -0.030 to +0.010)."]


def test_per_diagnosis_sentences_name_the_worst_miss_and_false_alarm():
    rows = [("m", "mel", True, 10, 5), ("m", "bcc", True, 20, 18), ("m", "nv", False, 100, 12),
            ("m", "df", False, 10, 4), ("other", "mel", True, 10, 1)]
    by_dx = pd.DataFrame([{"model": m, "diagnosis": dx, "malignant": mal, "n": n, "called malignant": k,
                           "rate": k / n, "95% CI low": k / n - 0.1, "95% CI high": k / n + 0.1}
                          for m, dx, mal, n, k in rows])
    miss, alarm = cross.per_diagnosis_sentences(by_dx, "m")
    assert miss == "m misses mel most: it calls 5 of 10 malignant (50%, 95% CI 40%-60%)."
    assert alarm.startswith("Among benign diagnoses, df raises most false alarms: 4 of 10 called malignant (40%")
    assert cross.per_diagnosis_sentences(by_dx, "absent") == []
    assert cross.per_diagnosis_sentences(pd.DataFrame(), "m") == []


def test_threshold_sentences_summarise_the_models_against_the_target():
    def refit(mean, share):
        return {"sensitivity": {"mean": mean, "p5": 0.7, "p95": 0.95}, "repeats": 200, "share_meeting_target": share}
    travel = {"a on ham10000": {"transferred": {"sensitivity": 0.74}, "refitted": {"50": refit(0.85, 0.31)}},
              "b on isic-mvb": {"transferred": {"sensitivity": 0.93}, "refitted": {"50": refit(0.89, 0.55)}}}
    lines = cross.threshold_sentences(travel, 0.9)
    assert lines == [
        "Carried over unchanged, the validation threshold reaches sensitivity 0.90 for 1 of 2 models on an archive "
        "they were not trained on (sensitivity 0.740 to 0.930).",
        "Refitted on 50 labelled images (200 samples per model): mean sensitivity 0.850 to 0.890; 31% to 55% of the "
        "samples reach 0.90.",
        "A threshold fitted for exactly the target on so few images falls short about as often as not: a clinic "
        "should aim above its target, or label more images."]
    travel["b on isic-mvb"]["refitted"]["50"] = refit(0.95, 0.9)  # one model's refit is reliable: no warning
    assert len(cross.threshold_sentences(travel, 0.9)) == 2
    assert cross.threshold_sentences({}, 0.9) == []


def test_threshold_sentences_read_the_margin_against_the_plain_refit():
    def refit(share, specificity):
        return {"sensitivity": {"mean": 0.9}, "specificity": {"mean": specificity}, "repeats": 200,
                "share_meeting_target": share}
    travel = {"a on ham10000": {"transferred": {"sensitivity": 0.74}, "margin_confidence": 0.8,
                                "refitted": {"100": refit(0.40, 0.70)}, "refitted_with_margin": {"100": refit(0.81, 0.52)}},
              "b on isic-mvb": {"transferred": {"sensitivity": 0.80}, "margin_confidence": 0.8,
                                "refitted": {"100": refit(0.50, 0.60)}, "refitted_with_margin": {"100": refit(0.86, 0.41)}}}
    lines = cross.threshold_sentences(travel, 0.9)
    assert lines[2] == ("With calibrate's margin (80% confidence), refitted on 100 images: 81% to 86% of the samples "
                        "reach 0.90, at mean specificity 0.410 to 0.520 (without the margin 0.600 to 0.700).")
    assert lines[3].endswith("; the margin raises the share that reach it to 81% to 86%, paid for in specificity.")


def test_recipe_differences_name_every_field_besides_the_data():
    lite0 = {"image_size": 128, "finetune_blocks": 8, "members": 1, "artefact_augmentation": None}
    models = {"plain": {"recipe": lite0},
              "aug": {"recipe": {**lite0, "artefact_augmentation": {"n_scan": 800}}},
              "both": {"recipe": {**lite0, "finetune_blocks": 12, "members": 2, "artefact_augmentation": {"n_scan": 800}}},
              "same": {"recipe": {**lite0, "finetune_blocks": 12, "members": 2, "artefact_augmentation": {"n_scan": 9}}},
              "cnn": {"recipe": {"kind": "baseline", "image_size": 64}}, "old": {}}
    lines = cross.recipe_differences(models, "both")
    assert lines == ["both differs from plain in its recipe too: finetune_blocks 12 (vs 8), members 2 (vs 1), "
                     "artefact augmentation on (vs off).",
                     "both differs from aug in its recipe too: finetune_blocks 12 (vs 8), members 2 (vs 1).",
                     "both differs from same in its recipe too: artefact_augmentation {'n_scan': 800} (vs {'n_scan': 9})."]
    assert cross.recipe_differences(models, "absent") == []
    models["cnn2"] = {"recipe": {"kind": "baseline", "image_size": 32}}  # recipes without artefact augmentation
    assert cross.recipe_differences(models, "cnn") == ["cnn differs from cnn2 in its recipe too: image_size 64 (vs 32)."]
