"""A converted file with its pooled features as a second output and a lesion gate in its contract."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from tests.conftest import synthetic_lesion

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def gated(tiny_tflite, tiny_contract, tmp_path_factory):
    """(path, classifier, a lesion, a non-lesion): the tiny classifier with a gate fitted on synthetic lesions."""
    from convert.features import expose_features
    from convert.gate import fit_lesion_gate
    from edge.model.classifier import Classifier
    from edge.model.modelfile import embed_contract, read_contract

    rng = np.random.default_rng(0)
    lesions = np.stack([synthetic_lesion(rng, k % 3, size=64) for k in range(90)])
    converted = expose_features(tiny_tflite.read_bytes())
    contract, report = fit_lesion_gate(
        read_contract(tiny_tflite), converted, lesions[:60], lesions[60:], np.zeros(30, int), ("synthetic",)
    )
    assert report["validation_refused"]["synthetic"] <= 0.02
    path = tmp_path_factory.mktemp("gated") / "gated.tflite"
    path.write_bytes(embed_contract(converted, contract))
    yy, xx = np.mgrid[:64, :64]
    stripes = np.dstack([(xx * 4) % 256, (yy * 4) % 256, np.full((64, 64), 128)]).astype(np.uint8)
    return path, Classifier(path), lesions[60], stripes


def test_exposing_features_adds_the_dense_layers_input_as_a_second_output(tiny_tflite):
    from ai_edge_litert.interpreter import Interpreter

    from convert.features import expose_features

    once = expose_features(tiny_tflite.read_bytes())
    assert expose_features(once) == once  # already there: unchanged
    interp = Interpreter(model_content=once)
    shapes = [tuple(d["shape"]) for d in interp.get_output_details()]
    assert shapes == [(1, 3), (1, 16)]
    assert list(interp.get_signature_list()["serving_default"]["outputs"]) == ["features", "output_0"]


def test_the_gate_scores_every_image_and_refuses_what_is_far_from_the_training_features(gated):
    path, clf, lesion, stripes = gated
    near, far = clf.classify(lesion), clf.classify(stripes)
    assert near.lesion_score is not None and far.lesion_score > near.lesion_score
    assert near.not_lesion is False and near.verdict != "not a skin lesion"
    assert far.not_lesion is True and far.verdict == "not a skin lesion"
    assert far.to_dict()["not_lesion"] is True


def test_a_refusal_reads_not_a_skin_lesion_on_the_command_line(gated, tmp_path):
    from edge import app
    from tests.conftest import write_image

    path, _, lesion, stripes = gated
    write_image(tmp_path / "photos" / "lesion.png", lesion)
    write_image(tmp_path / "photos" / "stripes.png", stripes)
    args = ["--model", str(path), "--source", str(tmp_path / "photos"), "--no-quality-gate"]
    records = {json.loads(line)["source"].rsplit("/", 1)[-1]: json.loads(line)
               for line in CliRunner().invoke(app.cli, [*args, "--json"]).stdout.splitlines()}  # fmt: skip
    assert records["stripes.png"]["verdict"] == "not a skin lesion" and records["stripes.png"]["not_lesion"]
    assert not records["lesion.png"]["not_lesion"]
    human = CliRunner().invoke(app.cli, args)
    assert "stripes.png: not a skin lesion;" in human.stdout and "not a skin lesion: 1" in human.stdout


def test_a_contract_gate_without_the_features_output_is_refused(gated, tiny_tflite, tmp_path):
    from edge.model.classifier import Classifier
    from edge.model.contract import ContractError
    from edge.model.modelfile import embed_contract

    path, clf, _, _ = gated
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(embed_contract(tiny_tflite.read_bytes(), clf.contract))
    with pytest.raises(ContractError, match="lesion gate reads 16 features, the model gives none"):
        Classifier(plain)
