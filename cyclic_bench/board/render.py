"""The board as a document (sections of text, tables and figures), written as Markdown (README.md) and as a static
HTML page (index.html) from the same blocks, so both always say the same. Every text that comes from an entry is
escaped for the format it goes into."""

from __future__ import annotations

import html as html_lib
import re

from cyclic_bench.board.stats import AGGREGATES

COLUMNS_PER_TABLE = 4  # value columns per table of diagnostics or online quantities (more do not fit a page's width)
PLASTICITY_NAMES = ("dormant_ratio", "srank", "effective_rank", "active_units")  # diagnostics the suite computes for every network

FEW = "†"  # marks rows with fewer seeds than the board's target
SCORE_NAMES = {"final": "final score", "auc": "AUC"}
CONTINUAL = {
    "final performance": "mean over tasks of the final score",
    "forgetting": "score at the end of a task's last visit minus its final score, mean over tasks (lower is better)",
    "forward transfer": "(AUC over a task's first visit - single-task reference AUC) / (1 - reference AUC), mean over tasks",
    "cycle gain": "score at the end of a task's visit in the last cycle minus in the first, mean over tasks",
}


def interval_text(triple, digits: int = 3) -> str:
    point, low, high = triple
    if point is None:
        return "n/a"
    if low is None or high is None:
        return f"{point:.{digits}f}"
    return f"{point:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _general(triple) -> str:
    point, low, high = triple
    if point is None:
        return "n/a"
    return f"{point:.4g} [{low:.4g}, {high:.4g}]" if low is not None else f"{point:.4g}"


def _steps(n: int) -> str:
    return f"{n:,}"


def shown_aggregates(n_tasks: int) -> list[str]:
    """The aggregates worth a column for a matrix of `n_tasks` tasks: rliable's median is the median over tasks of the
    mean over runs, which equals the mean with fewer than 3 tasks."""
    return [name for name in AGGREGATES if not (name == "Median" and n_tasks < 3)]


def median_note(n_tasks: int, what: str) -> str:
    if n_tasks >= 3:
        return ""
    return f"Median not shown: rliable's median of {what} (over tasks, of the mean over seeds) equals the mean with {n_tasks} task(s)."


def short_revision(revision: str) -> str:
    """A git commit shortened to 8 digits, keeping '+dirty'."""
    commit, plus, rest = revision.partition("+")
    return commit[:8] + plus + rest if len(commit) == 40 else revision


def _stream_text(board: dict) -> str:
    stream, rows = board["stream"], board["rows"]
    seeds = sorted({r["seeds"] for r in rows})
    tasks = " → ".join(stream["tasks"])
    if stream["eval_episodes"] == 0:  # scored on its training windows (bandits): no evaluation episodes, one visit
        budget = f"{_steps(stream['total_steps'])} steps per seed, scored on every {_steps(stream['eval_every'])}-step training window"
        visits = f"{stream['cycles']} cycles, " if stream["cycles"] > 1 else ""
        text = f"Stream {stream['name']}: {tasks}, {visits}{budget} (no separate evaluation episodes)"
    else:
        text = (
            f"Stream {stream['name']}: {tasks}, {stream['cycles']} cycle(s) of {_steps(stream['steps_per_task'])} environment steps per "
            f"task visit ({_steps(stream['total_steps'])} per seed); every {_steps(stream['eval_every'])} steps each seed's policy "
            f"plays {stream['eval_episodes']} episode(s) on every task"
            + (f", held-out tasks included ({', '.join(stream['held_out_tasks'])})" if stream["held_out_tasks"] else "")
        )
    return text + f". {len(rows)} method(s), {' or '.join(map(str, seeds))} seeds each."


def _score_meaning(board: dict) -> str:
    """What 0 and 1 of the board's scores are."""
    ends = list(board["normalization"].values())
    if all("random_return" not in e for e in ends):  # window scores: the protocol says what its ends are
        zero, one = sorted({e["random_source"] for e in ends}), sorted({e["reference_source"] for e in ends})
        return f"the window score (0 = {'; '.join(zero)}, 1 = {'; '.join(one)})"
    return "the normalised score (0 = a random policy's return, 1 = the reference return, at the episode length played: see Normalisation)"


def _warnings(board: dict) -> list[tuple]:
    """Notes a reader must see before the numbers: a budget that cannot rank, rows run by different code."""
    blocks = []
    if board["plumbing"]:
        blocks.append(("warn", f"Not a result: size {board['size']} is {board['plumbing']}."))
    revisions = board["code_revisions"]
    if len(revisions) > 1:
        blocks.append(
            (
                "warn",
                f"Mixed code: the rows were run at {len(revisions)} code revisions ({', '.join(map(short_revision, revisions))}; "
                "each row's is in the ranking), so differences between rows may come from code changes, not only from the methods.",
            )
        )
    if any(r.endswith("+dirty") for r in revisions):
        blocks.append(("warn", "Uncommitted code: revisions marked +dirty ran from a modified working tree, which no commit reproduces."))
    return blocks


