"""The toy explorer (notebooks/toy_explorer.py and .js): the same numbers as `lifcore.toy.run` in the kernel, in
JavaScript, and on the published page in a real browser with no network.

The browser test builds a one-page Jupyter Book of the toy chapter (quick parameters) the way `make book`
does, opens it in headless Chromium (Debian's `chromium`, driven by Playwright, no browser download) with every
request outside the loopback refused, moves the controls and reads the end point the page prints.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lifcore import toy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "notebooks"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# (method, x1, x2, lr, fr_lr, multiplier_lr, iterations): each method, starts inside and outside the basin
SETTINGS = [("alternating", 2.0, 1.0, 0.01, 0.2, 0.2, 3000),
            ("alternating", 5.5, -3.5, 0.01, 0.2, 0.2, 3000),   # outside the basin: it stalls on the flat bump
            ("disjoint", -3.5, 5.0, 0.02, 0.1, 0.2, 2000),
            ("lagrange", 0.5, 4.0, 0.01, 0.2, 0.05, 5000),
            ("penalty", 4.0, -2.0, 0.05, 0.2, 0.2, 1000)]


def expected(method, x1, x2, lr, fr_lr, multiplier_lr, iterations, rho=0.0, rate_weight=1.0):
    end = toy.run(method, [x1, x2], iterations, lr, fr_lr, multiplier_lr=multiplier_lr, rho=rho, rate_weight=rate_weight,
                  last_only=True)[-1]
    return float(end[0]), float(end[1])


def test_the_kernel_side_follows_the_controls_with_lifcore_toy():
    from toy_explorer import ToyExplorer
    import traitlets

    explorer = ToyExplorer()
    assert (explorer.end_x1, explorer.end_x2) == expected("alternating", 2.0, 1.0, 0.01, 0.2, 0.2, 3000)
    before = explorer.end_x1
    for method, x1, x2, lr, fr_lr, multiplier_lr, iterations in SETTINGS:
        explorer.method, explorer.x1, explorer.x2 = method, x1, x2
        explorer.lr, explorer.fr_lr, explorer.multiplier_lr, explorer.iterations = lr, fr_lr, multiplier_lr, iterations
        assert (explorer.end_x1, explorer.end_x2) == expected(method, x1, x2, lr, fr_lr, multiplier_lr, iterations)
        optimum = toy.CONSTRAINED_OPTIMUM
        assert explorer.distance == pytest.approx(math.hypot(explorer.end_x1 - optimum[0], explorer.end_x2 - optimum[1]))
    assert explorer.end_x1 != before
    with pytest.raises(traitlets.TraitError, match="method='adam' is unknown"):
        explorer.method = "adam"
    with pytest.raises(traitlets.TraitError, match="lr=0.5 is outside"):
        explorer.lr = 0.5


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_javascript_iteration_is_lifcore_toy_run(tmp_path):
    script = tmp_path / "check.mjs"
    script.write_text(f"""
