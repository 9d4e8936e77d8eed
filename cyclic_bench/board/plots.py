"""The board's figures, PNG and SVG, drawn with rliable's plot functions where it has one (matplotlib, Agg backend).

    aggregates        IQM, median, mean and optimality gap of the ranked scores (final or AUC), with 95% intervals
    aggregates_other  the same for the other view (AUC or final)
    improvement       probability of improvement of every row over the baseline
    profiles          performance profiles (fraction of runs x tasks above each score)
    stream_iqm        IQM over runs x tasks at every evaluation across the whole stream (task visits shaded)
    curves            mean score per task across the stream, a 95% band per method (task visits shaded)
    diagnostics       plasticity diagnostics (density, dormant ratio, srank) across the stream
    online            training-time quantities per evaluation window (only when the runs recorded some)

Files are reproducible byte for byte: SVG ids use a fixed salt and no date is written.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no window, no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402
from rliable import plot_utils  # noqa: E402

from cyclic_bench.board.stats import AGGREGATES  # noqa: E402

SHADE = "0.93"
LABELS = {"final": "Final normalised score", "auc": "Normalised score, AUC over the stream"}
PAIR = ";"  # separates the two labels of a pair (labels never hold it)


def write_plots(board: dict, folder: Path) -> dict[str, str]:
    """Draw every figure the board has data for into `folder`; returns {name: relative PNG path}."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in list(folder.glob("*.png")) + list(folder.glob("*.svg")):
        old.unlink()
    rows = board["rows"]
    score = board["options"]["score"]
    other = "auc" if score == "final" else "final"
    colors = dict(zip([r["label"] for r in rows], sns.color_palette("colorblind", n_colors=len(rows)), strict=True))
    written = {}
    with plt.rc_context({"svg.hashsalt": "cyclic-bench", "svg.fonttype": "path"}):
        for name, draw in (
            ("aggregates", lambda: _aggregates(rows, colors, score, LABELS[score])),
            ("aggregates_other", lambda: _aggregates(rows, colors, other, LABELS[other])),
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


def _aggregates(rows: list[dict], colors: dict, view: str, xlabel: str):
    labels = [r["label"] for r in rows][::-1]  # rliable draws the first algorithm at the bottom: best on top
    points = {r["label"]: np.array([r[view][m][0] for m in AGGREGATES]) for r in rows}
    intervals = {r["label"]: np.array([[r[view][m][1] for m in AGGREGATES], [r[view][m][2] for m in AGGREGATES]]) for r in rows}
    figure, _ = plot_utils.plot_interval_estimates(
        points,
        intervals,
        metric_names=list(AGGREGATES),
        algorithms=labels,
        colors=colors,
        xlabel=xlabel,
        xlabel_y_coordinate=-0.3,
        max_ticks=3,
        subfigure_width=4.0,
    )
    figure.set_size_inches(4.0 * len(AGGREGATES), max(1.2, 0.45 * len(rows) + 0.6))
    return figure


def _improvement(board: dict, colors: dict):
    pairs = [r for r in board["rows"] if r["improvement"] is not None]
    if not pairs:
        return None
    points = {f"{r['label']}{PAIR}{board['baseline']}": r["improvement"][0] for r in pairs}
    intervals = {f"{r['label']}{PAIR}{board['baseline']}": np.array(r["improvement"][1:]) for r in pairs}
    figure, ax = plt.subplots(figsize=(4.5, 0.5 * len(pairs) + 1.0))
    plot_utils.plot_probability_of_improvement(
        points, intervals, pair_separator=PAIR, ax=ax, colors=[colors[r["label"]] for r in pairs], xticks=[0, 0.25, 0.5, 0.75, 1.0]
    )
    ax.set_xlim(0, 1)
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
    )
    ax.xaxis.set_major_locator(plt.MaxNLocator(6))
    ax.legend(loc="upper right", fontsize="medium")
    return figure


def _shade_visits(ax, stream: dict) -> None:
    """Shade every other task visit and name the task trained in each."""
    B, tasks = stream["steps_per_task"], stream["tasks"]
    for visit in range(len(tasks) * stream["cycles"]):
        if visit % 2 == 0:
            ax.axvspan(visit * B, (visit + 1) * B, color=SHADE, zorder=0, linewidth=0)
        ax.text(
            (visit + 0.5) * B,
            1.0,
            tasks[visit % len(tasks)],
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize="small",
        )
    ax.set_xlim(0, stream["total_steps"])


def _stream_iqm(board: dict, colors: dict):
    figure, ax = plt.subplots(figsize=(9, 4.5))
    rows = board["rows"]
    steps = {r["label"]: np.array(r["curves"]["steps"]) for r in rows}
    for r in rows:  # rows may differ in nothing but their values: one shared x axis per row is still drawn per row
        plot_utils.plot_sample_efficiency_curve(
            steps[r["label"]],
            {r["label"]: np.array(r["curves"]["iqm"][0])},
            {r["label"]: np.array(r["curves"]["iqm"][1])},
            algorithms=[r["label"]],
            colors=colors,
            ax=ax,
            xlabel="environment steps per seed",
            ylabel="IQM normalised score",
            labelsize="large",
            ticklabelsize="medium",
            marker=".",
        )
    _shade_visits(ax, board["stream"])
    ax.legend(loc="best", fontsize="medium")
    return figure


def _band_panels(board: dict, colors: dict, titles: list[str], curve_of, ylabel: str):
    columns = min(3, len(titles))
    lines = int(np.ceil(len(titles) / columns))
    figure, axes = plt.subplots(lines, columns, figsize=(5.2 * columns, 3.4 * lines), squeeze=False)
    for ax, title in zip(axes.flat, titles, strict=False):
        for r in board["rows"]:
            curve = curve_of(r, title)
            if curve is None:
                continue
            steps, (points, interval) = np.array(curve[0]), curve[1]
            points, interval = _nan(points), np.array([_nan(v) for v in interval])
            ax.plot(steps, points, color=colors[r["label"]], label=r["label"], linewidth=1.6)
            ax.fill_between(steps, interval[0], interval[1], color=colors[r["label"]], alpha=0.2, linewidth=0)
        _shade_visits(ax, board["stream"])
        ax.set_title(title, pad=14)
        ax.set_xlabel("environment steps per seed")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.25)
    for ax in list(axes.flat)[len(titles) :]:
        ax.set_visible(False)
    axes.flat[0].legend(loc="best", fontsize="small")
    figure.tight_layout()
    return figure


def _nan(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _curves(board: dict, colors: dict):
    stream = board["stream"]
    titles = stream["tasks"] + [f"{t} (held out)" for t in stream["held_out_tasks"]]
    names = stream["tasks"] + stream["held_out_tasks"]

    def curve_of(row, title):
        return row["curves"]["steps"], row["curves"]["tasks"][names[titles.index(title)]]

    return _band_panels(board, colors, titles, curve_of, "mean normalised score")


def _series(board: dict, colors: dict, table: str):
    names = sorted({n for r in board["rows"] for n in r["curves"][table] if n != "steps"})
    if not names:
        return None

    def curve_of(row, name):
        curves = row["curves"][table]
        return (curves["steps"], curves[name]) if name in curves else None

    return _band_panels(board, colors, names[:9], curve_of, "mean over seeds")
