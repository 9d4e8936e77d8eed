"""The board's figures, PNG and SVG, drawn with rliable's plot functions where it has one (matplotlib, Agg backend).

    aggregates        IQM, (median,) mean and optimality gap of the ranked scores (final or AUC), with 95% intervals
    aggregates_other  the same for the other view (AUC or final)
    improvement       probability of improvement of every row over the baseline
    profiles          performance profiles (fraction of runs x tasks above each score)
    stream_iqm        IQM over runs x tasks at every evaluation across the whole stream (task visits shaded)
    curves            mean score per task across the stream, a 95% band per method (task visits shaded)
    diagnostics       plasticity diagnostics (density, dormant ratio, srank) across the stream
    online            training-time quantities per evaluation window (only when the runs recorded some)

So that a figure cannot make a tiny gap look large, every axis of normalised scores spans at least 0 (random
policy) to 1 (reference), and panels of one figure share it. Each method keeps its colour on every board (COLOR_SLOTS),
and no two rows of a board share one. With more than BAND_ROWS rows, the curves with bands are drawn one panel per
method (the baseline dashed in each), and the diagnostics and online curves without bands. Legends sit outside the
axes. Files are reproducible byte for byte: SVG ids use a fixed salt and no date is written.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from rliable import plot_utils  # noqa: E402

from cyclic_bench.board.render import shown_aggregates  # noqa: E402

SHADE = "0.93"
BASELINE_STYLE = dict(color="0.35", linestyle="--", linewidth=1.2)
LABELS = {"final": "Final normalised score", "auc": "Normalised score, AUC over the stream"}
PAIR = ";"  # separates the two labels of a pair (labels never hold it)
BAND_ROWS = 4  # above this many rows, curves with intervals get one panel per method
PALETTE = [  # 24 colours distinct on white, the most distinct first
    "#0173b2", "#de8f05", "#029e73", "#e6194b", "#911eb4", "#9a6324", "#56b4e9", "#949494", "#000000", "#f032e6",
    "#808000", "#469990", "#000075", "#cc78bc", "#800000", "#ca9161", "#fa8072", "#ece133", "#fbafe4", "#3cb44b",
    "#4363d8", "#2f4f4f", "#00ced1", "#ff1493",
]  # fmt: skip
CONTINUOUS = ["td3", "reset", "reset_switch", "ne", "redo", "plasticity_injection", "layer_norm", "shrink_perturb", "nap", "cbp"]
CONTINUOUS += ["neuromodulated_td3", "ne_no_growth", "ne_no_prune", "ne_no_review", "hebbian", "static_es", "ne_public"]
CONTINUOUS += ["sac", "neuromodulated", "l2_init", "crelu", "hare_tortoise", "parseval", "drq"]
BANDIT = ["epsilon_greedy", "boltzmann", "ucb", "discounted_ucb", "discounted_ucb_999", "thompson", "achna", "achna_constant"]
BANDIT += ["achna_ratio", "achna_jan2023"]
# each suite method's palette slot; bandit methods (discrete actions) never share a board with continuous-control ones
COLOR_SLOTS = {name: slot for slot, name in enumerate(CONTINUOUS)} | {name: slot for slot, name in enumerate(BANDIT)}


def row_colors(rows: list[dict]) -> dict[str, tuple]:
    """A colour per row label: the method's own slot where it is free, otherwise the first free colour (rows sorted
    by label); past the palette, evenly spaced hues."""
    palette = [matplotlib.colors.to_rgb(c) for c in PALETTE]
    if len(rows) > len(palette):
        palette += sns.husl_palette(len(rows) - len(palette), l=0.5)
    colors, taken = {}, set()
    for row in sorted(rows, key=lambda r: r["label"]):
        slot = COLOR_SLOTS.get(row["method"])
        if slot is not None and slot not in taken:
            colors[row["label"]], taken = palette[slot], taken | {slot}
    for row in sorted(rows, key=lambda r: r["label"]):
        if row["label"] not in colors:
            slot = next(i for i in range(len(palette)) if i not in taken)
            colors[row["label"]], taken = palette[slot], taken | {slot}
    return colors


def write_plots(board: dict, folder: Path) -> dict[str, str]:
    """Draw every figure the board has data for into `folder`; returns {name: relative PNG path}."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in list(folder.glob("*.png")) + list(folder.glob("*.svg")):
        old.unlink()
    rows = board["rows"]
    score = board["options"]["score"]
    other = "auc" if score == "final" else "final"
    colors = row_colors(rows)
    written = {}
    with plt.rc_context({"svg.hashsalt": "cyclic-bench", "svg.fonttype": "path"}):
        for name, draw in (
            ("aggregates", lambda: _aggregates(board, colors, score)),
            ("aggregates_other", lambda: _aggregates(board, colors, other)),
            ("improvement", lambda: _improvement(board, colors)),
            ("profiles", lambda: _profiles(board, colors)),
            ("stream_iqm", lambda: _stream_iqm(board, colors)),
            ("curves", lambda: _curves(board, colors)),
            ("diagnostics", lambda: _series(board, colors, "diagnostics")),
            ("online", lambda: _series(board, colors, "online")),
        ):
            figure = draw()
            if figure is not None:
                figure.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight", metadata={"Software": None})
                figure.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
                plt.close(figure)
                written[name] = f"plots/{name}.png"
    return written