import {{ run, stationaryPoint }} from {json.dumps((ROOT / 'notebooks' / 'toy_explorer.js').as_uri())};
const settings = {json.dumps(SETTINGS)};
const ends = settings.map(([m, x1, x2, lr, fr, mlr, n]) => run(m, x1, x2, n, lr, fr, mlr, 0.0, 1.0, 1).at(-1));
console.log(JSON.stringify({{ends, fixed: stationaryPoint(0.01, 0.2)}}));
""")
    out = json.loads(subprocess.run(["node", str(script)], capture_output=True, text=True, check=True).stdout)
    for setting, end in zip(SETTINGS, out["ends"]):
        assert end == pytest.approx(expected(*setting), abs=1e-9, rel=0)
    point = toy.alternating_stationary_point(0.01, 0.2)
    assert out["fixed"] == pytest.approx([point.x1, point.x2], abs=1e-12)


def one_page_book(tmp_path: Path) -> Path:
    """The toy chapter executed with quick parameters and published by Jupyter Book 1 with the book's own
    configuration and vendored scripts (book/build.py): the page's path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", ROOT / "book" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    src = tmp_path / "src"
    (src / "notebooks").mkdir(parents=True)
    quick = dict(grid=10)  # the defaults otherwise (a coarser grid)
    build.execute(ROOT / "notebooks" / "toy_gaussian.ipynb", src / "notebooks" / "toy_gaussian.ipynb", quick, timeout=600)
    (src / "_toc.yml").write_text("format: jb-book\nroot: notebooks/toy_gaussian\n")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    settings = build.vendor.vendor(src, ROOT / "_build" / "vendor-cache")  # npm's tarballs, shared with `make book`
    if "nb_ipywidgets_js" not in settings:
        pytest.skip("npm is not available: the widget runtime cannot be vendored")
    config["sphinx"]["config"].update(settings)
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    subprocess.run([str(jupyter_book), "build", str(src), "--path-output", str(tmp_path / "book"), "--builder", "html"],
                   check=True, capture_output=True)
    return tmp_path / "book" / "_build" / "html" / "notebooks" / "toy_gaussian.html"


# what Jupyter Book 1's own theme logs (pydata-sphinx-theme on every page; sphinx-thebe's inline script, which
# the theme writes twice on a page with widgets): not the explorer's doing
THEME_ERRORS = ("Got invalid theme mode", "Identifier 'THEBE_JS_URL' has already been declared")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_published_page_runs_the_explorer_offline(tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (make test installs it)")
    page_path = one_page_book(tmp_path)
    html = page_path.read_text()
    remote = re.findall(r'<(?:script|link)[^>]*(?:src|href)="(https?://[^"]+)"', html)
    assert remote == [], f"the page loads from other hosts: {remote}"
    refused, errors = [], []

    def route(r):
        url = r.request.url
        local = url.startswith(("file://", "data:", "blob:")) or "//127.0.0.1" in url or "//localhost" in url
        if local:
            r.continue_()
        else:
            refused.append(url)
            r.abort()

    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 2000})
        page.route("**/*", route)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}") if r.url not in refused else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        end = page.locator("output.toy-end")
        end.wait_for(timeout=30_000)
        page.locator(".toy-explorer").scroll_into_view_if_needed()
        shots = Path(os.environ.get("LIFCORE_SCREENSHOTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shots / "toy-explorer-before.png"), full_page=False)

        def read():
            return float(end.get_attribute("data-x1")), float(end.get_attribute("data-x2"))

        first = read()
        assert first == pytest.approx(expected("alternating", 2.0, 1.0, 0.01, 0.2, 0.2, 3000), abs=1e-9, rel=0)
        drawn = page.locator(".toy-explorer canvas").screenshot()
        for method, x1, x2, lr, fr_lr, multiplier_lr, iterations in SETTINGS[1:]:
            page.select_option(".toy-method", method)
            for name, value in (("x1", x1), ("x2", x2), ("lr", lr), ("fr-lr", fr_lr), ("multiplier-lr", multiplier_lr),
                                ("iterations", iterations)):
                page.locator(f".toy-{name}").fill(str(value))
            rho = 1.0 if method == "lagrange" else 0.0  # the chapter's explorer carries the chapter's rho
            assert read() == pytest.approx(expected(method, x1, x2, lr, fr_lr, multiplier_lr, iterations, rho=rho),
                                           abs=1e-9, rel=0), method
        assert page.locator(".toy-explorer canvas").screenshot() != drawn, "moving the controls did not redraw"
        page.locator(".toy-explorer canvas").click(position={"x": 30, "y": 30})  # a click starts the run there
        assert float(page.locator(".toy-x1").input_value()) < -3
        page.screenshot(path=str(shots / "toy-explorer-after.png"), full_page=False)
        browser.close()
    assert refused == [], f"the page asked other hosts: {refused[:5]}"
    assert [e for e in errors if not e.startswith(THEME_ERRORS)] == [], errors
