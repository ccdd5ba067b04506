"""Record a deck's claim and the chapter's verdict on it, for the book's claims page.

Book-side, not part of `lifcore`. A chapter calls `record(...)` in the cell that renders its
conclusion, with values computed in that cell; the record is an output of a private MIME type
that no page shows. `book/build.py` collects the records of every executed chapter, in the
order of the table of contents, into the page "What the decks claimed, and what the book
found", so that page is regenerated from the chapters' own numbers at every build.

The scale cannot over-score:

* a claim (the deck states something) is "supported" or "not supported" by the page's number;
* a question (the deck asks "why?", "what does it mean?", or calls it open) is "answered" only when
  a number on the page answers it *and* the page finds that number to match what the deck's own
  run showed (``matched=True``, the same boolean the page's text uses); a question whose deciding
  number the page calls unmatched cannot be recorded "answered" (`record` refuses it);
* either is "not tested here" when the page cannot decide it, with ``why``.

Seed 001 asks its questions without a run of its own to match: there ``matched`` is whether the page's
test decides between the answers it tests (the chapter says how), the only match its numbers can have.
"""
from __future__ import annotations

MIME = "application/vnd.lifcore.claim+json"
VERDICTS = ("supported", "not supported", "not tested here", "answered")
CLAIM_VERDICTS = ("supported", "not supported", "not tested here")
QUESTION_VERDICTS = ("answered", "not tested here")
DECKS = ("001", "000")
# what `was` refers to: the book before its Part II runs started from converged fields (issue 23)
UNCONVERGED = ("the unconverged model (64 neurons on 8x8 patches of four scikit-image photographs, 2,000 steps from "
               "the deck's random start)")


def check(verdict: str, *, question: bool, matched: bool | None, why: str | None) -> None:
    """The rule of the scale (module docstring), raised as a ValueError naming what is wrong."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict={verdict!r} is unknown; allowed: {', '.join(VERDICTS)}")
    allowed = QUESTION_VERDICTS if question else CLAIM_VERDICTS
    if verdict not in allowed:
        kind = "a question" if question else "a claim"
        raise ValueError(f"verdict={verdict!r} is not a verdict on {kind}; allowed: {', '.join(allowed)}")
    if verdict == "answered" and matched is not True:
        raise ValueError(f"verdict='answered' needs matched=True (the page finds its deciding number to match the "
                         f"deck's run); got matched={matched!r}: record 'not tested here' with why instead")
    if verdict == "not tested here" and not why:
        raise ValueError("verdict='not tested here' needs why= (what the page lacks to decide it)")


def record(deck: str, slide: str, claim: str, verdict: str, number: str, *, question: bool = False,
           matched: bool | None = None, why: str | None = None, was: str | None = None, because: str | None = None) -> None:
    """`deck` "000" (January 2024) or "001" (May 2021); `slide` where it is said; `claim` in the deck's
    words; `verdict` one of `VERDICTS` under the rule of `check`; `number` the value that decides it, as
    the chapter found it; `question` whether the deck asks rather than states; `matched` whether the
    deciding number matches the deck's own run (required for "answered"); `why` what is missing
    (required for "not tested here"); `was` the verdict this chapter gave on `UNCONVERGED`, and `because` why it
    changed: where it differs from `verdict`, the page says so in a line of its own."""
    from IPython.display import Markdown, display

    if deck not in DECKS:
        raise ValueError(f"deck={deck!r} is unknown; allowed: {', '.join(DECKS)}")
    check(verdict, question=question, matched=matched, why=why)
    if was is not None and was == verdict:
        was = None  # the page shows a former verdict only where it differs
    if was is not None and was not in VERDICTS + ("partly supported", "open"):  # the former scale had these two too
        raise ValueError(f"was={was!r} is no verdict")
    display({MIME: {"deck": deck, "slide": slide, "claim": claim, "verdict": verdict, "number": number,
                    "question": question, "why": why, "was": was}}, raw=True)
    if was is not None:
        display(Markdown(f"*On {UNCONVERGED}, this chapter's verdict on \"{claim}\" was **{was}**; here it is **{verdict}**"
                         + (f": {because.rstrip('.')}.*" if because else ".*")))