def document(board: dict) -> list[tuple]:
    """The board's blocks: ("h1"|"h2"|"p"|"warn", text), ("table", header, rows), ("img", path, alt), ("list", items)."""
    from cyclic_bench.board.build import BoardOptions, changed_options

    stream, rows, options = board["stream"], board["rows"], board["options"]
    size = board["size"] or "custom"
    T, H = len(stream["tasks"]), len(stream["held_out_tasks"])
    score, other = options["score"], "auc" if options["score"] == "final" else "final"
    aggregates = shown_aggregates(T)
    by_learner = "learner" in rows[0]  # a board comparing learners names each row's learner in a column
    held = _score_meaning(board) + " "
    held += "at the last evaluation of the stream" if score == "final" else "over the whole stream (AUC: area under its curve / length)"
    blocks: list[tuple] = [
        ("h1", f"{board['protocol']} leaderboard, size {size}"),
        *_warnings(board),
        ("p", _stream_text(board)),
        (
            "p",
            f"Score matrix of a method: one row per seed, one column per trained task, holding {held}"
            + (f" (mean of the last {options['last']} evaluations)" if options["last"] > 1 and score == "final" else "")
            + ". Aggregates over that matrix with rliable; intervals are 95% stratified-bootstrap intervals "
            f"({options['reps']} resamples, numpy seed {options['seed']}). Ranked by IQM.",
        ),
        ("h2", "Ranking"),
        (
            "table",
            ["rank", "method", *(["learner"] if by_learner else []), "seeds", *aggregates, f"P(method > {board['baseline']})"]
            + [f"{SCORE_NAMES[other]} IQM", "code"],
            [
                [
                    str(r["rank"]),
                    r["label"],
                    *([r["learner"] or "—"] if by_learner else []),
                    _seed_cell(r),
                    *(interval_text(r[score][m]) for m in aggregates),
                    "baseline" if r["improvement"] is None else interval_text(r["improvement"]),
                    interval_text(r[other]["IQM"]),
                    ", ".join(map(short_revision, r["code_revisions"])),
                ]
                for r in rows
            ],
        ),
    ]
    notes = ["Optimality gap: how far below 1 the scores fall on average (lower is better).", median_note(T, "the score matrix")]
    if any(r["few_seeds"] for r in rows):
        notes.insert(0, f"{FEW} fewer than {options['target_seeds']} seeds: intervals are wide and the ranking is not settled.")
    if any(r["failed_seeds"] for r in rows):
        notes.append("(n failed): seeds whose actions or parameters went non-finite; they score 0 from their failure on.")
    blocks.append(("p", " ".join(n for n in notes if n)))
    span = "Score axes span at least 0 (random) to 1 (reference), so gaps look as large as they are."
    for name, alt in (
        ("aggregates", f"{', '.join(aggregates)} of the {SCORE_NAMES[score]}s with 95% intervals. {span}"),
        ("improvement", f"probability of improvement over {board['baseline']} with 95% intervals"),
        ("profiles", f"performance profiles of the {SCORE_NAMES[score]}s: fraction of runs x tasks above each score. {span}"),
        ("aggregates_other", f"{', '.join(aggregates)} of the {SCORE_NAMES[other]}s. {span}"),
    ):
        if name in board.get("plots", {}):
            blocks.append(("img", board["plots"][name], alt))

    all_tasks = stream["tasks"] + stream["held_out_tasks"]
    blocks += [
        ("h2", "Final score per task"),
        ("p", "Mean over seeds [95% interval]; AUC below is the area under the score curve over the whole stream divided by its length."),
        (
            "table",
            ["method", *(f"{t}{' (held out)' if t in stream['held_out_tasks'] else ''}" for t in all_tasks)],
            [[r["label"], *(interval_text(r["per_task"][t]["final"]) for t in all_tasks)] for r in rows]
            + [[f"{r['label']} (AUC)", *(interval_text(r["per_task"][t]["auc"]) for t in all_tasks)] for r in rows],
        ),
    ]
    if stream["held_out_tasks"]:
        held_aggregates = shown_aggregates(H)
        blocks += [
            ("h2", "Held-out tasks"),
            (
                "p",
                f"Evaluated at every evaluation, never trained: {', '.join(stream['held_out_tasks'])}. "
                f"Aggregates of their {SCORE_NAMES[score]}s. " + median_note(H, "the held-out tasks"),
            ),
            (
                "table",
                ["method", "seeds", *held_aggregates],
                [[r["label"], _seed_cell(r), *(interval_text(r["held_out"][m]) for m in held_aggregates)] for r in rows],
            ),
        ]

    blocks += _continual_blocks(board)
    if "stream_iqm" in board.get("plots", {}):
        blocks.append(("img", board["plots"]["stream_iqm"], f"IQM of the normalised score across the stream, 95% band. {span}"))
    if "curves" in board.get("plots", {}):
        blocks.append(("img", board["plots"]["curves"], f"mean score per task across the stream, 95% band, task visits shaded. {span}"))

    events = [(r["label"], e) for r in rows for e in r["recovery"]]
    if events:
        blocks += [
            ("h2", "Recovery after perturbation events"),
            (
                "p",
                f"Steps from the event until the trained task's score is back within {options['tolerance']:.0%} of its value at the "
                "last evaluation before the event, measured at evaluation steps; median over seeds (never recovered counts as infinite).",
            ),
            (
                "table",
                ["method", "step", "event", "task", "recovered seeds", "median steps"],
                [
                    [
                        label,
                        _steps(e["step"]),
                        f"{e['kind']} {e['detail']}".strip(),
                        e["task"],
                        f"{e['recovered']}/{len(e['steps'])}",
                        _median(e),
                    ]
                    for label, e in events
                ],
            ),
        ]

    blocks += _series_blocks(board, "online")
    blocks += _series_blocks(board, "diagnostics")
    blocks += _normalization_blocks(board)
    settings = " ".join(changed_options(BoardOptions(**options)))
    blocks += [
        ("h2", "Runs"),
        (
            "table",
            ["method", "seed ids", "failed", "code revision(s)"],
            [[r["label"], _seed_ranges(r["seed_ids"]), str(len(r["failed_seeds"])), ", ".join(r["code_revisions"])] for r in rows],
        ),
        (
            "p",
            "Every number here is re-derived from the files beside this page: entries/ (the submitted per-seed, per-evaluation scores, "
            "configurations and versions), scores.csv (per seed and task) and board.json (every aggregate, and the settings of this "
            "build). `cyclic-bench board build <this folder>` rebuilds the folder byte for byte with those settings"
            + (f" ({settings})" if settings else "")
            + ".",
        ),
    ]
    return blocks


