"""helpers.report.tables and helpers.report.slides: what is read back from results.json."""
import json

import matplotlib.pyplot as plt
import pandas as pd

from helpers import figures
from helpers.report import slides, tables

RESULTS = {
    "models": {
        "small_cnn": {"weights": "none", "image_size": 64, "threshold": 0.4, "target_sensitivity": 0.9,
                      "validation": {"auc": 0.88},
                      "test": {"n": 100, "auc": 0.85, "auc_ci95": [0.8, 0.9], "sensitivity": 0.9,
                               "specificity": 0.6, "accuracy": 0.75, "balanced_accuracy": 0.75}},
        "lite0_imagenet": {"weights": "imagenet-pypi-efficientnet-lite0", "image_size": 128, "threshold": 0.55,
                           "validation": {"auc": 0.95},
                           "test": {"n": 100, "auc": 0.941, "auc_ci95": [0.91, 0.96], "sensitivity": 0.88,
                                    "specificity": 0.83, "accuracy": 0.85, "balanced_accuracy": 0.855}}},
    "seed_study": {"lite0_imagenet": {"seeds": [1, 2, 3], "test_auc": [0.936, 0.94, 0.944], "mean": 0.94,
                                      "sd": 0.004, "min": 0.936, "max": 0.944},
                   "small_cnn": {"seeds": [1, 2, 3], "test_auc": [0.84, 0.80, 0.88], "mean": 0.84,
                                 "sd": 0.04, "min": 0.80, "max": 0.88}},
    "multiclass": {"lite0_image": {"task": "multiclass", "inputs": "image", "test": {"n": 900, "balanced_accuracy": 0.71,
                                                               "balanced_accuracy_ci95": [0.66, 0.76],
                                                               "auc_macro_ovr": 0.93, "top2_accuracy": 0.9,
                                                               "malignant": {"auc": 0.9}}}},
    "data": {"name": "fixture", "images_used": 100, "test_duplicates_dropped": 2, "duplicate_groups": 5,
             "source_per_class": {"fixture": {"benign": 60, "malignant": 40}}},
    "run": {"date": "2026-01-01", "commit": "abc", "machine": {"cpu_cores": 2}, "quick": True},
}


def _pages(pdf_bytes: bytes) -> int:
    return pdf_bytes.count(b"/Type /Page\n") + pdf_bytes.count(b"/Type /Page ") + pdf_bytes.count(b"/Type /Page>")


