"""The book's claims page, written from the verdicts the executed chapters recorded (notebooks/claims.py)."""
from __future__ import annotations

from pathlib import Path

CLAIMS_MIME = "application/vnd.lifcore.claim+json"  # notebooks/claims.py
CLAIMS_PAGE = "book/claims"


def write_claims_page(entries: list[str], src: Path, target: Path) -> int:
    """The page "What the decks claimed, and what the book found", from the claims the executed
    chapters under `src` recorded (notebooks/claims.py), in table-of-contents order. Returns their number."""
    import nbformat

    rows = []
    for entry in entries:
        executed = src / Path(entry).with_suffix(".ipynb")
        if not executed.exists():
            continue
        nb = nbformat.read(executed, as_version=4)
        title = next((c.source.splitlines()[0].lstrip("# ").strip() for c in nb.cells if c.cell_type == "markdown"), entry)
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                claim = output.get("data", {}).get(CLAIMS_MIME)
                if claim:
                    rows.append((claim, title, Path(entry).name))

    def cell(text):
        return str(text).replace("|", "/").replace("\n", " ")

    decks = {"001": "May 2021 (LIF networks)", "000": "January 2024 (efficient coding)"}
    lines = ["# What the decks claimed, and what the book found", "",
             "Every claim or open question of the two decks that a chapter tests, with the chapter's verdict and the",
             "number that decides it. This page is generated at each build from the executed chapters (each records its",
             "verdicts where it computes them, `notebooks/claims.py`): it cannot say what its chapters do not.", "",
             "A claim is *supported* or *not supported*; a question is *answered* only where the page's number answers",
             "it and matches what the deck's own run showed (seed 001 asks its questions without a run of its own: there, a",
             "question is answered where the page's test decides between the answers it tests); either is *not tested here*",
             "when the page cannot decide it,",
             "and says why. The column *on the unconverged model* gives the verdict a chapter had when the book's runs",
             "began from the deck's random start and never formed receptive fields (64 neurons on 8x8 patches of four",
             "scikit-image photographs, 2,000 steps), where it differs from today's; that book's scale also had *partly",
             "supported* and *open*.", ""]
    for deck in ("001", "000"):
        mine = [r for r in rows if r[0]["deck"] == deck]
        if not mine:
            continue
        lines += [f"## The deck of {decks[deck]}", "",
                  "| slide | claim or question | verdict | deciding number | on the unconverged model | chapter |",
                  "|---|---|---|---|---|---|"]
        for c, title, name in mine:
            number = c["number"] + (f" (not tested here: {c['why']})" if c.get("why") else "")
            lines.append(f"| {cell(c['slide'])} | {cell(c['claim'])} | **{cell(c['verdict'])}** | {cell(number)} | "
                         f"{cell(c.get('was') or '')} | [{cell(title)}](../notebooks/{name}.ipynb) |")
        lines.append("")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(lines) + "\n")
    return len(rows)
