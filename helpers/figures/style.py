"""One look for every figure: a fixed colour per model and fonts readable at the saved size.

A model keeps its colour in every figure of the series (ROC, PR, training curves, bars),
so a reader who learnt "Lite0 on both archives is red" in notebook 3 reads notebook 7
without a legend hunt. Text is at least ``MIN_FONT_PT`` points at the size the figure
is saved, which stays legible on a projected slide.
"""
from __future__ import annotations

import zlib

import matplotlib as mpl

MIN_FONT_PT = 9.0

# Colour-blind-friendly where it matters (Okabe-Ito first, for the models compared most).
MODEL_COLOURS: dict[str, str] = {
    "lite0_both": "#D55E00",            # vermillion: the served binary model
    "lite0_imagenet": "#0072B2",        # blue
    "lite0_artefact_aug": "#009E73",    # green
    "lite0_random_init": "#56B4E9",     # sky blue
    "small_cnn": "#E69F00",             # orange
    "mlp": "#7F7F7F",                   # grey
    "vgg16_random_init": "#8C564B",     # brown
    "lite0_7class": "#332288",          # indigo
    "lite0_7class_metadata": "#CC79A7",  # purple-pink
    "metadata_logistic_regression": "#7F7F7F",
}
# For names not listed (a user's own model): a stable choice from the rest, by name.
_SPARE = ("#F0E442", "#17BECF", "#BCBD22", "#9467BD", "#1F77B4", "#2CA02C", "#D62728", "#E377C2")

# Sizes in points; nothing below MIN_FONT_PT.
RC = {
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "legend.title_fontsize": 9.0,
    "figure.titlesize": 12.0,
}


def model_colour(name: str) -> str:
    """The colour of model ``name`` in every figure. A name that starts with a known
    model's name (``"lite0_both (HAM10000)"``) gets that model's colour."""
    for known in sorted(MODEL_COLOURS, key=len, reverse=True):
        if name == known or name.startswith((known + " ", known + ":", known + ",")):
            return MODEL_COLOURS[known]
    return _SPARE[zlib.crc32(name.encode()) % len(_SPARE)]


def apply() -> None:
    """Set the series' font sizes for every figure drawn after this call."""
    mpl.rcParams.update(RC)


def small_texts(fig, minimum: float = MIN_FONT_PT) -> list[tuple[str, float]]:
    """The visible, non-empty texts of ``fig`` (titles, labels, ticks, legends,
    annotations) smaller than ``minimum`` points: what a test or a reviewer checks."""
    fig.canvas.draw()  # tick labels exist only once drawn
    found = []
    for text in fig.findobj(mpl.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < minimum - 1e-6:
            found.append((text.get_text(), float(text.get_fontsize())))
    return found


def hidden_by_legend(fig) -> list[str]:
    """Bars that a legend drawn inside the axes covers, one line each: a legend must
    not hide data. Lines are not checked: a curve may
    pass behind a legend's corner and still be read."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    found = []
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        for bar in ax.patches:
            if not isinstance(bar, mpl.patches.Rectangle) or bar.get_height() == 0 or bar.get_width() == 0:
                continue
            if box.overlaps(bar.get_window_extent(renderer)):
                found.append(f"{ax.get_title() or 'axes'}: bar at x={bar.get_x():.2f} "
                             f"(label {bar.get_label()!r}) under the legend")
    return found
