"""The fidelity report: agreement where the original model shows a label, and overall."""

from __future__ import annotations

import numpy as np

from convert.fidelity import fidelity_report
from edge.model.contract import ModelContract

CONTRACT = ModelContract(task="classify", labels=("a", "b", "c"), image_size=32)


def test_flips_between_near_ties_do_not_count_against_the_labels_a_person_sees():
    confident = np.array([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]] * 10)
    near_ties = np.array([[1.0, 0.98, 0.0]] * 5)  # shown as "uncertain": top-1 barely ahead
    keras = np.concatenate([confident, near_ties])
    lite = np.concatenate([confident, near_ties[:, [1, 0, 2]]])  # int8 flips every near tie
    y = keras.argmax(1)
    report = fidelity_report(keras, lite, y, CONTRACT)
    assert report["agreement"] == 20 / 25 and report["labelled"] == 20 and report["label_agreement"] == 1.0

    lite[0] = [0.0, 0.0, 4.0]  # a confident answer changed: that one counts
    assert fidelity_report(keras, lite, y, CONTRACT)["label_agreement"] == 19 / 20


def test_a_model_that_labels_nothing_is_judged_on_every_image():
    keras = np.zeros((4, 3))
    keras[:, 0] = 0.01  # never confident
    lite = keras[:, [1, 0, 2]]
    report = fidelity_report(keras, lite, np.zeros(4, int), CONTRACT)
    assert report["labelled"] == 0 and report["label_agreement"] == report["agreement"] == 0.0


def test_the_malignancy_flag_is_compared_where_the_contract_names_malignant_classes():
    contract = CONTRACT.replace(malignant_labels=("c",), risk_threshold=0.5)
    keras = np.array([[0.0, 0.0, 3.0], [3.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.0, 0.0]])
    lite = keras.copy()
    lite[2] = [1.0, 0.0, 0.0]  # risk falls below the threshold: the flag flips, the top-1 label flips too
    lite[3] = [0.0, 0.2, 0.0]  # top-1 flips between benign classes: the flag holds
    report = fidelity_report(keras, lite, keras.argmax(1), contract)
    assert report["agreement"] == 0.5 and report["flag_agreement"] == 0.75
    assert "flag_agreement" not in fidelity_report(keras, lite, keras.argmax(1), CONTRACT)
