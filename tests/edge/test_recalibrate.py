"""`recalibrate`: a clinic's own labelled images set the temperature and the malignancy threshold."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edge.model.calibration import fit_temperature, proportion_interval
from edge.model.contract import ModelContract
from edge.model.modelfile import embed_contract, read_contract
from edge.model.recalibrate import SiteDataError, SiteImages, fit_site, main, site_report
from tests.conftest import make_folder_dataset, shared_data

CONTRACT = ModelContract(
    task="classify", labels=("nevus", "melanoma", "keratosis"), image_size=64, malignant_labels=("melanoma",),
    temperature=1.0, risk_threshold=0.5,
)  # fmt: skip


def _site(n: int = 1200, seed: int = 0) -> SiteImages:
    """A site where the model is under-confident about melanoma: the shipped threshold misses most of them."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += 2.0
    logits[:, 1] -= 1.5  # another camera: melanoma scores come out low
    return SiteImages(logits, y, y == 1)


def test_refitting_on_the_site_restores_the_sensitivity_on_new_images():
    site = _site()
    report = site_report(site, CONTRACT, sensitivity=0.9)
    assert report["before"]["sensitivity"] < 0.6  # the shipped operating point does not travel
    assert report["after_crossfit"]["sensitivity"] == pytest.approx(0.9, abs=0.03)  # measured on the unseen half
    temperature, threshold = fit_site(site, CONTRACT, sensitivity=0.9)
    assert threshold < CONTRACT.risk_threshold and temperature == pytest.approx(fit_temperature(site.logits, site.y))


def test_cross_fitted_figures_count_each_image_once():
    site = _site()
    after = site_report(site, CONTRACT)["after_crossfit"]
    c = after["counts"]
    assert c["malignant"] == site.malignant.sum() and c["benign"] == (~site.malignant).sum()
    assert after["sensitivity"] == c["caught"] / c["malignant"]


def test_the_interval_is_wilsons_and_narrows_with_more_cases():
    assert proportion_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)  # the textbook value
    assert proportion_interval(45, 50) == pytest.approx((0.7864, 0.9565), abs=1e-4)
    lo30, hi30 = proportion_interval(27, 30)
    lo300, hi300 = proportion_interval(270, 300)
    assert lo30 < lo300 < 0.9 < hi300 < hi30 and proportion_interval(10, 10)[1] == 1.0


def test_diagnoses_outside_the_models_classes_set_the_threshold_but_not_the_temperature():
    site = _site()
    unknown = SiteImages(site.logits, np.full_like(site.y, -1), site.malignant)  # e.g. benign / malignant folders
    temperature, _ = fit_site(unknown, CONTRACT)
    assert temperature == CONTRACT.temperature
    assert site_report(unknown, CONTRACT)["after_crossfit"]["ece"] is None


def test_too_few_malignant_images_is_refused():
    site = _site(60)
    few = SiteImages(site.logits, site.y, np.arange(60) < 5)
    with pytest.raises(SiteDataError, match="at least 10 malignant"):
        fit_site(few, CONTRACT)


