"""The HTML report in a real browser: Debian's headless Chromium (installed by
./quickstart), with every host name unresolvable, so a page that needed the network would
show it. The page must render the matrix and the Plotly charts and log nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from reports_data import sample

from harness.report.html import render_html

# injected first into a copy of the page: collects script errors, console.error/warn and
# failed resource loads (which never reach the console log), and writes them into the DOM
PROBE = """<script>
window.__problems = [];
addEventListener("error", (e) => __problems.push("error: " + (e.message ||
  (e.target && (e.target.src || e.target.href)) || e.type)), true);
addEventListener("unhandledrejection", (e) => __problems.push("rejection: " + e.reason));
for (const level of ["error", "warn"]) {
  const orig = console[level];
  console[level] = (...a) => { __problems.push(level + ": " + a.join(" ")); orig(...a); };
}
addEventListener("load", () => setTimeout(() => {
  const pre = document.createElement("pre");
  pre.id = "probe-result";
  pre.textContent = "PROBLEMS:" + JSON.stringify(__problems);
  document.body.appendChild(pre);
}, 500));
</script>"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium is not installed: run ./quickstart setup (it installs Debian's chromium)")
    return path


def render_in_browser(page: Path) -> tuple[str, str]:
    argv = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
            "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", "--virtual-time-budget=8000",
            "--dump-dom", page.as_uri()]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout, p.stderr


def test_report_renders_with_matrix_and_charts_and_no_console_errors(tmp_path: Path):
    html = render_html(sample())
    page = tmp_path / "report.html"
    page.write_text(html.replace("<head>", "<head>" + PROBE, 1))
    dom, log = render_in_browser(page)
    problems = re.search(r"PROBLEMS:(.*)</pre>", dom)
    assert problems is not None, "the page never finished loading"
    assert problems.group(1) == "[]", problems.group(1)
    console = [ln for ln in log.splitlines() if ":CONSOLE" in ln]
    assert console == [], console
    # the matrix: one row per subject, one clickable cell per kernel
    assert dom.count('<td class="subject" title=') == 2
    assert len(re.findall(r'<button type="button" data-cell=', dom)) == 8
    # each chart was drawn by plotly.js: its container holds the SVG plotly makes
    for chart in ("chart-insns", "chart-status", "chart-time"):
        m = re.search(rf'<div id="{chart}"[^>]*class="[^"]*js-plotly-plot', dom)
        assert m is not None, f"{chart} was not drawn"
    assert dom.count('class="main-svg"') >= 3
    # legend traces carry the program names
    assert "observability/loop" in dom.split('id="chart-insns"', 1)[1]


def test_a_page_with_a_script_error_is_caught(tmp_path: Path):
    """The probe itself can fail: a broken script is reported."""
    page = tmp_path / "broken.html"
    page.write_text("<html><head>" + PROBE + "</head><body><script>null.x;</script>"
                    '<img src="https://example.invalid/x.png"></body></html>')
    dom, _ = render_in_browser(page)
    problems = re.search(r"PROBLEMS:(.*)</pre>", dom)
    assert problems is not None
    assert "Cannot read properties of null" in problems.group(1)
    assert "example.invalid" in problems.group(1)


INTERACT = """<script>
addEventListener("load", () => setTimeout(() => {
  const out = {};
  const sel = document.getElementById("f-domain");
  sel.value = "security";
  sel.dispatchEvent(new Event("change", {bubbles: true}));
  out.rowsSecurity = [...document.querySelectorAll("#matrix tbody tr")]
    .filter((tr) => !tr.classList.contains("hidden")).length;
  sel.value = "";
  document.getElementById("f-unexpected").checked = true;
  document.getElementById("f-unexpected").dispatchEvent(new Event("change", {bubbles: true}));
  out.rowsUnexpected = [...document.querySelectorAll("#matrix tbody tr")]
    .filter((tr) => !tr.classList.contains("hidden")).length;
  document.querySelector("button[data-cell]").click();
  const dlg = document.getElementById("cell-dialog");
  out.dialogOpen = dlg.open;
  out.dialogText = dlg.textContent.replace(/\\s+/g, " ").slice(0, 400);
  const pre = document.createElement("pre");
  pre.id = "interact-result";
  pre.textContent = "INTERACT:" + JSON.stringify(out);
  document.body.appendChild(pre);
}, 300));
</script>"""


def test_filters_and_the_cell_detail_work(tmp_path: Path):
    import json

    page = tmp_path / "report.html"
    page.write_text(render_html(sample()).replace("</body>", INTERACT + "</body>", 1))
    dom, _ = render_in_browser(page)
    m = re.search(r"INTERACT:(.*?)</pre>", dom)
    assert m is not None, "the interaction script did not run"
    out = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert out["rowsSecurity"] == 1  # one security subject of two
    assert out["rowsUnexpected"] == 2  # each subject has one cell not as expected
    assert out["dialogOpen"] is True
    assert "observability/loop @ 5.10: skip" in out["dialogText"]
    assert "needs bpf_loop" in out["dialogText"]