def test_presentation_builds_from_results_and_figures(tmp_path):
    for stem in ("transfer_roc", "lime_explanations", "duplicates_across_split", "samples_per_class"):
        fig, ax = plt.subplots()
        ax.plot([0, 1], [0, 1])
        figures.save_fig(stem, fig, images_dir=tmp_path)
    pdf = slides.build_presentation(RESULTS, tmp_path, tmp_path / "Presentation.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and 10 <= _pages(data) <= 15


def test_summary_numbers_come_from_results():
    lines = " ".join(tables.summary_lines(RESULTS))
    assert "lite0_imagenet" in lines and "0.941" in lines and "0.910-0.960" in lines  # best on validation
    assert "0.940" in lines and "0.004" in lines  # seed study
    assert "0.710" in lines  # multiclass balanced accuracy
    assert tables.best_binary_model(RESULTS) == "lite0_imagenet"
    table = tables.binary_table(RESULTS["models"])
    assert table.loc["small_cnn", "AUC 95% CI"] == "0.800-0.900" and "AUC over seeds" not in table


def test_seed_spread_of_every_studied_model_is_read_back():
    table = tables.binary_table(RESULTS["models"], tables.seed_studies(RESULTS))
    assert table.loc["small_cnn", "AUC over seeds"] == "0.840 ± 0.040 (3)"
    assert table.loc["lite0_imagenet", "AUC over seeds"] == "0.940 ± 0.004 (3)"
    h = tables.headline(RESULTS)  # the best model's own spread; the widest one beside it
    assert (h["seed_model"], h["seed_sd"], h["seed_sd_max_model"], h["seed_sd_max"]) == \
        ("lite0_imagenet", 0.004, "small_cnn", 0.04)
    assert any("small_cnn's test AUC moved most from seed to seed (standard deviation 0.040)" in line
               for line in tables.summary_lines(RESULTS))
    assert any(line.startswith("Seed to seed (lite0_imagenet, small_cnn) the test AUC moves with standard "
                               "deviation up to 0.040 (small_cnn)") for line in slides._conclusion_lines(RESULTS))
    readme = tables.readme_markdown(RESULTS)
    assert "| 0.840 ± 0.040 (3) |" in readme and "small_cnn over 3 seeds: test AUC mean 0.840" in readme
    # A results.json of before 2026-12-03 held one study with its model's name inside.
    old = {**RESULTS, "seed_study": {"model": "lite0_imagenet", **RESULTS["seed_study"]["lite0_imagenet"]}}
    assert list(tables.seed_studies(old)) == ["lite0_imagenet"]
    assert tables.binary_table(old["models"], tables.seed_studies(old)).loc["small_cnn", "AUC over seeds"] == "1 seed"


def test_save_fig_writes_png_atomically(tmp_path):
    fig, _ = plt.subplots()
    path = figures.save_fig("x", fig, images_dir=tmp_path)
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_main_notebook_builds_from_a_results_fixture(tmp_path):
    """The main notebook trains nothing: given results.json and figures it must render them."""
    import json

    import nbformat

    from helpers import config
    from helpers.apps import reproduce

    out = config.output_dirs(tmp_path / "run")
    fixture = {**RESULTS, "run": {**RESULTS["run"], "python": "3.11", "versions": {"keras": "3"}},
               "timings": {"1_Data_Exploration.ipynb": 1.0}}
    fixture["data"] = {**fixture["data"], "images_found": 100, "images_read": 100, "images_skipped": 0,
                       "exact_pairs": 1, "near_pairs": 3,
                       "split_counts": {"train": {"benign": 40, "malignant": 30}, "val": {"benign": 10, "malignant": 5},
                                        "test": {"benign": 10, "malignant": 5}}}
    for name in ("small_cnn", "lite0_imagenet"):
        m = fixture["models"][name]
        m["test"].update({"spec_at_sens_0.90": 0.7, "spec_at_sens_0.95": 0.6})
        m["test_at_0.5"] = {"sensitivity": 0.8, "specificity": 0.7}
        m["calibration"] = {"test_before": {"brier": 0.2, "ece": 0.1}, "temperature": 1.5,
                            "test_after": {"brier": 0.15, "ece": 0.05}}
    (out.models / "results.json").write_text(json.dumps(fixture))
    fig, ax = plt.subplots()
    figures.save_fig("transfer_roc", fig, images_dir=out.images)
    reproduce.run_notebooks(out.root, notebooks=["Project_Main_Notebook.ipynb"], parameters={"quick": True},
                           kernel_name=reproduce.ensure_kernel(), log=lambda *_: None)
    nb = nbformat.read(out.root / "notebooks" / "Project_Main_Notebook.ipynb", as_version=4)
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                     + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells for o in c.get("outputs", []))
    assert "0.941" in text and "0.910-0.960" in text  # the best model's AUC and CI, from the fixture
    assert "0.710" in text  # the seven-class table
    assert "image/png" in str(nb.cells)  # the ROC figure is embedded


def test_comparison_lines_state_the_paired_differences_of_the_best_model():
    results = {**RESULTS, "models": {**RESULTS["models"], "lite0_imagenet": {
        **RESULTS["models"]["lite0_imagenet"],
        "auc_vs": {"small_cnn": {"difference": 0.0181, "ci95": [0.0042, 0.0325]}}}}}
    assert tables.comparison_lines(results) == [
        "lite0_imagenet minus small_cnn: test AUC +0.018 (paired bootstrap 95% CI +0.004 to +0.033)."]
    assert "- lite0_imagenet minus small_cnn: test AUC +0.018" in tables.readme_markdown(results)
    assert tables.comparison_lines(RESULTS) == []
    # no record from notebook 3 for the best model: notebook 7's, when it was the reference there
    paired = [{"test set": "isic-mvb", "minus": "small_cnn", "AUC difference": 0.02, "95% CI low": 0.005,
               "95% CI high": 0.035, "P(not better)": 0.0, "n": 607}]
    best = tables.best_binary_model(RESULTS)
    assert tables.comparison_lines({**RESULTS, "cross_dataset": {"reference": best, "paired": paired}}) == [
        f"On the isic-mvb test split (n = 607), {best}'s AUC is higher than that of small_cnn (paired 95% CI above "
        "zero)."]
    assert tables.comparison_lines({**RESULTS, "cross_dataset": {"reference": "other", "paired": paired}}) == []


