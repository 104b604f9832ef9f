"""Top-1 figures as the ISIC challenges score them: a tie for the top class is wrong, whichever class
``argmax`` would have picked; absent classes are left out of balanced accuracy."""

import numpy as np

from edge.model.contract import ModelContract
from training.evaluate import classification_metrics, top1

CONTRACT = ModelContract(task="classify", labels=("MEL", "NV", "BCC"), image_size=32, malignant_labels=("MEL", "BCC"))


def test_a_tie_is_no_answer():
    probs = np.array([[0.4, 0.4, 0.2], [0.1, 0.7, 0.2], [0.3, 0.3, 0.4]])
    assert top1(probs).tolist() == [-1, 1, 2]


def test_ties_count_as_wrong_in_accuracy_and_balanced_accuracy():
    y = np.array([0, 0, 1, 1])
    probs = np.array([[0.45, 0.45, 0.1], [0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    m = classification_metrics(y, probs, CONTRACT)
    # argmax would call the first image MEL (right); tied, it counts as wrong: MEL recall 1/2, NV 2/2
    assert m["top1_ties"] == 1 and m["accuracy"] == 0.75
    assert m["balanced_accuracy"] == (0.5 + 1.0) / 2  # BCC has no image here: left out, not zero
    assert m["per_class"]["MEL"]["recall"] == 0.5 and m["per_class"]["MEL"]["precision"] == 1.0
