"""The build's own check of executed notebooks (book/check.py, issue 12): each kind of debris fails it."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

spec = importlib.util.spec_from_file_location("check", Path(__file__).resolve().parent.parent / "book" / "check.py")
check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check)


def notebook(tmp_path, *outputs, markdown=None, tags=()):
    nb = nbformat.v4.new_notebook()
    if markdown is not None:
        nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.outputs = list(outputs)
    cell.metadata["tags"] = list(tags)
    nb.cells.append(cell)
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    return path


def display(data):
    return nbformat.v4.new_output("display_data", data=data)


CLEAN = [nbformat.v4.new_output("stream", name="stdout", text="I = 4.135 bits per patch\n"),
         display({"image/png": "iVBORw0KGgo=", "text/plain": "<Figure size 850x340 with 2 Axes>"}),
         display({"text/markdown": "| run | I (bits) |\n|---|---:|\n| lagrange | 4.173 |\n| `a|b` in code | 1.0 |",
                  "text/plain": "<IPython.core.display.Markdown object>"})]

DEBRIS = {
    "an error": nbformat.v4.new_output("error", ename="ValueError", evalue="bad", traceback=["Traceback ..."]),
    "a stderr stream": nbformat.v4.new_output("stream", name="stderr", text="UserWarning: something\n"),
    "a progress bar": nbformat.v4.new_output("stream", name="stdout", text=" 40%|####      | 2/5 [00:01<00:01, 2.00it/s]"),
    "a widget": display({"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}, "text/plain": "HBox(children=(...))"}),
    "a raw object repr": display({"text/plain": "<IPython.core.display.Markdown object>"}),
    "'nan' in rendered Markdown": display({"text/markdown": "the error is nan% and the conclusion follows"}),
    "inf' in rendered Markdown": display({"text/markdown": "| a | b |\n|---|---|\n| x | -inf |"}),
    "a Markdown table row has": display({"text/markdown": "| quantity | value |\n|---|---|\n| H(X|R) | 3.0 |"}),
}


def test_a_clean_page_passes(tmp_path):
    assert check.problems(notebook(tmp_path, *CLEAN)) == []


@pytest.mark.parametrize("what", list(DEBRIS))
def test_each_kind_of_debris_fails_and_names_the_cell(tmp_path, what):
    found = check.problems(notebook(tmp_path, *CLEAN, DEBRIS[what]))
    assert found and all(f.startswith("cell 0:") for f in found)
    assert any(what in f for f in found), found


def test_a_broken_table_in_a_markdown_cell_fails_and_removed_cells_are_not_checked(tmp_path):
    found = check.problems(notebook(tmp_path, *CLEAN, markdown="| a | b |\n|---|---|\n| H(X|R) | 1 |"))
    assert found == [f for f in found if f.startswith("cell 0:")] and len(found) == 1
    assert check.problems(notebook(tmp_path, DEBRIS["an error"], tags=["remove-cell"])) == []
    assert check.problems(notebook(tmp_path, DEBRIS["a widget"], tags=["remove-output"])) == []


def test_a_widget_is_published_only_as_an_anywidget_with_its_stored_state(tmp_path):
    """An explorable (an anywidget whose state papermill stored) runs in the static page; a tqdm bar or an
    ipywidgets control, even with state, or an anywidget without it, does not."""
    view = display({"application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2, "version_minor": 0},
                    "text/plain": "ToyExplorer(...)"})
    for module, stored, allowed in (("anywidget", True, True), ("@jupyter-widgets/controls", True, False),
                                    ("anywidget", False, False)):
        path = notebook(tmp_path, view)
        nb = nbformat.read(path, as_version=4)
        if stored:
            nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
                "state": {"abc": {"model_module": module, "model_name": "AnyModel", "model_module_version": "~0.11.*",
                                  "state": {}}}, "version_major": 2, "version_minor": 0}}
        nbformat.write(nb, path)
        found = check.problems(path)
        assert (found == []) == allowed, (module, stored, found)