def test_shortcut_lines_come_from_the_artefact_and_mitigation_records():
    res = {"artefacts": {
        "detector_vs_eye": {"ruler": {"n": 200, "by_eye": 21, "precision": 0.38, "recall": 0.24},
                            "ink": {"n": 200, "by_eye": 6, "precision": None, "recall": 0.0}},
        "pasted_on_benign": [
            {"model": "a", "artefact": "ruler", "n": 50, "mean_dp": 0.031, "mean_dp_ci95": [0.02, 0.04],
             "flip_rate": 0.04, "flip_rate_ci95": [0.011, 0.135]},
            {"model": "b", "artefact": "ruler", "n": 50, "mean_dp": 0.001, "mean_dp_ci95": [-0.002, 0.004],
             "flip_rate": 0.0, "flip_rate_ci95": [0.0, 0.071], "control_flips": 1, "control_flip_rate": 0.02,
             "control_mean_dp": -0.004}]},
        "models": {"b": {"mitigation": {"kept": False, "rule": "the rule", "sentence": "b minus a: no clear difference."}}}}
    lines = tables.shortcut_lines(res)
    assert lines[0] == ("Detectors checked on 200 training images labelled by eye: ruler precision 0.38 recall 0.24 "
                        "(21 marked); ink precision n/a recall 0.00 (6 marked).")
    assert "a: a pasted ruler moves P(malignant) on 50 benign" in lines[1] and "+0.031 [+0.020, +0.040]" in lines[1]
    assert "4.0% [1.1%-13.5%]" in lines[1] and "plain-skin" not in lines[1]  # a record without the control
    assert lines[2].endswith("of decisions (a plain-skin patch in the same place: -0.004, 2.0% flipped).")
    res["artefacts"]["pasted_on_benign"][1].update(on_skin_n=38, on_skin_flip_rate=1 / 38,
                                                   on_skin_flip_rate_ci95=[0.005, 0.135])
    assert tables.shortcut_lines(res)[2].endswith(
        "2.0% flipped); where it lies on the skin only (38 images; the rest cover part of the lesion) it flips "
        "2.6% [0.5%-13.5%].")
    assert lines[-1] == "b (not kept: the rule): b minus a: no clear difference."
    assert len(tables.shortcut_lines(res, models=("b",))) == 3  # detector line, b's paste line, the mitigation
    assert tables.shortcut_lines({}) == []


def test_readme_states_the_page_load_test_when_recorded():
    assert tables.page_load_line(RESULTS) == ""
    load = {"model": "lite0_imagenet", "requests": 200, "clients": 8, "cpu_cores": 2, "p50_seconds": 0.41,
            "p95_seconds": 0.93, "errors": 0, "requests_per_second": 17.5}
    text = tables.readme_markdown({**RESULTS, "web_page": {"load_test": load}})
    assert "200 uploads of one image from 8 clients" in text and "p50 0.41 s, p95 0.93 s, 0 errors" in text


def test_readme_names_the_machine_of_a_rerun_on_another_cpu():
    amd = {"cpu_cores": 2, "cpu": "AMD EPYC", "cpu_vector_flags": ["avx2"]}
    intel = {"cpu_cores": 2, "cpu": "Intel Xeon", "cpu_vector_flags": ["avx512f"]}
    run = {**RESULTS["run"], "machine": amd, "partial_reruns": [
        {"notebooks": ["3.ipynb"], "commit": "b" * 40, "date": "d1", "machine": amd},
        {"notebooks": ["5.ipynb"], "commit": "c" * 40, "date": "d2", "machine": intel},
        {"notebooks": ["7.ipynb"], "commit": "d" * 40, "date": "d3"}]}  # a record without the machine
    text = tables.readme_markdown({**RESULTS, "run": run})
    assert "Rerun since: 3.ipynb at commit `bbbbbbbbbb`, d1. " in text  # the same CPU: nothing added
    assert ("Rerun since: 5.ipynb at commit `cccccccccc`, d2, on another machine: 2 CPU cores "
            "(Intel Xeon; avx512f).") in text
    assert "Rerun since: 7.ipynb at commit `dddddddddd`, d3.\n" in text


