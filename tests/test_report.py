import matplotlib.pyplot as plt

from helpers import figures, report

RESULTS = {
    "models": {"small_cnn": {"weights": "none", "image_size": 64, "threshold": 0.4,
                             "test": {"n": 100, "auc": 0.85, "auc_ci95": [0.8, 0.9], "sensitivity": 0.9,
                                      "specificity": 0.6, "accuracy": 0.75}}},
    "data": {"name": "fixture", "images_used": 100, "test_duplicates_dropped": 2},
    "run": {"date": "2026-01-01", "commit": "abc", "machine": {"cpu_cores": 2}, "quick": True},
}


def test_presentation_builds_from_results_and_figures(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    figures.save_fig("baselines_roc", fig, images_dir=tmp_path)
    pdf = report.build_presentation(RESULTS, tmp_path, tmp_path / "Presentation.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") >= 3


def test_save_fig_writes_png_atomically(tmp_path):
    fig, _ = plt.subplots()
    path = figures.save_fig("x", fig, images_dir=tmp_path)
    assert path.read_bytes()[:4] == b"\x89PNG" and [p.name for p in tmp_path.iterdir()] == ["x.png"]
