"""Answering with numpy alone: a fresh process answers through the trained tier without importing scikit-learn or
scipy, and the shipped Banking77 head (word n-grams) loaded as plain arrays gives scikit-learn's probabilities."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from shared.foundation.tasks import TaskCatalog
from shared.learning.artifact import HeadExpectation, load_head
from shared.learning.head import LinearHead
from shared.learning.stores import LocalFolderStore
from tests.learning.conftest import dataset

REPO = Path(__file__).resolve().parents[2]

FIRST_ANSWER = """
import json, sys
from pathlib import Path
from shared.core.config import Settings
from shared.core.tiers.trained import TrainedTier
from shared.foundation.tasks import TaskCatalog

task = TaskCatalog(Path("tasks")).get("banking77")
answer = TrainedTier(Settings.from_env({}).tiers["trained"]).classify(task, "I still have not received my new card")
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
print(json.dumps({"label": answer.value, "confidence": answer.confidence, "loaded": loaded}))
"""


def test_a_fresh_process_answers_through_the_trained_tier_without_importing_sklearn_or_scipy():
    done = subprocess.run([sys.executable, "-c", FIRST_ANSWER], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["label"] == "card_arrival" and answer["confidence"] > 0.5  # the shipped head, with its n-grams
    assert answer["loaded"] == []


FIRST_EXTRACTION = """
import json, sys
from pathlib import Path
from shared.core.config import Settings
from shared.core.tiers.trained import TrainedTier
from shared.foundation.tasks import TaskCatalog

task = TaskCatalog(Path("tasks")).get("receipt")
text = "TAN WOON YANN\\nBOOK TA .K (TAMAN DAYA) SDN BHD\\nDATE : 25/12/2018\\nTOTAL 9.00"
answer = TrainedTier(Settings.from_env({}).tiers["trained"]).extract(task, text)
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
print(json.dumps({"value": answer.value, "loaded": loaded}))
"""


def test_a_fresh_process_extracts_through_the_trained_tier_without_importing_sklearn_or_scipy():
    done = subprocess.run([sys.executable, "-c", FIRST_EXTRACTION], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["value"]["total"] == "9.00"  # the shipped line tagger found the total line
    assert answer["loaded"] == []


def test_the_shipped_banking77_head_loaded_as_arrays_gives_scikit_learns_probabilities(embedder):
    from scipy.special import log_softmax
    from sklearn.feature_extraction.text import TfidfVectorizer

    task = TaskCatalog(REPO / "tasks").get("banking77")
    store = LocalFolderStore(REPO / "models")
    loaded = load_head(store, "banking77", task.trained_head,
                       HeadExpectation.of(embedder, [label.name for label in task.labels]))
    head = loaded.classifier.head_
    assert isinstance(head, LinearHead) and head.ngrams is not None and head.ngrams.width > 10_000

    texts = [row["text"] for row in dataset("banking77", "dev")[::15]] + ["", "¿Dónde está mi tarjeta? 🙂"]
    X = embedder.embed(texts)
    # The same head the way it answered before (scikit-learn's TfidfVectorizer, scipy's sparse product and
    # log_softmax), from the saved arrays.
    weights = store.read(f"banking77/{task.trained_head}/weights.npz")
    with np.load(io.BytesIO(weights)) as arrays:
        coef, intercept = arrays["coef"].astype(np.float64), arrays["intercept"]
        vectorizer = TfidfVectorizer(ngram_range=tuple(loaded.artifact.word_ngrams), sublinear_tf=True,
                                     vocabulary=arrays["vocabulary"].tolist())
        vectorizer.idf_ = arrays["idf"]
    d = loaded.artifact.embedder.dimension
    logits = X.astype(np.float64) @ coef[:, :d].T + intercept + np.asarray(vectorizer.transform(texts) @ coef[:, d:].T)
    expected = np.exp(log_softmax(logits / loaded.artifact.temperature, axis=1))

    probabilities = head.predict_proba(X, texts)
    assert np.abs(probabilities - expected).max() <= 1e-12
    answered = head.predict_with_confidence(X, texts)
    assert answered.labels == head.classes[expected.argmax(axis=1)].tolist()
    assert np.array_equal(answered.confidence, probabilities.max(axis=1))  # a head with no none label