def test_ppv_is_restated_at_a_clinics_prevalence():
    from helpers.evaluation.binary import predictive_values

    # Textbook case: sensitivity 0.9, specificity 0.9 at 10% prevalence -> PPV 0.5, NPV 0.9878.
    ppv, npv = predictive_values(0.9, 0.9, 0.10)
    assert abs(ppv - 0.5) < 1e-12 and abs(npv - 81 / 82) < 1e-12
    results = {**RESULTS, "models": {**RESULTS["models"], "lite0_imagenet": {
        **RESULTS["models"]["lite0_imagenet"],
        "test": {**RESULTS["models"]["lite0_imagenet"]["test"], "n_pos": 44, "ppv": 0.80, "npv": 0.90}}}}
    text = " ".join(tables.summary_lines(results))
    ppv5, _ = predictive_values(0.88, 0.83, 0.05)
    assert "PPV 0.80 and NPV 0.90 hold at this test set's 44% malignant (n = 100)" in text
    assert "where 5% of lesions are malignant" in text and f"PPV {ppv5:.2f}" in text and "would be benign" in text


def _deck(tmp_path, results=RESULTS):
    for stem in ("transfer_roc", "lime_explanations", "samples_per_class"):
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot([0, 1], [0, 1])
        figures.save_fig(stem, fig, images_dir=tmp_path)
    results = {**results, "headline": slides.headline_record(results)}  # what the chain records before the deck
    return slides.build_presentation(results, tmp_path, tmp_path / "deck.pdf"), results


def test_provenance_is_on_the_last_slide_not_the_title(tmp_path):
    pdf, _ = _deck(tmp_path)
    texts = slides.slide_texts(pdf)
    assert texts[0].startswith("Classifying") and "abc" not in texts[0] and "commit" not in texts[0]
    assert texts[-1].startswith("Next steps") and "commit abc" in texts[-1]


def test_every_number_on_the_deck_is_in_results(tmp_path):
    pdf, results = _deck(tmp_path)
    text = " ".join(slides.slide_texts(pdf))
    assert "0.941" in text and "0.910-0.960" in text and "0.004" in text  # the check has numbers to check
    assert slides.deck_numbers_not_in_results(pdf, results) == []
    # the same deck against results where the best model's AUC differs: that number is caught
    changed = json.loads(json.dumps(results).replace("0.941", "0.777"))
    missing = slides.deck_numbers_not_in_results(pdf, changed)
    assert missing and all(m.endswith("0.941") for m in missing)
    assert any(m.startswith("slide 5:") for m in missing), missing


def test_percentages_and_signs_are_read_as_fractions(tmp_path):
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(tmp_path / "x.pdf") as pdf:
        slides._slide(pdf, "Title", lines=["flips 16.7% of decisions; P(malignant) -0.007 [-0.020, +0.031]; "
                                           "lite0_7class, 95% CI, top-2"])
    results = {"flip_rate": 0.16666, "dp": -0.0071, "ci": [-0.0203, 0.0308]}
    assert slides.deck_numbers_not_in_results(tmp_path / "x.pdf", results) == []
    assert slides.deck_numbers_not_in_results(tmp_path / "x.pdf", {**results, "flip_rate": 0.2}) == [
        "slide 1: 16.7%"]


def test_input_benchmark_block_reads_the_ratios_off_the_rows():
    from helpers.report.tables import input_benchmark_block

    def row(n, path, task, rate, rss):
        return {"n": n, "path": path, "task": task, "images_per_s": rate, "peak_rss_mb": rss}

    report = {"date": "2026-12-03T07:00:00+00:00", "machine": {"cpu_count": 2}, "source": "isic-mvb",
              "image_size": 64, "batch_size": 32,
              "results": [row(3000, "memory", "epoch", 100.0, 1000.0), row(3000, "stream", "epoch", 90.0, 900.0),
                          row(30000, "memory", "epoch", 120.0, 2000.0), row(30000, "stream", "epoch", 96.0, 990.0),
                          row(30000, "stream", "decode", 800.0, 700.0)]}
    block = input_benchmark_block(report)
    assert "| 30,000 | streamed | 800 | 700 | 96 | 990 |" in block
    assert "| 3,000 | in memory | - | - | 100 | 1000 |" in block  # no decode row measured: a dash, not a number
    assert "streamed 1.10x, in memory 2.00x" in block and "30,000 images: 80% of the in-memory" in block


