"""Strings from files, flags and paths made safe to print or draw: control characters are shown, never obeyed."""

import re

PLACEHOLDER = "\N{REPLACEMENT CHARACTER}"
# C0 (ESC included), DEL and C1 act on a terminal (clear it, rename it, move the cursor); line and
# paragraph separators and bidi overrides change how the rest of a line reads; lone surrogates
# (JSON can spell them) cannot be encoded at all, so printing them would raise.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text: str) -> str:
    """text with each control character replaced by a visible placeholder: one line that acts on nothing."""
    return CONTROL.sub(PLACEHOLDER, text)


def mostly_control(text: str) -> bool:
    """Whether more than half of text's characters are control characters: a name made to act, not to be read."""
    return len(CONTROL.findall(text)) * 2 > len(text)
