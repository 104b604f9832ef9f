"""`recalibrate`: fit a converted model's temperature and malignancy threshold to a clinic's own images.

The operating point chosen on a training collection's validation split does not carry over to other
devices and clinics (docs/BENCHMARKS.md, "Another collection"). Given labelled images from the
site's own camera, this refits the temperature (on images whose diagnosis is one of the model's
classes) and the threshold that flags ``--sensitivity`` of the malignant ones, and the "not a skin lesion"
gate's threshold so that it refuses at most ``--max-refused`` of the site's images; it reports what to
expect on new images (two-fold cross-fitting: fit on one half, measure on the other), and writes
a copy of the file with the new contract. Edge install only: no TensorFlow; no image is written.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import click
import numpy as np

from edge.datasets import FORMATS
from edge.image.preprocess import ImageError, load_image, preprocess
from edge.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    proportion_interval,
    risk_threshold_for_sensitivity,
)
from edge.model.classifier import Classifier, calibrated_probabilities
from edge.model.contract import ContractError, ModelContract
from edge.model.lesion_gate import LesionGate, threshold_for
from edge.model.modelfile import embed_contract, write_atomic

__all__ = ["SiteDataError", "SiteImages", "fit_site", "gate_report", "main", "site_report"]

log = logging.getLogger(__name__)

MIN_PER_GROUP = 10  # malignant and benign images each, for a threshold worth the name
OTHER_SENSITIVITIES = (0.8, 0.85, 0.9, 0.95)  # the trade-off printed beside the chosen target


@dataclass(frozen=True)
class SiteImages:
    """A site's classified images: logits, class index (-1: not one of the model's classes), malignant or not."""

    logits: np.ndarray
    y: np.ndarray
    malignant: np.ndarray
    lesion_scores: np.ndarray | None = None  # the lesion gate's distances (None: the file has no gate)


def _fit(site: SiteImages, idx: np.ndarray, contract: ModelContract, sensitivity: float) -> tuple[float, float]:
    """(temperature, threshold) fitted on the images ``idx``."""
    known = idx[site.y[idx] >= 0]
    t = (
        fit_temperature(site.logits[known], site.y[known])
        if len(np.unique(site.y[known])) > 1
        else contract.temperature
    )
    risk = _risk(site.logits[idx], t, contract)
    return t, float(np.floor(risk_threshold_for_sensitivity(risk, site.malignant[idx], sensitivity) * 1e4) / 1e4)


def _risk(logits: np.ndarray, temperature: float, contract: ModelContract) -> np.ndarray:
    return calibrated_probabilities(logits, temperature)[:, list(contract.malignant_indices)].sum(1)


def _scores(site: SiteImages, idx: np.ndarray, t: float, threshold: float, contract: ModelContract) -> dict:
    flagged = _risk(site.logits[idx], t, contract) >= threshold
    mal = site.malignant[idx]
    known = idx[site.y[idx] >= 0]
    ece = (
        expected_calibration_error(calibrated_probabilities(site.logits[known], t), site.y[known])
        if len(known)
        else None
    )
    counts = {
        "caught": int(flagged[mal].sum()),
        "malignant": int(mal.sum()),
        "passed": int((~flagged[~mal]).sum()),
        "benign": int((~mal).sum()),
    }
    return _rates(counts, ece)


def _rates(counts: dict[str, int], ece: float | None) -> dict:
    """Sensitivity and specificity from flag counts (one home for both the file's and the refitted figures)."""
    return {
        "sensitivity": counts["caught"] / max(counts["malignant"], 1),
        "specificity": counts["passed"] / max(counts["benign"], 1),
        "ece": ece,
        "counts": counts,
    }


class SiteDataError(ValueError):
    """Too few labelled images to set an operating point."""


def fit_site(site: SiteImages, contract: ModelContract, sensitivity: float = 0.9) -> tuple[float, float]:
    """(temperature, threshold) fitted on every site image.

    Raises:
        SiteDataError: fewer than MIN_PER_GROUP malignant or benign images.
    """
    n_mal = int(site.malignant.sum())
    if min(n_mal, len(site.malignant) - n_mal) < MIN_PER_GROUP:
        raise SiteDataError(
            f"recalibration needs at least {MIN_PER_GROUP} malignant and {MIN_PER_GROUP} benign images, "
            f"got {n_mal} and {len(site.malignant) - n_mal}"
        )
    return _fit(site, np.arange(len(site.y)), contract, sensitivity)


def site_report(site: SiteImages, contract: ModelContract, sensitivity: float = 0.9, seed: int = 0) -> dict:
    """The file's own operating point on the site images, and the refitted one cross-fitted over two halves."""
    everything = np.arange(len(site.y))
    before = _scores(site, everything, contract.temperature, contract.risk_threshold, contract)
    order = np.random.default_rng(seed).permutation(len(site.y))
    halves = []
    for mal in (True, False):  # stratified: each half gets half the malignant images
        group = order[site.malignant[order] == mal]
        halves.append((group[: len(group) // 2], group[len(group) // 2 :]))
    a = np.concatenate([halves[0][0], halves[1][0]])
    b = np.concatenate([halves[0][1], halves[1][1]])
    folds = []
    for fit_idx, test_idx in ((a, b), (b, a)):
        t, threshold = _fit(site, fit_idx, contract, sensitivity)
        folds.append((len(test_idx), _scores(site, test_idx, t, threshold, contract)))
    counts = {key: sum(s["counts"][key] for _, s in folds) for key in before["counts"]}  # each image tested once
    eces = [s["ece"] for _, s in folds]
    ece = None if None in eces else float(np.average(eces, weights=[n for n, _ in folds]))
    return {"before": before, "after_crossfit": _rates(counts, ece)}


def gate_report(scores: np.ndarray, gate: LesionGate, max_refused: float = 0.02, seed: int = 0) -> dict:
    """The lesion gate on a site's images: the threshold refitted on all of them, the share the file refuses as
    it is, and the share a threshold refitted on one half refuses of the other (both ways)."""
    order = np.random.default_rng(seed).permutation(len(scores))
    a, b = order[: len(order) // 2], order[len(order) // 2 :]
    folds = ((a, b), (b, a))
    refused = sum(int((scores[test] > threshold_for([scores[fit]], max_refused)).sum()) for fit, test in folds)
    return {
        "threshold": threshold_for([scores], max_refused),
        "refused_before": float((scores > gate.threshold).mean()),
        "refused_crossfit": refused / max(len(scores), 1),
    }


def _load(data: Path, fmt: str, clf: Classifier) -> tuple[SiteImages, list[tuple[str, str]]]:
    from edge.datasets import load_dataset, map_label, to_binary

    contract = clf.contract
    binary_model = set(contract.labels) == {"benign", "malignant"}
    logits, y, malignant, scores, skipped = [], [], [], [], []
    with click.progressbar(load_dataset(data, fmt).samples, label="classifying", file=sys.stderr) as samples:
        for s in samples:
            try:
                out = clf.run(preprocess(load_image(s.path), contract))
                logits.append(out.logits)
                scores.append(out.lesion_score)
            except (ImageError, OSError) as exc:
                skipped.append((str(s.path), str(exc)))
                continue
            name = map_label(to_binary(s.label) if binary_model else s.label, contract.labels)
            y.append(contract.labels.index(name) if name else -1)
            malignant.append(to_binary(s.label) == "malignant")
    lesion_scores = np.array(scores, dtype=float) if clf.gate is not None else None
    return SiteImages(np.array(logits), np.array(y), np.array(malignant, dtype=bool), lesion_scores), skipped


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data", required=True, type=click.Path(path_type=Path),
    help="The site's labelled images in any layout `train` reads (a folder per diagnosis, HAM10000 CSV, ISIC CSV, "
    "a CSV of image_id,diagnosis); diagnoses the model does not know, or plain benign / malignant folders, still "
    "set the threshold.",
)  # fmt: skip
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Where to write the recalibrated copy.")
@click.option(
    "--sensitivity", type=click.FloatRange(0.5, 1.0), default=0.9, help="Share of malignant images the flag must catch."
)
@click.option(
    "--format", "fmt", type=click.Choice(["auto", *FORMATS]), default="auto",
    help="Layout of --data (detected when auto).",
)  # fmt: skip
@click.option(
    "--max-refused",
    type=click.FloatRange(0, 0.5),
    default=0.02,
    help="The 'not a skin lesion' gate's threshold is refitted to refuse at most this share of the site's images.",
)
@click.option(
    "--sign-key",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="KEY.pem",
    help="Sign OUT with this Ed25519 private key (OUT.sig), for kiosks that require signed model files.",
)
def main(model: Path, data: Path, out: Path, sensitivity: float, fmt: str, max_refused: float,
         sign_key: Path | None) -> None:  # fmt: skip
    """Refit MODEL's temperature and malignancy threshold on a clinic's own labelled images; write a copy to OUT.

    Prints the file's operating point on these images, and what to expect from the refitted one on
    new images (fitted on one half, measured on the other, both ways). Reads the images, writes
    only OUT. Not a medical device: the flag means "show a clinician", nothing more.
    """
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from edge.datasets import DatasetError

    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK):
        raise click.ClickException(f"cannot write {out}: {out.parent} is not a writable folder")
    try:
        clf = Classifier(model, threads=1)
        if not clf.contract.malignant_labels:
            raise ContractError(f"{model} has no malignant classes: it has no malignancy threshold to set")
        site, skipped = _load(data, fmt, clf)
        for path, why in skipped:
            log.warning("skipped %s: %s", path, why)
        temperature, threshold = fit_site(site, clf.contract, sensitivity)
        report = site_report(site, clf.contract, sensitivity)
    except (FileNotFoundError, ContractError, DatasetError, SiteDataError) as exc:
        raise click.ClickException(str(exc)) from None
    gate = None
    if site.lesion_scores is not None and len(site.lesion_scores):  # scores exist only with a gate
        gate = gate_report(site.lesion_scores, clf.gate, max_refused)
    contract = clf.contract.replace(
        temperature=round(temperature, 4),
        risk_threshold=threshold,
        lesion_gate=clf.gate.with_threshold(gate["threshold"]).to_dict() if gate else clf.contract.lesion_gate,
        metrics={
            **clf.contract.metrics,
            "site_images": len(site.y),
            "site_malignant_images": int(site.malignant.sum()),
            "site_sensitivity_crossfit": round(report["after_crossfit"]["sensitivity"], 4),
            "site_specificity_crossfit": round(report["after_crossfit"]["specificity"], 4),
            "site_recalibrated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    from edge.model.signing import sign_or_clear

    try:
        write_atomic(out, embed_contract(model.read_bytes(), contract))
        sign_or_clear(out, sign_key)
    except OSError as exc:
        raise click.ClickException(f"cannot write {out}: {exc.strerror or exc}") from None
    except ContractError as exc:
        raise click.ClickException(f"cannot sign {out}: {exc}") from None
    b, a = report["before"], report["after_crossfit"]
    n_known, n_mal = int((site.y >= 0).sum()), int(site.malignant.sum())
    click.echo(f"{len(site.y)} images: {n_mal} malignant, {n_known} of the model's classes, {len(skipped)} unreadable")
    click.echo(f"{'':26s}{'threshold':>10s}{'T':>8s}{'sensitivity':>13s}{'specificity':>13s}{'ECE':>7s}")
    rows = (("this file as it is", clf.contract.risk_threshold, clf.contract.temperature, b),
            ("refitted (cross-fitted)", threshold, temperature, a))  # fmt: skip
    for name, thr, t, m in rows:
        ece = "n/a" if m["ece"] is None else f"{m['ece']:.3f}"
        click.echo(f"{name:26s}{thr:10.4f}{t:8.3f}{m['sensitivity']:13.3f}{m['specificity']:13.3f}{ece:>7s}")
    others = [x for x in OTHER_SENSITIVITIES if abs(x - sensitivity) > 1e-9]
    trade = ", ".join(
        f"{x:.2f} -> {m['sensitivity']:.2f} / {m['specificity']:.2f}"
        for x, m in ((x, site_report(site, clf.contract, x)["after_crossfit"]) for x in others)
    )
    c = a["counts"]
    (s_lo, s_hi), (p_lo, p_hi) = (proportion_interval(c["caught"], c["malignant"]),
                                  proportion_interval(c["passed"], c["benign"]))  # fmt: skip
    click.echo(
        f"95 % interval of the refitted figures: sensitivity {s_lo:.2f}-{s_hi:.2f} ({c['malignant']} malignant "
        f"images), specificity {p_lo:.2f}-{p_hi:.2f} ({c['benign']} benign); more labelled images narrow it"
    )
    click.echo(f"other --sensitivity targets, cross-fitted sensitivity / specificity: {trade}")
    if gate:
        click.echo(
            f"'not a skin lesion' gate: threshold {clf.gate.threshold:.2f} -> {gate['threshold']:.2f}; refuses "
            f"{gate['refused_before']:.1%} of these images as the file is, {gate['refused_crossfit']:.1%} refitted "
            "(cross-fitted)"
        )
    click.echo(f"wrote {out}. Not a diagnosis: a flag means 'show this lesion to a clinician'.")