def score_range(values) -> tuple[float, float]:
    """An axis range for normalised scores: 0 to 1 at least, widened to every value, with a small margin."""
    finite = np.asarray([v for v in np.ravel(values) if v is not None and np.isfinite(v)], dtype=float)
    low, high = min(0.0, *finite, 0.0), max(1.0, *finite, 1.0)
    pad = 0.03 * (high - low)
    return low - pad, high + pad


def _outside_legend(ax_or_figure, handles=None, labels=None) -> None:
    """A legend to the right of the axes (or figure), never over the data."""
    kwargs = dict(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="medium", frameon=False)
    if handles is None:
        ax_or_figure.legend(**kwargs)
    else:
        ax_or_figure.legend(handles, labels, **kwargs)


def _aggregates(board: dict, colors: dict, view: str):
    rows = board["rows"]
    metrics = shown_aggregates(len(board["stream"]["tasks"]))
    labels = [r["label"] for r in rows][::-1]  # rliable draws the first algorithm at the bottom: best on top
    points = {r["label"]: np.array([r[view][m][0] for m in metrics]) for r in rows}
    intervals = {r["label"]: np.array([[r[view][m][1] for m in metrics], [r[view][m][2] for m in metrics]]) for r in rows}
    height = 0.42 * len(rows) + 1.1
    figure, axes = plot_utils.plot_interval_estimates(
        points, intervals, metric_names=metrics, algorithms=labels, colors=colors, xlabel="", max_ticks=6, subfigure_width=3.6
    )
    for text in list(figure.texts):  # rliable places its x label at a fixed figure height, far below short figures
        text.remove()
    figure.set_size_inches(3.6 * len(metrics), height)
    low, high = score_range([v for r in rows for m in metrics for v in r[view][m]])
    for ax in np.atleast_1d(axes):
        ax.set_xlim(low, high)
        ax.xaxis.set_major_locator(plt.MaxNLocator(6))
        ax.tick_params(axis="x", labelsize="large")
    figure.subplots_adjust(bottom=0.9 / height, top=1 - 0.45 / height)
    ticks_bottom = min(ax.get_tightbbox().transformed(figure.transFigure.inverted()).y0 for ax in np.atleast_1d(axes))
    figure.supxlabel(LABELS[view], fontsize="x-large", y=ticks_bottom - 0.06 / height, va="top")  # just below the tick labels
    return figure


def _improvement(board: dict, colors: dict):
    pairs = [r for r in board["rows"] if r["improvement"] is not None]
    if not pairs:
        return None
    points = {f"{r['label']}{PAIR}{board['baseline']}": r["improvement"][0] for r in pairs}
    intervals = {f"{r['label']}{PAIR}{board['baseline']}": np.array(r["improvement"][1:]) for r in pairs}
    figure, ax = plt.subplots(figsize=(5.0, 0.5 * len(pairs) + 1.0))
    plot_utils.plot_probability_of_improvement(
        points, intervals, pair_separator=PAIR, ax=ax, colors=[colors[r["label"]] for r in pairs], xticks=[0, 0.25, 0.5, 0.75, 1.0]
    )
    ax.set_xlim(-0.04, 1.1)  # room between a bar at 1 and the labels of the right-hand axis
    ax.axvline(0.5, color="0.6", linewidth=0.8, zorder=0)
    return figure


def _profiles(board: dict, colors: dict):
    figure, ax = plt.subplots(figsize=(7, 4.5))
    profiles = {r["label"]: np.array(r["curves"]["profile"][0]) for r in board["rows"]}
    intervals = {r["label"]: np.array(r["curves"]["profile"][1]) for r in board["rows"]}
    plot_utils.plot_performance_profiles(
        profiles,
        np.array(board["taus"]),
        intervals,
        ax=ax,
        colors=colors,
        xlabel=LABELS[board["options"]["score"]] + r" ($\tau$)",
        labelsize="large",
        alpha=0.12,
    )
    ax.xaxis.set_major_locator(plt.MaxNLocator(8))
    _outside_legend(ax)
    return figure


def _shade_visits(ax, stream: dict, names: bool = True) -> None:
    """Shade every other task visit and (on top panels) name the task trained in each."""
    B, tasks = stream["steps_per_task"], stream["tasks"]
    visits = len(tasks) * stream["cycles"]
    for visit in range(visits):
        if visit % 2 == 0 and visits > 1:
            ax.axvspan(visit * B, (visit + 1) * B, color=SHADE, zorder=0, linewidth=0)
        if names and visits > 1:
            ax.text((visit + 0.5) * B, 1.0, tasks[visit % len(tasks)], transform=ax.get_xaxis_transform(), ha="center", va="bottom")
    ax.set_xlim(0, stream["total_steps"])
    ax.xaxis.set_major_locator(plt.MaxNLocator(6))