def test_command_writes_a_recalibrated_copy_and_leaves_the_original(tiny_tflite, tmp_path):
    data = make_folder_dataset(tmp_path / "site", per_class=12)
    (data / "nevus" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    before = tiny_tflite.read_bytes()
    out = tmp_path / "site.tflite"
    result = CliRunner().invoke(main, [str(tiny_tflite), "--data", str(data), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "36 images: 12 malignant, 36 of the model's classes, 1 unreadable" in result.output
    assert "refitted (cross-fitted)" in result.output and "Not a diagnosis" in result.output
    assert "other --sensitivity targets" in result.output and "0.95 -> " in result.output
    assert "95 % interval of the refitted figures" in result.output and "(12 malignant images)" in result.output
    assert tiny_tflite.read_bytes() == before
    new, old = read_contract(out), read_contract(tiny_tflite)
    assert new.labels == old.labels and new.metrics["site_images"] == 36 and new.metrics["site_malignant_images"] == 12
    assert (new.temperature, new.risk_threshold) != (old.temperature, old.risk_threshold)


def test_command_errors_are_one_sentence(tiny_tflite, tmp_path):
    data = make_folder_dataset(tmp_path / "site", classes=("nevus", "melanoma"), per_class=4)
    runner = CliRunner()
    result = runner.invoke(main, [str(tiny_tflite), "--data", str(data), "--out", str(tmp_path / "x.tflite")])
    assert result.exit_code == 1 and "at least 10 malignant" in result.output and not (tmp_path / "x.tflite").exists()
    result = runner.invoke(main, [str(tmp_path / "none.tflite"), "--data", str(data), "--out", str(tmp_path / "y")])
    assert result.exit_code == 1 and "does not exist" in result.output
    result = runner.invoke(main, [str(tiny_tflite), "--data", str(data), "--out", str(tmp_path / "no" / "z.tflite")])
    assert result.exit_code == 1 and "cannot write" in result.output and "Traceback" not in result.output
    no_risk = tmp_path / "no_risk.tflite"
    contract = read_contract(tiny_tflite).replace(malignant_labels=())
    no_risk.write_bytes(embed_contract(tiny_tflite.read_bytes(), contract))
    result = runner.invoke(main, [str(no_risk), "--data", str(data), "--out", str(tmp_path / "w.tflite")])
    assert result.exit_code == 1 and "has no malignant classes" in result.output


def test_shipped_model_on_another_collection_gets_its_sensitivity_back(tmp_path):
    """Real data: the shipped file on PH2 (another clinic's dermatoscope), as a clinic would. The shipped file
    trained on 120 of PH2's 150 images, so this checks recalibrate on real images, not the file on a new site."""
    from tests.conftest import ROOT

    model = ROOT / "models" / "isic8_int8.tflite"
    out = tmp_path / "site.tflite"
    result = CliRunner().invoke(main, [str(model), "--data", str(shared_data("ph2")), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = {line[:26].strip(): line[26:].split() for line in result.output.splitlines() if "  " in line[20:30]}
    shipped, refitted = float(rows["this file as it is"][2]), float(rows["refitted (cross-fitted)"][2])
    # refitted on half, measured on the other, for 90 %: PH2 has 30 melanomas, so one image is 3.3 points
    # and the 95 % interval of the refitted sensitivity spans about 0.66-0.93
    assert 0 <= shipped <= 1 and refitted >= 0.8 and refitted > shipped
    assert read_contract(out).risk_threshold != read_contract(model).risk_threshold


def test_the_lesion_gate_threshold_is_refitted_on_the_site_images(tiny_tflite, tmp_path):
    """A file with a lesion gate: its threshold is refitted to refuse at most --max-refused of the clinic's images."""
    from convert.features import expose_features
    from convert.gate import fit_lesion_gate
    from edge.image.preprocess import load_image, preprocess
    from edge.model.classifier import Classifier
    from edge.model.lesion_gate import LesionGate
    from tests.conftest import synthetic_lesion

    rng = np.random.default_rng(0)
    lesions = np.stack([synthetic_lesion(rng, k % 3, size=64) for k in range(60)])
    converted = expose_features(tiny_tflite.read_bytes())
    contract, _ = fit_lesion_gate(read_contract(tiny_tflite), converted, lesions[:40], lesions[40:],
                                  np.zeros(20, int), ("synthetic",), max_refused=0.0)  # fmt: skip
    model = tmp_path / "gated.tflite"
    model.write_bytes(embed_contract(converted, contract))
    data = make_folder_dataset(tmp_path / "site", classes=("nevus", "melanoma", "keratosis"), per_class=12, seed=5)
    out = tmp_path / "clinic.tflite"
    result = CliRunner().invoke(main, [str(model), "--data", str(data), "--out", str(out), "--max-refused", "0.25"])
    assert result.exit_code == 0, result.output
    assert "'not a skin lesion' gate: threshold" in result.output
    clf = Classifier(model)
    scores = np.array([clf.run(preprocess(load_image(f), clf.contract)).lesion_score
                       for f in sorted(data.rglob("*.jpg"))])  # fmt: skip
    refitted = LesionGate.from_dict(read_contract(out).lesion_gate)
    assert refitted.threshold != clf.gate.threshold
    refused = (scores > refitted.threshold).mean()
    assert 0.1 < refused <= 0.25, refused  # refitted to the site: a quarter at most, not the file's own share
