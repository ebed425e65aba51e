"""The novelty calibrator: confidence joins the head's probability with nearness to the answered label's training
examples, learnt on out-of-fold data, saved as plain arrays and applied with numpy alone."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from shared.learning.embedders.base import l2_normalise
from shared.learning.novelty import NoveltyCalibrator, fit_novelty, held_out_similarity, neighbour_similarity
from tests.conftest import REPO


def unit(rng, centre: np.ndarray, rows: int, spread: float = 0.1) -> np.ndarray:
    return l2_normalise(centre + spread * rng.standard_normal((rows, len(centre))))


@pytest.fixture
def fitted():
    """Two labels in 8 dimensions. Rows near their label's centre are answered right; 40 rows scattered far from both
    centres (as a text unlike the training set is) are answered right only half the time, and every answer has
    p = 0.95, so only nearness can tell them apart."""
    rng = np.random.default_rng(0)
    centres = np.eye(8)
    X = np.vstack([unit(rng, centres[0], 60), unit(rng, centres[1], 60), unit(rng, centres[2:].sum(axis=0), 40, 1.0)])
    targets = np.array([0] * 60 + [1] * 60 + [0, 1] * 20)
    answered = targets.copy()
    answered[120::4] = 1 - answered[120::4]  # half of the far rows (every other pair) answered wrong
    answered[121::4] = 1 - answered[121::4]
    probabilities = np.full((len(X), 2), 0.05)
    probabilities[np.arange(len(X)), answered] = 0.95
    order = rng.permutation(len(X))
    splits = [(np.setdiff1d(order, held), held) for held in np.array_split(order, 5)]
    return fit_novelty(X, targets, probabilities, held_out_similarity(X, targets, splits, 2)), centres


def test_an_item_far_from_its_labels_examples_is_less_sure_than_a_near_one_at_the_same_probability(fitted):
    calibrator, centres = fitted
    X = l2_normalise(np.vstack([centres[0] + 0.05, centres[5] + centres[6] - centres[0]]))  # near, far
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05]])
    confidence = calibrator.confidence(probabilities, calibrator.similarity(X, 2), np.array([0, 0]))
    assert calibrator.coef[1] > 0  # nearness learnt as evidence of a right answer
    assert confidence[1] < 0.8 < confidence[0]


def test_saved_arrays_give_back_the_same_confidence(fitted):
    calibrator, centres = fitted
    restored = NoveltyCalibrator.from_arrays(calibrator.arrays())
    X = l2_normalise(np.vstack([centres[0], centres[1], centres[3]]))
    probabilities = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])
    answered = probabilities.argmax(axis=1)
    np.testing.assert_allclose(restored.confidence(probabilities, restored.similarity(X, 2), answered),
                               calibrator.confidence(probabilities, calibrator.similarity(X, 2), answered))
    assert restored.neighbours == calibrator.neighbours


def test_a_calibrator_holds_its_saved_float16_exemplars_as_float32_so_answering_never_converts_them(fitted):
    calibrator, _ = fitted
    restored = NoveltyCalibrator.from_arrays(calibrator.arrays())
    assert calibrator.arrays()["novelty_exemplars"].dtype == np.float16  # the head's file stays small
    for held in (calibrator, restored):
        assert held.exemplars.dtype == np.float32
    np.testing.assert_array_equal(restored.exemplars, calibrator.exemplars)  # fitted and loaded heads answer alike


def test_a_head_saved_without_a_calibrator_reads_as_none():
    assert NoveltyCalibrator.from_arrays({"coef": np.zeros((2, 3)), "intercept": np.zeros(2)}) is None


def test_with_no_wrong_out_of_fold_answer_the_confidence_is_the_probability():
    X = l2_normalise(np.eye(4)[[0, 0, 0, 1, 1, 1]] + 0.01)
    targets = np.array([0, 0, 0, 1, 1, 1])
    probabilities = np.array([[0.8, 0.2]] * 3 + [[0.3, 0.7]] * 3)
    splits = [(np.array([1, 2, 4, 5]), np.array([0, 3])), (np.array([0, 2, 3, 5]), np.array([1, 4])),
              (np.array([0, 1, 3, 4]), np.array([2, 5]))]
    calibrator = fit_novelty(X, targets, probabilities, held_out_similarity(X, targets, splits, 2))
    confidence = calibrator.confidence(probabilities, calibrator.similarity(X, 2), targets)
    np.testing.assert_allclose(confidence, [0.8, 0.8, 0.8, 0.7, 0.7, 0.7])


def test_similarity_averages_the_nearest_exemplars_of_each_class_and_a_class_without_any_is_farthest():
    exemplars = l2_normalise(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    columns = np.array([0, 0, 1])
    similarity = neighbour_similarity(np.array([[1.0, 0.0]]), exemplars, columns, 3, neighbours=5)
    np.testing.assert_allclose(similarity, [[0.5, np.sqrt(0.5), -1.0]])  # class 0: mean of 1 and 0 (only two)


def test_answering_with_a_saved_calibrator_imports_neither_scikit_learn_nor_scipy(tmp_path, fitted):
    calibrator, _ = fitted
    np.savez(tmp_path / "novelty.npz", **calibrator.arrays())
    script = (
        "import sys, numpy as np\n"
        "from shared.learning.novelty import NoveltyCalibrator\n"
        f"c = NoveltyCalibrator.from_arrays(np.load({str(tmp_path / 'novelty.npz')!r}))\n"
        "x = np.eye(8)[:1]\n"
        "c.confidence(np.array([[0.9, 0.1]]), c.similarity(x, 2), np.array([0]))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sklearn', 'scipy')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