def _with_other_archive():
    def test(auc, sens, spec):
        return {"test": {"n": 200, "auc": auc, "auc_ci95": [auc - 0.02, auc + 0.02], "sensitivity": sens,
                         "specificity": spec}, "validation": {"auc": auc}}

    def refit(share, specificity):
        return {"sensitivity": {"mean": 0.9, "p5": 0.8, "p95": 0.97}, "specificity": {"mean": specificity},
                "repeats": 200, "skipped": 0, "share_meeting_target": share}
    results = json.loads(json.dumps(RESULTS))
    results["models"]["lite0_imagenet"].update(trained_on=["isic"], by_dataset={"isic": test(0.941, 0.88, 0.83),
                                                                                 "ham": test(0.861, 0.71, 0.80)})
    results["cross_dataset"] = {
        "reference": "lite0_imagenet", "best_on_validation": "lite0_imagenet", "paired": [],
        "thresholds": {"lite0_imagenet on ham": {"transferred": {"sensitivity": 0.71, "specificity": 0.80},
                                                 "margin_confidence": 0.8, "refitted": {"100": refit(0.45, 0.61)},
                                                 "refitted_with_margin": {"100": refit(0.83, 0.47)}}}}
    return results


def test_cross_dataset_lines_and_slide_give_both_refits():
    results = _with_other_archive()
    text = " ".join(tables.cross_dataset_lines(results))
    assert "refitted on 100 of its images: sensitivity 0.900 (5-95% of samples 0.800-0.970, 45% reach the target), " \
           "specificity 0.610" in text
    assert "refitted with calibrate's margin on 100 of its images" in text and "83% reach the target" in text
    title, lines = slides._other_clinic_slide(results)
    assert title.startswith("lite0_imagenet: test AUC 0.941 on isic, 0.861 on ham")
    assert any("with its margin, 83% of 200 samples reached the target, at mean specificity 0.470" in line
               for line in lines)
    assert any(line.startswith("At the other archive: test AUC 0.941") for line in slides._conclusion_lines(results))
    results["models"]["lite0_imagenet"]["trained_on"] = ["ham", "isic"]  # no archive is another to it
    assert any(line.startswith("On each archive it was trained on: ") for line in slides._conclusion_lines(results))


def test_shortcut_slide_speaks_of_the_served_model_beside_the_one_without_the_mitigation():
    res = json.loads(json.dumps(RESULTS))
    res["models"]["lite0_both"] = {**res["models"]["lite0_imagenet"], "validation": {"auc": 0.99},
                                   "recipe": {"artefact_augmentation": {"n_scan": 800}}}
    def row(model, dp, low):
        return {"model": model, "artefact": "ruler", "n": 349, "mean_dp": dp, "mean_dp_ci95": [low, dp + 0.01],
                "flip_rate": 0.04, "flip_rate_ci95": [0.03, 0.07]}
    res["models"]["lite0_artefact_aug"] = {**res["models"]["lite0_imagenet"], "mitigation": {
        "baseline": "lite0_imagenet", "kept": True, "rule": "kept unless it hurts",
        "by_dataset": {"ham10000": {"validation": {"difference": -0.007, "ci95": [-0.017, 0.004]}}}}}
    res["artefacts"] = {"pasted_on_benign": [row("lite0_imagenet", 0.374, 0.336), row("lite0_both", 0.023, 0.014),
                                             row("lite0_artefact_aug", 0.05, 0.03)]}
    res["artefacts"]["pasted_on_benign"][1].update(control_flips=10, control_flip_rate=10 / 349)
    title, lines = slides._shortcut_slide(res)
    assert "4.0% flipped (2.9% by a plain-skin patch there)." in next(line for line in lines
                                                                   if line.startswith("lite0_both"))
    res["artefacts"]["pasted_on_benign"][1].update(on_skin_n=250, on_skin_flip_rate=0.02)
    assert "4.0% flipped (2.9% by a plain-skin patch there), 2.0% of the 250 on the skin only." in next(
        line for line in slides._shortcut_slide(res)[1] if line.startswith("lite0_both"))
    assert ("lite0_artefact_aug minus lite0_imagenet, AUC: -0.007 (95% CI -0.017 to +0.004) on ham10000 validation, "
            "so kept (rule: kept unless it hurts).") in lines
    assert title == "A pasted ruler moves lite0_both's P(malignant) by +0.023, lite0_imagenet's by +0.374"
    assert any(line.startswith("lite0_both (n = 349; trained with rulers, ink and black bars pasted onto both "
                               "classes): ruler +0.023") for line in lines)
    assert not any(line.startswith("lite0_artefact_aug") for line in lines[:-1])  # its paste rows: notebook 4
    assert any(line.endswith("on benign test images: lite0_both still partly uses what is around the lesion.")
               for line in slides._conclusion_lines(res))
    res["artefacts"]["pasted_on_benign"][1] = row("lite0_both", 0.002, -0.004)  # no effect the test can tell
    assert slides._conclusion_lines(res)[-2].endswith("lite0_imagenet's by +0.374 on benign test images.")
    del res["models"]["lite0_both"]["recipe"]
    assert not any("pasted onto both classes" in line for line in slides._shortcut_slide(res)[1])


