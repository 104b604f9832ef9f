"""Does the converted model still agree with the Keras model? Measured on the validation split."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from edge.model.classifier import calibrated_probabilities, is_uncertain
from edge.model.contract import ModelContract
from edge.model.runtime import TFLiteModel

__all__ = [
    "as_files",
    "candidate_outputs",
    "fidelity_report",
    "format_report",
    "latency_against_float32",
    "measure_latency",
]


@contextmanager
def as_files(models: dict[str, bytes]) -> Iterator[dict[str, Path]]:
    """Model bytes as files in a temporary folder (the runtime loads files), name -> path."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = {name: Path(tmp) / f"{name}.tflite" for name in models}
        for name, data in models.items():
            paths[name].write_bytes(data)
        yield paths


def candidate_outputs(converted: bytes, images: np.ndarray) -> list[np.ndarray]:
    """The converted model's float output for each image, run by the edge runtime."""
    with as_files({"candidate": converted}) as paths:
        model = TFLiteModel(paths["candidate"])
        return [model(image) for image in images]


def latency_against_float32(keras_model, converted: bytes, mode: str, image: np.ndarray) -> dict[str, float]:
    """Median invoke ms of the converted model and of a float32 conversion of the same model."""
    from convert.quantize import QuantizeConfig, quantize

    models = {mode: converted}
    if mode != "float32":
        models["float32"] = quantize(keras_model, QuantizeConfig("float32"))
    with as_files(models) as paths:
        return measure_latency(paths, image)


def measure_latency(paths: dict[str, Path], image: np.ndarray, runs: int = 50, threads: int = 1) -> dict[str, float]:
    """Median invoke time in ms per model, runs interleaved so machine noise hits all alike."""
    models = {name: TFLiteModel(path, threads=threads) for name, path in paths.items()}
    for m in models.values():
        m(image)  # warm-up
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(runs):
        for name, m in models.items():
            start = time.perf_counter()
            m(image)
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: float(np.median(t)) for name, t in times.items()}


def shows_label(probs: np.ndarray, contract: ModelContract) -> np.ndarray:
    """Where a person sees a label: wherever the edge's one "uncertain" rule does not apply."""
    return ~np.asarray(is_uncertain(probs, contract), dtype=bool).reshape(len(probs))


def fidelity_report(
    keras_logits: np.ndarray, lite_logits: np.ndarray, y: np.ndarray, contract: ModelContract
) -> dict[str, Any]:
    """Agreement (top-1, where a label is shown, the malignancy flag), accuracy of both models, probability
    differences and per-class recall change."""
    pk = calibrated_probabilities(keras_logits, contract.temperature)
    pl = calibrated_probabilities(lite_logits, contract.temperature)
    ak, al = pk.argmax(1), pl.argmax(1)
    labels = list(contract.labels)
    idx = list(range(len(labels)))
    rk = recall_score(y, ak, labels=idx, average=None, zero_division=0)
    rl = recall_score(y, al, labels=idx, average=None, zero_division=0)
    diff = np.abs(pk - pl)
    disagree = ak != al
    worst = np.bincount(ak[disagree], minlength=len(labels))
    shown = shows_label(pk, contract)
    report = {
        "n": int(len(y)),
        "agreement": float((~disagree).mean()),
        # what a person sees: the label wherever the original model is confident enough to show one (the rest
        # read "uncertain"); all images when it labels none
        "labelled": int(shown.sum()),
        "label_agreement": float((~disagree[shown]).mean() if shown.any() else (~disagree).mean()),
        "keras": {"accuracy": float(accuracy_score(y, ak)), "balanced_accuracy": float(balanced_accuracy_score(y, ak))},
        "tflite": {
            "accuracy": float(accuracy_score(y, al)),
            "balanced_accuracy": float(balanced_accuracy_score(y, al)),
        },
        "mean_prob_diff": float(diff.mean()),
        "max_prob_diff": float(diff.max()),
        "recall_change": {labels[i]: float(rl[i] - rk[i]) for i in idx},
        "disagreements_by_keras_class": {labels[i]: int(worst[i]) for i in idx if worst[i]},
    }
    if contract.malignant_indices:  # the flag a person sees: both read through the Keras model's threshold
        report["flag_agreement"] = flag_agreement(pk, pl, contract, contract.risk_threshold)
    return report


def flag_agreement(keras_p: np.ndarray, lite_p: np.ndarray, contract: ModelContract, threshold: float) -> float:
    """The share of images whose malignancy flag the two models raise alike, both at ``threshold``."""
    bad = list(contract.malignant_indices)
    return float(((keras_p[:, bad].sum(1) >= threshold) == (lite_p[:, bad].sum(1) >= threshold)).mean())


def format_report(report: dict[str, Any]) -> str:
    """A short table for the terminal."""
    k, t = report["keras"], report["tflite"]
    lines = [
        f"fidelity on {report['n']} validation images ({report['mode']}):",
        f"  top-1 agreement with Keras  {report['agreement']:.4f}",
        f"  ... where Keras shows a label {report['label_agreement']:.4f} ({report['labelled']} images)",
        *([f"  malignancy flag agreement    {report['flag_agreement']:.4f}"] if "flag_agreement" in report else []),
        f"  {'':28s}{'keras':>9s}{report['mode']:>9s}",
        f"  {'accuracy':28s}{k['accuracy']:9.4f}{t['accuracy']:9.4f}",
        f"  {'balanced accuracy':28s}{k['balanced_accuracy']:9.4f}{t['balanced_accuracy']:9.4f}",
        f"  probability diff mean / max  {report['mean_prob_diff']:.4f} / {report['max_prob_diff']:.4f}",
        f"  file size                    {report['size_bytes'] / 1e6:.2f} MB",
    ]
    if "latency_ms" in report:
        lat = report["latency_ms"]
        lines.append("  latency (1 thread, median)   " + ", ".join(f"{n} {v:.2f} ms" for n, v in lat.items()))
    changed = {n: v for n, v in report["recall_change"].items() if abs(v) > 1e-9}
    if changed:
        lines.append("  recall change: " + ", ".join(f"{n} {v:+.3f}" for n, v in changed.items()))
    return "\n".join(lines)
