"""Check an executed notebook for what must never reach a published page.

    python book/check.py _build/src/notebooks/*.ipynb      # exit 1, naming chapter and cell, on any problem

`book/build.py` runs `problems` on every notebook it executes and refuses the chapter when
the list is not empty. A problem is, in an output a reader would see (cells tagged
``remove-cell`` or ``remove-output`` are not published and not checked):

* an error or a traceback;
* a stderr stream (a warning, a log line, a progress bar written there);
* a progress bar (tqdm's text or widget), or any widget the static page cannot run: a widget view
  is published only when it is an anywidget (its script runs in the page) whose state the notebook
  stored (``metadata.widgets``, as papermill saves it);
* a raw object repr standing alone (``<IPython.core.display.Markdown object>``,
  ``<Figure size ...>`` without its image, ``<... object at 0x...>``);
* ``nan`` or ``inf`` in rendered Markdown (a conclusion or a table);
* a Markdown table whose rows do not have as many cells as its header (a ``|`` inside a
  cell, as in ``H(X|R)``, splits it), in an output or in a Markdown cell.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

PROGRESS = re.compile(r"\d+%\|[^|]*\||\d+(?:\.\d+)?\s*(?:it/s|s/it)\b")
RAW_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>|<IPython\.core\.display\.\w+ object>|<Figure size [^>]*>")
NOT_A_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:nan|inf)(?![\w])", re.IGNORECASE)
WIDGET = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
SHOWN = ("text/markdown", "text/html", "image/png", "image/svg+xml", "image/jpeg", "text/latex")


def _cells_in_row(line: str) -> int:
    """Cells of a Markdown table row: pipes not escaped and outside inline code split cells."""
    text = re.sub(r"`[^`]*`", "code", line.strip())
    text = text.replace("\\|", "")
    return len(text.strip("|").split("|"))


def table_problems(markdown: str) -> list[str]:
    problems, block = [], []
    for line in markdown.splitlines() + [""]:
        if line.strip().startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2:
            header = _cells_in_row(block[0])
            for row in block[1:]:
                if _cells_in_row(row) != header:
                    problems.append(f"a Markdown table row has {_cells_in_row(row)} cells, its header {header}: "
                                    f"{row.strip()[:80]!r}")
                    break
        block = []
    return problems


def runnable_widgets(nb) -> set[str]:
    """Model ids of the anywidgets whose state the notebook stored: the explorables a static page runs."""
    state = nb.get("metadata", {}).get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    return {model_id for model_id, model in state.items() if model.get("model_module") == "anywidget"}


def output_problems(output: dict, runnable: set[str] = frozenset()) -> list[str]:
    kind = output.get("output_type")
    if kind == "error":
        return [f"an error: {output.get('ename')}: {str(output.get('evalue'))[:120]}"]
    if kind == "stream":
        text = "".join(output.get("text", ""))
        if output.get("name") == "stderr" and text.strip():
            return [f"a stderr stream: {text.strip()[:120]!r}"]
        if PROGRESS.search(text) or "\r" in text:
            return [f"a progress bar: {text.strip()[:80]!r}"]
        return []
    data = output.get("data", {})
    problems = []
    if WIDGET in data and data[WIDGET].get("model_id") not in runnable:
        problems.append("a widget (a progress bar or control) that the static page cannot run")
    plain = "".join(data.get("text/plain", ""))
    if plain and not any(mime in data for mime in SHOWN) and WIDGET not in data:
        if RAW_REPR.search(plain):
            problems.append(f"a raw object repr: {plain.strip()[:80]!r}")
        if PROGRESS.search(plain):
            problems.append(f"a progress bar: {plain.strip()[:80]!r}")
    markdown = "".join(data.get("text/markdown", ""))
    if markdown:
        found = NOT_A_NUMBER.search(re.sub(r"`[^`]*`", "", markdown))
        if found:
            start = max(found.start() - 40, 0)
            problems.append(f"'{found.group(0)}' in rendered Markdown: {markdown[start:found.end() + 40]!r}")
        problems += table_problems(markdown)
    return problems


def problems(path: str | Path) -> list[str]:
    """Every problem of the executed notebook at `path`, as "cell N: what"."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    runnable = runnable_widgets(nb)
    found = []
    for index, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if "remove-cell" in tags:
            continue
        if cell.cell_type == "markdown":
            found += [f"cell {index}: {p}" for p in table_problems(cell.source)]
            continue
        if cell.cell_type != "code" or "remove-output" in tags:
            continue
        for output in cell.get("outputs", []):
            found += [f"cell {index}: {p}" for p in output_problems(output, runnable)]
    return found


def main(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        for problem in problems(path):
            print(f"{Path(path).stem}: {problem}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
