"""The board as a document (sections of text, tables and figures), written as Markdown (README.md) and as a static
HTML page (index.html) from the same blocks, so both always say the same. Every text that comes from an entry is
escaped for the format it goes into."""

from __future__ import annotations

import html as html_lib

from cyclic_bench.board.stats import AGGREGATES

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


def document(board: dict) -> list[tuple]:
    """The board's blocks: ("h1"|"h2"|"p", text), ("table", header, rows), ("img", path, alt), ("list", items)."""
    stream, rows, options = board["stream"], board["rows"], board["options"]
    seeds = sorted({r["seeds"] for r in rows})
    size = board["size"] or "custom"
    score, other = options["score"], "auc" if options["score"] == "final" else "final"
    held = "the normalised score (0 = random policy, 1 = the protocol's reference) "
    held += "at the last evaluation of the stream" if score == "final" else "over the whole stream (AUC: area under its curve / length)"
    blocks: list[tuple] = [
        ("h1", f"{board['protocol']} leaderboard, size {size}"),
        (
            "p",
            f"Stream {stream['name']}: {' → '.join(stream['tasks'])}, {stream['cycles']} cycle(s) of "
            f"{_steps(stream['steps_per_task'])} environment steps per task visit ({_steps(stream['total_steps'])} per seed); "
            f"every {_steps(stream['eval_every'])} steps each seed's policy plays {stream['eval_episodes']} episode(s) on every task"
            + (f", held-out tasks included ({', '.join(stream['held_out_tasks'])})" if stream["held_out_tasks"] else "")
            + f". {len(rows)} method(s), {' or '.join(map(str, seeds))} seeds each.",
        ),
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
            ["rank", "method", "learner", "seeds", *AGGREGATES, f"P(method > {board['baseline']})", f"{SCORE_NAMES[other]} IQM"],
            [
                [
                    str(r["rank"]),
                    r["label"],
                    r["learner"] or "—",
                    _seed_cell(r),
                    *(interval_text(r[score][m]) for m in AGGREGATES),
                    "baseline" if r["improvement"] is None else interval_text(r["improvement"]),
                    interval_text(r[other]["IQM"]),
                ]
                for r in rows
            ],
        ),
    ]
    notes = ["Optimality gap: how far below 1 the scores fall on average (lower is better)."]
    if any(r["few_seeds"] for r in rows):
        notes.insert(0, f"{FEW} fewer than {options['target_seeds']} seeds: intervals are wide and the ranking is not settled.")
    if any(r["failed_seeds"] for r in rows):
        notes.append("(n failed): seeds whose actions or parameters went non-finite; they score 0 from their failure on.")
    blocks.append(("p", " ".join(notes)))
    for name, alt in (
        ("aggregates", f"IQM, median, mean and optimality gap of the {SCORE_NAMES[score]}s with 95% intervals"),
        ("improvement", f"probability of improvement over {board['baseline']}"),
        ("profiles", f"performance profiles of the {SCORE_NAMES[score]}s"),
        ("aggregates_other", f"aggregates of the {SCORE_NAMES[other]}s"),
    ):
        if name in board.get("plots", {}):
            blocks.append(("img", board["plots"][name], alt))

    blocks += [
        ("h2", "Final score per task"),
        ("p", "Mean over seeds [95% interval]; AUC below is the area under the score curve over the whole stream divided by its length."),
        (
            "table",
            [
                "method",
                *(f"{t}{' (held out)' if t in stream['held_out_tasks'] else ''}" for t in stream["tasks"] + stream["held_out_tasks"]),
            ],
            [[r["label"], *(interval_text(r["per_task"][t]["final"]) for t in stream["tasks"] + stream["held_out_tasks"])] for r in rows]
            + [
                [f"{r['label']} (AUC)", *(interval_text(r["per_task"][t]["auc"]) for t in stream["tasks"] + stream["held_out_tasks"])]
                for r in rows
            ],
        ),
    ]
    if stream["held_out_tasks"]:
        blocks += [
            ("h2", "Held-out tasks"),
            (
                "p",
                f"Evaluated at every evaluation, never trained: {', '.join(stream['held_out_tasks'])}. "
                f"Aggregates of their {SCORE_NAMES[score]}s.",
            ),
            (
                "table",
                ["method", "seeds", *AGGREGATES],
                [[r["label"], _seed_cell(r), *(interval_text(r["held_out"][m]) for m in AGGREGATES)] for r in rows],
            ),
        ]

    names = [n for n in CONTINUAL if any(n in r["continual"] for r in rows)]
    blocks += [
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
    if "stream_iqm" in board.get("plots", {}):
        blocks.append(("img", board["plots"]["stream_iqm"], "IQM of the normalised score across the stream"))
    if "curves" in board.get("plots", {}):
        blocks.append(("img", board["plots"]["curves"], "mean score per task across the stream, task visits shaded"))

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

    for table, title, text in (
        (
            "online",
            "Online quantities",
            "Training-time quantities, each seed's mean over every evaluation window, then mean over seeds [95% interval].",
        ),
        (
            "diagnostics",
            "Plasticity diagnostics",
            "At the end of the stream (each seed's last recorded value), mean over seeds [95% interval].",
        ),
    ):
        names = sorted({n for r in rows for n in r[table]})
        if names:
            blocks += [
                ("h2", title),
                ("p", text),
                (
                    "table",
                    ["name", *(r["label"] for r in rows)],
                    [[n, *(_general(r[table][n]) if n in r[table] else "n/a" for r in rows)] for n in names],
                ),
            ]
            if table in board.get("plots", {}):
                blocks.append(("img", board["plots"][table], f"{title.lower()} across the stream"))

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
            "configurations and versions), scores.csv (per seed and task) and board.json (every aggregate).",
        ),
    ]
    return blocks


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
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; white-space: nowrap; }
th { background: #f2f2f2; }
tbody tr:nth-child(even) { background: #fafafa; }
figure { margin: 1.5em 0; }
img { max-width: 100%; height: auto; }
figcaption { font-size: 0.85em; color: #555; }
"""


def html(board: dict) -> str:
    e = html_lib.escape
    parts = []
    for block in document(board):
        kind = block[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{e(block[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{e(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
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
