"""The static page opened in a real headless Chromium: its tables lay out within the page, and every figure loads."""

import html
import json
import os
import re
import shutil
import subprocess

import pytest
from board_synthetic import varied

from cyclic_bench.board.build import BoardOptions, build_board

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.setAttribute("data-probe", JSON.stringify({
    images: images.length,
    loaded: images.filter((image) => image.complete && image.naturalWidth > 0).length,
    tables: document.querySelectorAll("table").length,
    rows: document.querySelectorAll("table tbody tr").length,
    table_height: document.querySelector("table").getBoundingClientRect().height,
    page_overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth,
    table_overflow: Math.max(...[...document.querySelectorAll("div.table")].map((d) => d.scrollWidth - d.clientWidth)),
    wider_than_body: [...document.querySelectorAll("table, img")].filter(
      (e) => e.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1).length,
  }));
});
</script>
"""


@pytest.mark.parametrize("methods", [2, 11])
def test_the_html_board_renders_in_headless_chromium(make_run, tmp_path, methods):
    if CHROMIUM is None:
        assert not os.environ.get("CI"), "CI must install chromium (apt-get install -y chromium): this test may not be skipped there"
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    names = ["td3", "reset_switch", "reset", "redo", "cbp", "nap", "layer_norm", "ne", "shrink_perturb", "plasticity_injection"]
    names = (names + ["neuromodulated_td3"])[:methods]
    runs = [make_run(name, varied(0.01 * i), method=name, seeds=2) for i, name in enumerate(names)]
    _, board = build_board(runs, tmp_path / "board", BoardOptions(reps=50))
    page = (board / "index.html").read_text()
    probe = board / "probe.html"  # the page as built, plus a script that reports what the browser laid out
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--window-size=1280,1000",
        "--dump-dom",
        probe.as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', result.stdout)
    assert found, f"no probe result; chromium said: {result.stderr[-2000:]}"
    report = json.loads(html.unescape(found.group(1)))
    figures = len(re.findall(r"<img ", page))
    assert report["images"] == figures >= 6 and report["loaded"] == figures, report
    assert report["tables"] >= 4 and report["rows"] >= 10 and report["table_height"] > 0, report
    assert report["page_overflow"] <= 0 and report["table_overflow"] <= 0 and report["wider_than_body"] == 0, report
