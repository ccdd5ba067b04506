"""The scripts and fonts the published pages need, vendored at build time so that the book reads offline.

`book/build.py` calls `vendor` while it stages the book; nothing here runs a notebook.
"""
from __future__ import annotations

import fnmatch
import shutil
import subprocess
from pathlib import Path

# JavaScript the published pages need, taken from the npm registry at build time (with
# `npm pack`) so that the book reads offline: Sphinx and myst-nb otherwise load MathJax,
# RequireJS and the widget manager from CDNs. The files go to an `html_extra_path`
# folder at the HTML root, not to `_static/` (files there are loaded twice).
# (npm spec, files or folders inside the package, name at the HTML root)
VENDORED = [
    ("mathjax@3.2.2", ["es5/tex-chtml.js", "es5/output/chtml/fonts/woff-v2"], "mathjax"),
    # the widget runtime of a page with an explorable (MyST-NB's nb_ipywidgets_js): RequireJS and the
    # html-manager's AMD embedder, with its own fonts and styles beside it
    ("requirejs@2.3.8", ["require.js"], "requirejs"),
    ("@jupyter-widgets/html-manager@1.0.15", ["dist/embed-amd.js"] + [f"dist/*.{kind}" for kind in ("woff2", "woff", "ttf", "eot", "svg")],
     "html-manager"),
]
WIDGETS = "widgets"  # anywidget's AMD module, from the installed Python package: the same version as the kernel's


def vendor(staging: Path, cache: Path) -> dict:
    """Unpack VENDORED into ``staging/_vendor`` (npm tarballs kept in `cache`); return the Sphinx settings that
    point at it.

    Without npm (a machine with Python alone) nothing is vendored and the pages load
    MathJax from its CDN, as Jupyter Book does by default: said, not hidden.
    """
    import tarfile

    if shutil.which("npm") is None:
        print("[book] npm not found: MathJax will be loaded from its CDN (equations need a network to render)")
        return {}
    cache.mkdir(parents=True, exist_ok=True)
    target = staging / "_vendor"
    for spec, members, name in VENDORED:
        tarballs = sorted(cache.glob(spec.replace("@", "-").lstrip("-").replace("/", "-") + ".tgz"))
        if not tarballs:
            result = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(cache)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                print(f"[book] npm pack {spec} failed ({result.stderr.strip()[:200]}); pages will use the CDN")
                return {}
            tarballs = [cache / result.stdout.strip().splitlines()[-1]]
        with tarfile.open(tarballs[0]) as archive:
            for member in archive.getmembers():
                inside = member.name.removeprefix("package/")
                if member.isfile() and any(fnmatch.fnmatch(inside, m) or inside.startswith(m + "/") for m in members):
                    destination = target / name / inside
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    with archive.extractfile(member) as src, open(destination, "wb") as dst:
                        shutil.copyfileobj(src, dst)
    anywidget_semver = vendor_anywidget(target)
    # the embedder's styles ask for their fonts at "@jupyter-widgets/html-manager/dist/" beside the page: a copy
    # there for the chapters (notebooks/), the only pages with widgets
    fonts = target / "notebooks" / "@jupyter-widgets" / "html-manager" / "dist"
    fonts.mkdir(parents=True, exist_ok=True)
    for font in (target / "html-manager" / "dist").iterdir():
        if font.suffix in (".woff2", ".woff", ".ttf", ".eot", ".svg"):
            shutil.copy2(font, fonts / font.name)
    # add_js_file prefixes "_static/": "../" climbs back to the HTML root. The embedder loads widget modules
    # from `data-jupyter-widgets-cdn` only (never from jsDelivr): the folder beside the pages, which
    # RequireJS resolves from the page's own folder (every chapter is one level down, in notebooks/).
    widgets_js = {"../requirejs/require.js": {},
                  "../html-manager/dist/embed-amd.js": {"data-jupyter-widgets-cdn": f"../{WIDGETS}/",
                                                        "data-jupyter-widgets-cdn-only": "true"}}
    print(f"[book] widget runtime vendored (anywidget {anywidget_semver})")
    return {"html_extra_path": ["_vendor"], "mathjax_path": "../mathjax/es5/tex-chtml.js", "nb_ipywidgets_js": widgets_js}


def vendor_anywidget(target: Path) -> str:
    """Copy anywidget's AMD module (its classic-notebook extension, which @jupyter-widgets/html-manager loads)
    from the installed Python package to where the embedder asks for ``anywidget@<version>/dist/index.js``;
    returns that version (the ``_model_module_version`` every anywidget carries)."""
    import anywidget
    from anywidget._version import _ANYWIDGET_SEMVER_VERSION

    source = Path(anywidget.__file__).parent / "nbextension" / "index.js"
    destination = target / WIDGETS / f"anywidget@{_ANYWIDGET_SEMVER_VERSION}" / "dist" / "index.js"
    destination.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, destination)
    return _ANYWIDGET_SEMVER_VERSION
