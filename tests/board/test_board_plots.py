"""The board's figures: a colour of its own for every row and the same colour for a method on every board, score
axes from 0 to 1 at least and shared across panels, legends beside the data, the x label close to its axis."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from board_synthetic import varied

from cyclic_bench.board import plots
from cyclic_bench.board.build import BoardOptions, collect_entries, compute_board
from cyclic_bench.registry import get_method, method_names

OPTIONS = BoardOptions(reps=20)


def rows_of(*labels: str) -> list[dict]:
    return [{"label": label, "method": label.split("-")[0]} for label in labels]


def test_every_row_has_a_colour_of_its_own_and_a_method_keeps_its_colour_across_boards():
    smoke = rows_of(*plots.CONTINUOUS[:11])
    colors = plots.row_colors(smoke)
    assert len(set(colors.values())) == 11
    small = plots.row_colors(rows_of("td3", "ne", "hebbian"))
    assert all(small[label] == colors[label] for label in ("td3", "ne"))
    bandit = plots.row_colors(rows_of(*plots.BANDIT))
    assert len(set(bandit.values())) == len(plots.BANDIT)
    assert plots.row_colors(rows_of("ucb", "thompson"))["ucb"] == bandit["ucb"]
    variants = plots.row_colors(rows_of("td3", "td3-lr=0.0001", "my_method"))  # a variant and an unknown method: free colours
    assert variants["td3"] == colors["td3"] and len(set(variants.values())) == 3
    many = plots.row_colors([{"label": f"m{i:02d}", "method": "plug_in"} for i in range(40)])  # more rows than the palette
    assert len(set(many.values())) == 40
    assert len({matplotlib.colors.to_rgb(c) for c in plots.PALETTE}) == len(plots.PALETTE) == 24
    suite = {name for name in method_names() if get_method(name)[0].__module__.startswith("cyclic_bench.methods.")}
    assert set(plots.CONTINUOUS) | set(plots.BANDIT) == suite  # a slot for every suite method, none for a method that does not exist


def test_no_two_palette_colours_are_near_each_other():
    rgb = np.array([matplotlib.colors.to_rgb(c) for c in plots.PALETTE])
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + np.eye(len(rgb)) * 9
    assert distances.min() > 0.2, distances.min()


@pytest.fixture(params=[2, 5], ids=["2 rows", "5 rows (faceted)"])
def board(request, make_run):
    methods = ["td3", "reset_switch", "redo", "cbp", "nap"][: request.param]
    runs = [make_run(m, varied(0.05 * i), method=m, seeds=2) for i, m in enumerate(methods)]
    return compute_board(collect_entries(runs), OPTIONS)


def overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("name", ["aggregates", "profiles", "stream_iqm", "curves", "diagnostics", "online"])
def test_legends_sit_beside_the_data_and_score_axes_span_0_to_1(board, name):
    colors = plots.row_colors(board["rows"])
    draw = {
        "aggregates": lambda: plots._aggregates(board, colors, "final"),
        "profiles": lambda: plots._profiles(board, colors),
        "stream_iqm": lambda: plots._stream_iqm(board, colors),
        "curves": lambda: plots._curves(board, colors),
        "diagnostics": lambda: plots._series(board, colors, "diagnostics"),
        "online": lambda: plots._series(board, colors, "online"),
    }[name]
    figure = draw()
    figure.canvas.draw()
    axes = [ax for ax in figure.axes if ax.get_visible()]
    for legend in [ax.get_legend() for ax in axes if ax.get_legend()]:
        for ax in axes:
            assert not overlaps(legend.get_window_extent(), ax.get_window_extent()), (name, ax.get_title())
    if name in ("stream_iqm", "curves"):
        assert len({ax.get_ylim() for ax in axes}) == 1 and axes[0].get_ylim()[0] <= 0 and axes[0].get_ylim()[1] >= 1
    if name == "aggregates":
        assert len({ax.get_xlim() for ax in axes}) == 1 and axes[0].get_xlim()[0] <= 0 and axes[0].get_xlim()[1] >= 1
        assert all(len(ax.get_xticks()) >= 5 for ax in axes)
        ticks_bottom = min(ax.get_tightbbox().y0 for ax in axes)
        label = figure._supxlabel.get_window_extent()
        assert 0 <= ticks_bottom - label.y1 <= 0.15 * figure.dpi  # the x label right under the ticks, no blank band
    plt.close(figure)