def test_a_wide_table_is_shrunk_to_fit_the_slide():
    class Capture:  # stands in for PdfPages: checks the slide instead of writing it
        def savefig(self, fig):
            renderer = fig.canvas.get_renderer()
            table = next(a for ax in fig.axes for a in ax.tables)
            box, page = table.get_window_extent(renderer), fig.bbox
            self.inside = page.x0 <= box.x0 and box.x1 <= page.x1
            self.size = table[0, 0].get_fontsize()
    wide = pd.DataFrame({"inputs": ["image+metadata"] * 3, "test n": [1186] * 3, "balanced acc.": [0.674] * 3,
                         "95% CI": ["0.618-0.726"] * 3, "macro AUC": [0.939] * 3, "malignant AUC": [0.931] * 3},
                        index=pd.Index(["metadata_logistic_regression", "lite0_7class_metadata", "x"], name="model"))
    capture = Capture()
    slides._slide(capture, "Seven diagnoses", lines=["one line"], table=wide)
    assert capture.inside and 9 <= capture.size < 15
    capture = Capture()
    slides._slide(capture, "Small", table=wide[["test n"]])
    assert capture.inside and capture.size == 15


def test_method_lines_say_how_lite0_drew_its_augmentations():
    old = {"models": {"lite0_imagenet": {"recipe": {"image_size": 128}}, "mlp": {"recipe": {"kind": "baseline"}}}}
    assert "Augmentation drawn afresh every epoch" in tables.method_lines(old)[2]
    new = {"models": {"lite0_imagenet": {"recipe": {"image_size": 128, "pool_copies": 6}}}}
    assert "draws from 6 cached copies of each training image" in tables.method_lines(new)[2]
    assert tables.method_lines(new)[3].endswith("top blocks fine-tuned.")
    both = {"models": {"lite0_both": {"recipe": {"image_size": 128, "members": 2}}}}
    assert tables.method_lines(both)[3].endswith("fine-tuned; lite0_both is the mean logit of 2 copies trained "
                                                 "with different seeds.")


def test_an_ensembles_members_stand_in_for_its_seed_spread():
    models = {"lite0_both": {**RESULTS["models"]["lite0_imagenet"],
                             "members": [{"seed": 42, "test_auc": 0.9512}, {"seed": 142, "test_auc": 0.9437}]}}
    assert tables.binary_table(models, {}).loc["lite0_both", "AUC over seeds"] == "members 0.951, 0.944"


def test_the_metadata_gain_on_the_deck_is_scoped_to_one_trained_network():
    table = pd.DataFrame({"balanced acc.": [0.68, 0.72]})
    for ci, ending in (([0.006, 0.079], "for one trained network; retraining with another seed may move it "
                                        "more than that."),
                       ([-0.02, 0.05], "; no gain the test split can tell from zero.")):
        results = {"multiclass": {"metadata_gain": {"difference": 0.039, "ci95": ci}}}
        _, lines = slides._multiclass_slide(results, table)
        assert lines[-1].startswith("Adding age, sex and site to the image: balanced accuracy +0.039 (paired 95% CI")
        assert lines[-1].endswith(ending)


SEED_STUDY = {"seeds": [42, 43, 44],
              "lite0_7class": {"test": {"mean": 0.671, "min": 0.655, "max": 0.683},
                               "validation": {"min": 0.643, "max": 0.689}},
              "lite0_7class_metadata": {"test": {"mean": 0.699, "min": 0.671, "max": 0.717},
                                        "validation": {"min": 0.678, "max": 0.715}},
              "metadata_gain": {"test": [0.039, -0.012, 0.016],
                                "test_ci95": [[0.006, 0.079], [-0.05, 0.03], [-0.02, 0.05]],
                                "test_ci_above_zero": 1, "test_ci_below_zero": 0}}


