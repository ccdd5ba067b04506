"""Record a deck's claim and the chapter's verdict on it, for the book's claims page.

Book-side, not part of `lifcore`. A chapter calls `record(...)` in the cell that renders its
conclusion, with values computed in that cell; the record is an output of a private MIME type
that no page shows. `book/build.py` collects the records of every executed chapter, in the
order of the table of contents, into the page "What the decks claimed, and what the book
found", so that page is regenerated from the chapters' own numbers at every build.
"""
from __future__ import annotations

MIME = "application/vnd.lifcore.claim+json"
VERDICTS = ("supported", "not supported", "partly supported", "open", "answered")
DECKS = ("001", "000")


def record(deck: str, slide: str, claim: str, verdict: str, number: str) -> None:
    """`deck` "000" (January 2024) or "001" (May 2021); `slide` where it is said; `claim` in the deck's
    words; `verdict` one of `VERDICTS`; `number` the value that decides it, as the chapter found it."""
    from IPython.display import display

    if deck not in DECKS:
        raise ValueError(f"deck={deck!r} is unknown; allowed: {', '.join(DECKS)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict={verdict!r} is unknown; allowed: {', '.join(VERDICTS)}")
    display({MIME: {"deck": deck, "slide": slide, "claim": claim, "verdict": verdict, "number": number}}, raw=True)
