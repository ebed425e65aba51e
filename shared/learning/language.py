"""Which texts a trained head cannot read: those written in a language its embedder was not trained on.

A head trained on one embedder's vectors is only as good as that embedder's reading. A text in a language the model
never saw is embedded as noise near whatever cluster happens to be closest, and the head can answer it with high
confidence: on support_ticket's multilingual dev set, the Czech and Swedish tickets (outside USE-m's 16 languages)
came back `other` at 0.87-0.94. So the trained tier does not trust such an answer: its confidence is 0 and the item
escalates, with the language in the attempt's reason (shared/learning/serving.py applies it).

The language is identified by py3langid (a numpy port of langid.py, BSD-3-Clause; its model, over 100 languages,
ships in the wheel and is loaded on first use, about 0.3 s). Identification of a short text is unreliable (an English
"set an alarm for 05:00" reads as several other languages), so a text is judged only from `MIN_LETTERS` letters on,
and only when the identifier names one language it is fairly sure of (`MIN_IDENTIFIED` of its probability; order
numbers, links and punctuation get a flat guess or "no linguistic content", and are never judged) and gives the
embedder's languages together less than `MAX_READABLE_SHARE`. The gate applies to classification answers; an
extraction head reads a text line by line, mostly numbers and names, and is not gated. Measured
(bench/results/language_gate.txt): of Banking77's and CLINC150's 4,640 English dev queries none is judged
unreadable by MiniLM's English; of support_ticket's 136 multilingual tickets, the 24 in Swedish, Czech and Indonesian
are (the shipped head had answered them 62% right at a mean confidence of 0.84), and no ticket in USE-m's languages.
The gate costs about 0.05 ms an item, under a tenth of embedding it, and 0.3 s once to load.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

MIN_LETTERS = 30  # texts with fewer letters are too short to identify reliably: never judged unreadable
MIN_IDENTIFIED = 0.5  # the identifier's share on the language it names, below which it has not identified one
MAX_READABLE_SHARE = 0.05  # judged unreadable only when the identifier is at least 95% sure it is another language
NOT_A_LANGUAGE = frozenset({"zxx", "und"})  # no linguistic content; undetermined


class LanguageGate:
    """Names, for each text, the language it is written in when that is not one of an embedder's languages."""

    def __init__(self) -> None:
        self._loading = threading.Lock()
        self._identifier: Any = None

    def unreadable(self, texts: Sequence[str], languages: frozenset[str] | None) -> list[str | None]:
        """For each text, the language code it reads as where the embedder (``languages``, ISO 639-1 codes; None: it
        reads any) was not trained on it, else None."""
        if languages is None:
            return [None] * len(texts)
        return [self._language_outside(text, languages) if sum(c.isalpha() for c in text) >= MIN_LETTERS else None
                for text in texts]

    def load(self) -> None:
        """Load the identifier now (a probe's check that it can be), rather than on the first text judged."""
        self._identify()

    def _language_outside(self, text: str, languages: frozenset[str]) -> str | None:
        ranked = self._identify().rank(text)
        named, share = ranked[0]
        if share < MIN_IDENTIFIED or named in NOT_A_LANGUAGE:
            return None
        if sum(share for language, share in ranked if language in languages) >= MAX_READABLE_SHARE:
            return None
        return named

    def _identify(self) -> Any:
        """py3langid's identifier with probabilities, loaded once (its model is xz-compressed)."""
        with self._loading:
            if self._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            return self._identifier
