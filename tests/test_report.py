import matplotlib.pyplot as plt

from helpers import figures, report

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
    "seed_study": {"model": "lite0_imagenet", "seeds": [1, 2, 3], "mean": 0.94, "sd": 0.004},
    "multiclass": {"lite0_image": {"inputs": "image", "test": {"n": 900, "balanced_accuracy": 0.71,
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
    pdf = report.build_presentation(RESULTS, tmp_path, tmp_path / "Presentation.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and 10 <= _pages(data) <= 15


def test_summary_numbers_come_from_results():
    lines = " ".join(report.summary_lines(RESULTS))
    assert "lite0_imagenet" in lines and "0.941" in lines and "0.910-0.960" in lines  # best on validation
    assert "0.940" in lines and "0.004" in lines  # seed study
    assert "0.710" in lines  # multiclass balanced accuracy
    assert report.best_binary_model(RESULTS) == "lite0_imagenet"
    table = report.binary_table(RESULTS)
    assert table.loc["small_cnn", "AUC 95% CI"] == "0.800-0.900"


def test_save_fig_writes_png_atomically(tmp_path):
    fig, _ = plt.subplots()
    path = figures.save_fig("x", fig, images_dir=tmp_path)
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["x.png"]