def _band(ax, steps, curve, color, label) -> None:
    """A mean curve [points, [low, high]] with its 95% band; None values are gaps."""
    points, interval = _nan(curve[0]), np.array([_nan(v) for v in curve[1]])
    ax.plot(steps, points, color=color, label=label, linewidth=1.6)
    ax.fill_between(steps, interval[0], interval[1], color=color, alpha=0.18, linewidth=0)


def _curve_figure(board: dict, colors: dict, columns: list[str], curve_of, ylabel: str):
    """Score curves with 95% bands across the stream, on one shared score axis: one panel per column (task), every
    method in it; with more than BAND_ROWS methods, one panel per method and column, the baseline dashed in each."""
    rows, baseline = board["rows"], board["baseline"]
    faceted = len(rows) > BAND_ROWS
    if not faceted:
        panels, shape = [(None, column) for column in columns], (1, len(columns))
    elif len(columns) == 1:
        panels, shape = [(row, columns[0]) for row in rows], (int(np.ceil(len(rows) / 3)), 3)
    else:
        panels, shape = [(row, column) for row in rows for column in columns], (len(rows), len(columns))
    figure, axes = plt.subplots(
        *shape, figsize=(4.6 * shape[1], (2.4 if faceted else 3.6) * shape[0]), squeeze=False, sharex=True, sharey=True
    )
    values = []
    by_label = {r["label"]: r for r in rows}
    for k, (ax, (line, column)) in enumerate(zip(axes.flat, panels, strict=False)):
        if line is not None and line["label"] != baseline:
            steps, curve = curve_of(by_label[baseline], column)
            ax.plot(steps, _nan(curve[0]), **BASELINE_STYLE)
        for r in rows if line is None else [line]:
            steps, curve = curve_of(r, column)
            _band(ax, steps, curve, colors[r["label"]], r["label"])
            values += [v for part in curve[1] for v in part]
        _shade_visits(ax, board["stream"], names=k < shape[1])
        ax.set_title(column if line is None else (line["label"] if len(columns) == 1 else f"{line['label']}: {column}"), pad=16)
        ax.grid(True, alpha=0.25)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylim(*score_range(values))
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    for ax in axes[-1]:
        ax.set_xlabel("environment steps per seed")
    figure.tight_layout()
    if faceted:
        _outside_legend(axes[0, -1], [Line2D([], [], **BASELINE_STYLE)], [f"{baseline}, the baseline (in every panel)"])
    else:
        _outside_legend(axes[0, -1])
    return figure


def _stream_iqm(board: dict, colors: dict):
    def curve_of(row, _column):
        return row["curves"]["steps"], row["curves"]["iqm"]

    return _curve_figure(board, colors, ["IQM over runs x tasks"], curve_of, "IQM normalised score")


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _curves(board: dict, colors: dict):
    stream = board["stream"]
    titles = stream["tasks"] + [f"{t} (held out)" for t in stream["held_out_tasks"]]
    names = stream["tasks"] + stream["held_out_tasks"]

    def curve_of(row, title):
        return row["curves"]["steps"], row["curves"]["tasks"][names[titles.index(title)]]

    return _curve_figure(board, colors, titles, curve_of, "mean normalised score")


def _series(board: dict, colors: dict, table: str):
    """Diagnostics or online quantities across the stream, one panel per quantity (each on its own scale); bands only
    with at most BAND_ROWS methods, lines alone above that."""
    names = sorted({n for r in board["rows"] for n in r["curves"][table] if n != "steps"})[:9]
    if not names:
        return None
    columns = min(3, len(names))
    shape = (int(np.ceil(len(names) / columns)), columns)
    figure, axes = plt.subplots(*shape, figsize=(4.6 * columns, 3.0 * shape[0]), squeeze=False, sharex=True)
    bands = len(board["rows"]) <= BAND_ROWS
    for ax, name in zip(axes.flat, names, strict=False):
        for r in board["rows"]:
            curves = r["curves"][table]
            if name not in curves:
                continue
            if bands:
                _band(ax, curves["steps"], curves[name], colors[r["label"]], r["label"])
            else:
                ax.plot(curves["steps"], _nan(curves[name][0]), color=colors[r["label"]], label=r["label"], linewidth=1.4)
        _shade_visits(ax, board["stream"])
        ax.set_title(name, pad=16)
        ax.grid(True, alpha=0.25)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("environment steps per seed")
    figure.tight_layout()
    handles = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    _outside_legend(axes[0, -1], list(handles.values()), list(handles))
    return figure
