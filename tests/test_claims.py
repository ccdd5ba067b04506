"""The claims page's scale (notebooks/claims.py): it cannot over-score, and every chapter keeps to it.

A question is "answered" only with ``matched=True`` (the page finds its deciding number to match the deck's
run); "not tested here" needs a reason; claims and questions take their own verdicts. The static test reads
every chapter's `claims.record` calls: a call that can record "answered" must pass ``question=True`` and the
``matched=`` boolean its page computes, so that no chapter can score a question whose number it calls unmatched.
"""
import ast
import importlib.util
import json
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "notebooks"))
import claims  # noqa: E402

spec = importlib.util.spec_from_file_location("claims_page", ROOT / "book" / "claims_page.py")
claims_page = importlib.util.module_from_spec(spec)
spec.loader.exec_module(claims_page)


@pytest.mark.parametrize("verdict, kwargs, message", [
    ("answered", dict(question=True, matched=False), "needs matched=True"),
    ("answered", dict(question=True), "needs matched=True"),
    ("answered", dict(question=False, matched=True), "not a verdict on a claim"),
    ("supported", dict(question=True), "not a verdict on a question"),
    ("not tested here", dict(question=False), "needs why="),
    ("partly supported", dict(question=False), "unknown"),
    ("open", dict(question=True), "unknown"),
])
def test_the_scale_refuses_what_would_over_score(verdict, kwargs, message):
    with pytest.raises(ValueError, match=message):
        claims.check(verdict, matched=kwargs.get("matched"), why=kwargs.get("why"), question=kwargs["question"])


@pytest.mark.parametrize("verdict, kwargs", [
    ("answered", dict(question=True, matched=True)),
    ("not tested here", dict(question=True, why="the deck's images are not here")),
    ("not tested here", dict(question=False, why="too small a model")),
    ("supported", dict(question=False)), ("not supported", dict(question=False)),
])
def test_the_scale_takes_what_it_allows(verdict, kwargs):
    claims.check(verdict, matched=kwargs.get("matched"), why=kwargs.get("why"), question=kwargs["question"])


def record_calls():
    """(chapter, call) for every claims.record call in the chapters' code cells."""
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "record" \
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "claims":
                    yield path.stem, node


def verdict_literals(node) -> set:
    """The strings a verdict expression can evaluate to: a constant, or the branches of conditional expressions."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return verdict_literals(node.body) | verdict_literals(node.orelse)
    return set()


def test_every_chapter_that_can_answer_passes_matched():
    calls = list(record_calls())
    assert len(calls) >= 15, "the chapters' claims were not found"
    for chapter, call in calls:
        assert len(call.args) >= 5, f"{chapter}: claims.record needs deck, slide, claim, verdict, number"
        verdict = call.args[3]
        literals = verdict_literals(verdict)
        assert literals, f"{chapter}: the verdict must be a literal or a conditional of literals, to be checked here"
        assert literals <= set(claims.VERDICTS), f"{chapter}: verdict literal(s) {literals - set(claims.VERDICTS)} off the scale"
        keywords = {k.arg: k.value for k in call.keywords}
        if "answered" in literals:
            assert "matched" in keywords, f"{chapter}: a call that can record 'answered' must pass matched="
            assert isinstance(keywords.get("question"), ast.Constant) and keywords["question"].value is True, \
                f"{chapter}: 'answered' is a verdict on a question (question=True)"
        if "not tested here" in literals:
            assert "why" in keywords, f"{chapter}: a call that can record 'not tested here' must pass why="


def test_the_claims_page_shows_why_and_the_former_verdict(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# A chapter"))
    cell = nbformat.v4.new_code_cell("")
    record = {"deck": "000", "slide": "page 3", "claim": "why so negative?", "verdict": "not tested here", "number": "-3485 bits",
              "question": True, "why": "the deck's C_x is not here", "was": "answered"}
    cell.outputs = [nbformat.v4.new_output("display_data", data={claims.MIME: record})]
    nb.cells.append(cell)
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "chapter.ipynb")
    target = tmp_path / "claims.md"
    assert claims_page.write_claims_page(["notebooks/chapter"], tmp_path, target) == 1
    row = next(line for line in target.read_text().splitlines() if "why so negative?" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "**not tested here**"
    assert "the deck's C_x is not here" in cells[3]
    assert cells[4] == "answered"
    assert claims_page.CLAIMS_MIME == claims.MIME