def _continual_blocks(board: dict) -> list[tuple]:
    stream, rows = board["stream"], board["rows"]
    if len(stream["tasks"]) == 1 and stream["cycles"] == 1:
        return [
            ("h2", "Continual-learning metrics"),
            ("p", "One task visited once: there is no forgetting, transfer or cycle-over-cycle gain to measure."),
        ]
    names = [n for n in CONTINUAL if any(n in r["continual"] for r in rows)]
    if len(stream["tasks"]) == 1:
        names.remove("forgetting")  # the only task is also the last one trained: 0 by construction
    blocks = [
        ("h2", "Continual-learning metrics"),
        ("p", "Per seed, then mean over seeds [95% interval], Continual World conventions adapted to cycles:"),
        ("list", [f"{n}: {CONTINUAL[n]}" for n in names]),
        (
            "table",
            ["method", *names],
            [[r["label"], *(interval_text(r["continual"].get(n, (None, None, None))) for n in names)] for r in rows],
        ),
    ]
    if "forward transfer" not in names:
        blocks.append(("p", "Forward transfer needs single-task reference runs of each method; none were given."))
    return blocks


def _series_blocks(board: dict, table: str) -> list[tuple]:
    rows = board["rows"]
    names = sorted({n for r in rows for n in r[table]})
    if not names:
        return []
    if table == "online":
        title = "Online quantities"
        text = "Training-time quantities, each seed's mean over every evaluation window, then mean over seeds [95% interval]."
    else:
        networks = any(any(p in n for p in PLASTICITY_NAMES) for n in names)
        title = "Method diagnostics"
        plasticity = " (for neural networks also the plasticity diagnostics: dormant ratio, srank, effective rank, weight norms, ...)"
        text = (
            f"What each method reports about itself{plasticity if networks else ''}, at the end of the stream (each seed's last "
            "recorded value), mean over seeds [95% interval]; n/a: the method has no such quantity."
        )
    blocks = [("h2", title), ("p", text)]
    # the longer of methods and quantities runs down the table; a page-wide table holds a few columns, more follow below
    for start in range(0, min(len(rows), len(names)), COLUMNS_PER_TABLE):
        if len(names) >= len(rows):
            group = rows[start : start + COLUMNS_PER_TABLE]
            cells = [[n, *(_general(r[table].get(n, (None,) * 3)) for r in group)] for n in names]
            blocks.append(("table", ["name", *(r["label"] for r in group)], cells))
        else:
            group = names[start : start + COLUMNS_PER_TABLE]
            cells = [[r["label"], *(_general(r[table].get(n, (None,) * 3)) for n in group)] for r in rows]
            blocks.append(("table", ["method", *group], cells))
    if table in board.get("plots", {}):
        blocks.append(("img", board["plots"][table], f"{title.lower()} across the stream, mean over seeds"))
    return blocks