def test_the_seven_class_seed_study_is_told_seed_by_seed():
    lines = tables.multiclass_seed_lines({"multiclass": {"seed_study": SEED_STUDY}})
    assert lines[0] == ("lite0_7class over 3 seeds (42, 43, 44): test balanced accuracy mean 0.671, range 0.655 to "
                        "0.683 (validation 0.643 to 0.689).")
    assert lines[2] == ("What the metadata adds, seed by seed (test balanced accuracy): +0.039, -0.012, +0.016; its "
                        "paired 95% CI (test images resampled, one network each) was above zero for 1 and "
                        "including zero for 2 of the 3 seeds.")
    all_above = {**SEED_STUDY, "metadata_gain": {**SEED_STUDY["metadata_gain"], "test_ci_above_zero": 3}}
    assert "was above zero for all 3 seeds." in tables.multiclass_seed_lines(
        {"multiclass": {"seed_study": all_above}})[2]
    mixed = {**SEED_STUDY, "metadata_gain": {**SEED_STUDY["metadata_gain"], "test_ci_below_zero": 1}}
    assert "was above zero for 1, below zero for 1 and including zero for 1 of the 3 seeds." in (
        tables.multiclass_seed_lines({"multiclass": {"seed_study": mixed}})[2])
    assert tables.multiclass_seed_lines({"multiclass": {"seed_study": {"seeds": [42]}}}) == []
    assert tables.multiclass_seed_lines({}) == []
    # on the deck: the measured range replaces the caution that a seed may move the gain
    table = pd.DataFrame({"balanced acc.": [0.68, 0.72]})
    _, lines = slides._multiclass_slide({"multiclass": {"metadata_gain": {"difference": 0.039, "ci95": [0.006, 0.079]},
                                                        "seed_study": SEED_STUDY}}, table)
    assert lines[-2].endswith("(paired 95% CI +0.006 to +0.079) for one trained network.")
    assert lines[-1] == ("Retrained with 3 seeds: the metadata's gain ranged from -0.012 to +0.039, the image + "
                         "metadata model's balanced accuracy from 0.671 to 0.717.")


def test_an_ensemble_studied_copy_by_copy_is_never_told_as_the_served_models_spread():
    copy = {"seeds": [42, 142, 242], "test_auc": [0.95, 0.94, 0.93], "mean": 0.94, "sd": 0.01, "min": 0.93,
            "max": 0.95, "unit": "copy", "served_copies": 2,
            "by_dataset": {"fixture": {"test_auc": [0.95, 0.94, 0.93], "mean": 0.94, "sd": 0.01, "min": 0.93,
                                       "max": 0.95},
                           "ham10000": {"test_auc": [0.92, 0.93, 0.91], "mean": 0.92, "sd": 0.01, "min": 0.91,
                                        "max": 0.93}}}
    both = {**RESULTS["models"]["lite0_imagenet"], "validation": {"auc": 0.97}}
    results = {**RESULTS, "models": {**RESULTS["models"], "lite0_both": both},
               "seed_study": {**RESULTS["seed_study"], "lite0_both": copy}}
    table = tables.binary_table(results["models"], tables.seed_studies(results))
    assert table.loc["lite0_both", "AUC over seeds"] == "0.940 ± 0.010 (3 copies)"
    h = tables.headline(results)
    assert (h["best_model"], h["seed_model"], h["seed_served_copies"]) == ("lite0_both", "lite0_both (one copy)", 2)
    assert "lite0_both (one copy)" in h["seed_models"]
    assert ("Over 3 seeds, lite0_both (one copy) reached a mean test AUC of 0.940 (standard deviation 0.010); "
            "the served model averages 2 copies.") in tables.summary_lines(results)
    readme = tables.readme_markdown(results)
    assert ("lite0_both (one copy) over 3 seeds: test AUC mean 0.940, sd 0.010 (range 0.930-0.950); on ham10000: "
            "mean 0.920, sd 0.010 (range 0.910-0.930); the served model averages 2 copies.") in readme
    assert "lite0_imagenet over 3 seeds: test AUC mean 0.940, sd 0.004 (range 0.936-0.944)." in readme
