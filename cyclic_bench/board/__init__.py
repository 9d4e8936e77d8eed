"""Leaderboards: 30-seed rliable statistics, continual-learning metrics, plots, a static page, submission and reproduction.

entry.py      the submission format (plain JSON), built from run directories, validated as untrusted input
scores.py     a row's score matrix and its continual-learning metrics
stats.py      rliable aggregates, probability of improvement, performance profiles, intervals
build.py      `cyclic-bench board build`: entries and runs -> leaderboards/<protocol>/<size>/
plots.py      the figures (PNG and SVG)
render.py     README.md and index.html from the same blocks
reproduce.py  `cyclic-bench board reproduce`: re-run seeds of an entry and compare
"""