def _normalization_blocks(board: dict) -> list[tuple]:
    ends = board["normalization"]
    if all("random_return" not in e for e in ends.values()):
        return [
            ("h2", "Normalisation"),
            (
                "table",
                ["task", "score 0", "score 1"],
                [[task, e["random_source"], e["reference_source"]] for task, e in ends.items()],
            ),
        ]
    return [
        ("h2", "Normalisation"),
        ("p", "score = (return - random) / (reference - random), per task, with both returns at the episode length the stream plays:"),
        (
            "table",
            ["task", "random return (score 0)", "reference return (score 1)", "how the random return was obtained", "reference"],
            [
                [task, f"{e['random_return']:.4g}", f"{e['reference_return']:.4g}", e["random_source"], e["reference_source"]]
                for task, e in ends.items()
            ],
        ),
    ]


def _seed_cell(row: dict) -> str:
    text = f"{row['seeds']}{FEW if row['few_seeds'] else ''}"
    return text + (f" ({len(row['failed_seeds'])} failed)" if row["failed_seeds"] else "")


def _median(event: dict) -> str:
    return "not recovered" if event["median_steps"] is None else _steps(int(event["median_steps"]))


def _seed_ranges(ids: list[int]) -> str:
    parts, start = [], None
    for i, seed in enumerate(ids):
        if start is None:
            start = seed
        if i + 1 == len(ids) or ids[i + 1] != seed + 1:
            parts.append(str(start) if start == seed else f"{start}-{seed}")
            start = None
    return ", ".join(parts)


# ---- Markdown -----------------------------------------------------------------------------------------------
def _md(text: str) -> str:
    """Text safe inside Markdown paragraphs and table cells: no HTML, no table breaks, no emphasis or code spans."""
    text = str(text).replace("\n", " ").replace("\\", "\\\\")
    for char, escaped in (("|", "\\|"), ("`", "\\`"), ("*", "\\*"), ("<", "&lt;"), (">", "&gt;"), ("](", "]\\(")):
        text = text.replace(char, escaped)
    return "\\" + text if text.startswith(("#", "-", "+")) else text


def markdown(board: dict) -> str:
    out = []
    for block in document(board):
        kind = block[0]
        if kind in ("h1", "h2"):
            out.append(f"{'#' if kind == 'h1' else '##'} {_md(block[1])}")
        elif kind == "p":
            out.append(_md(block[1]))
        elif kind == "warn":
            out.append(f"> **{_md(block[1])}**")
        elif kind == "list":
            out.append("\n".join(f"- {_md(item)}" for item in block[1]))
        elif kind == "table":
            header, rows = block[1], block[2]
            lines = ["| " + " | ".join(map(_md, header)) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(map(_md, row)) + " |" for row in rows]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{_md(block[2])}]({block[1]}) ([SVG]({block[1][:-4]}.svg))")
    return "\n\n".join(out) + "\n"


# ---- HTML ---------------------------------------------------------------------------------------------------
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
div.table { max-width: 100%; overflow-x: auto; margin: 1em 0; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td span.ci { white-space: nowrap; color: #555; }
tbody tr:nth-child(even) { background: #fafafa; }
p.warn { border-left: 4px solid #c0392b; background: #fdf0ee; padding: 0.6em 0.9em; font-weight: 600; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
"""
INTERVAL = re.compile(r"^(\S+) (\[\S+, \S+\])$")  # "point [low, high]": the interval may wrap below the point


def _html_cell(text: str) -> str:
    found = INTERVAL.match(text)
    if not found:
        return html_lib.escape(text)
    return f'{html_lib.escape(found.group(1))} <span class="ci">{html_lib.escape(found.group(2))}</span>'


def html(board: dict) -> str:
    e = html_lib.escape
    parts = []
    for block in document(board):
        kind = block[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{e(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "warn":
            parts.append(f'<p class="warn">{e(block[1])}</p>')
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>" for row in block[2])
            parts.append(f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
        elif kind == "img":
            path = e(block[1])
            parts.append(
                f'<figure><img src="{path}" alt="{e(block[2])}"><figcaption>{e(block[2])} '
                f'(<a href="{path[:-4]}.svg">SVG</a>)</figcaption></figure>'
            )
    title = e(f"{board['protocol']} leaderboard, size {board['size'] or 'custom'}")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n'
        "<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n"
    )
