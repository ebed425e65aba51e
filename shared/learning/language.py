"""Which texts a trained head cannot read: those written in a language its embedder was not trained on.

A head trained on one embedder's vectors is only as good as that embedder's reading. A text in a language the model
never saw is embedded as noise near whatever cluster happens to be closest, and the head can answer it with high
confidence: on support_ticket's multilingual dev set, the Czech and Swedish tickets (outside USE-m's 16 languages)
came back `other` at 0.87-0.94. So the trained tier does not trust such an answer: its confidence is 0 and the item
escalates, with the language in the attempt's reason (shared/learning/serving.py applies it).

The language is identified by py3langid (a numpy port of langid.py, BSD-3-Clause; its model, 97 languages, ships in
the wheel and is loaded on first use). Identification of a short text is unreliable (an English "set an alarm for
05:00" reads as several other languages), so a text is judged only from `MIN_CHARS` characters on, and only when the
identifier gives the embedder's languages together less than `MAX_READABLE_SHARE` of its probability. Measured
(bench/results/language_gate.txt): of Banking77's and CLINC150's 4,640 English dev queries none is judged
unreadable by MiniLM's English; of support_ticket's 136 multilingual tickets, the 24 in Swedish, Czech and Indonesian
are (the shipped head had answered them 62% right at a mean confidence of 0.84), and no ticket in USE-m's languages.
The gate costs about 0.05 ms an item, under a tenth of embedding it, and 0.3 s once to load.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

MIN_CHARS = 30  # shorter texts are too short to identify reliably: never judged unreadable
MAX_READABLE_SHARE = 0.05  # judged unreadable only when the identifier is at least 95% sure it is another language


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
        return [self._language_outside(text, languages) if len(text.strip()) >= MIN_CHARS else None
                for text in texts]

    def _language_outside(self, text: str, languages: frozenset[str]) -> str | None:
        ranked = self._identify().rank(text)
        if sum(share for language, share in ranked if language in languages) >= MAX_READABLE_SHARE:
            return None
        return ranked[0][0]

    def _identify(self) -> Any:
        """py3langid's identifier with probabilities, loaded once (about 0.4 s: its model is xz-compressed)."""
        with self._loading:
            if self._identifier is None:
                from py3langid.langid import MODEL_FILE, LanguageIdentifier

                self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            return self._identifier
