"""`convert` for a segmentation run: quantize, then prove the TFLite masks match the Keras masks.

Fidelity here is mask overlap: the per-image IoU between the Keras model's and the converted
model's lesion masks on the run's validation split (mean and worst image). Both models are also
scored against the expert masks with the ISIC 2018 Task 1 metrics.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.datasets import DatasetError
from edge.model.contract import ModelContract
from edge.model.segment import mask_from_logits
from training.runfolder import RunFolder
from training.segment.data import find_mask_pairs, load_segmentation_data, split_pairs
from training.segment.metrics import mask_agreement, segmentation_metrics

__all__ = [
    "SegmentConvertError",
    "SegmentData",
    "convert_segmenter",
    "format_segment_report",
    "load_segment_data",
    "segment_fidelity",
]

log = logging.getLogger(__name__)


class SegmentConvertError(ValueError):
    """A segmentation run cannot be converted (bad data, bad model, or fidelity below the bar)."""


@dataclass
class SegmentData:
    representative: np.ndarray  # (R, S, S, 3) uint8, never validation images
    validation: np.ndarray  # (V, S, S, 3) uint8
    validation_masks: np.ndarray  # (V, S, S) uint8 0/1


def load_segment_data(
    data: Path, contract: ModelContract, run_dir: Path | None, samples: int, seed: int = 0
) -> SegmentData:
    """Representative images from the training side of ``data`` (and of the other folders the run trained on
    with it); validation from the run's split.json.

    Without a split.json (or when none of its validation images is in ``data``) a grouped 20%
    hold-out of ``data`` is made here, as training does.
    """
    from convert.representative import more_collections

    try:
        pairs = [pair for folder in (data, *more_collections(run_dir, data)) for pair in find_mask_pairs(folder)]
    except DatasetError as exc:
        raise SegmentConvertError(str(exc)) from exc
    split = RunFolder(run_dir).split() if run_dir else None
    val_names = set((split or {}).get("validation", []))
    trained = set((split or {}).get("train", []))  # without the images --hold-out left out
    val_pairs = [p for p in pairs if str(p.image) in val_names]
    train_pairs = [p for p in pairs if str(p.image) in trained or (not trained and str(p.image) not in val_names)]
    if not val_pairs:
        loaded = load_segmentation_data(pairs, contract)
        if len(loaded.pairs) < 4:
            raise SegmentConvertError(f"only {len(loaded.pairs)} readable image/mask pairs in {data}; need at least 4")
        train_idx, val_idx = split_pairs(loaded, 0.2, seed)
        train_pairs, val_pairs = [loaded.pairs[i] for i in train_idx], [loaded.pairs[i] for i in val_idx]
    pick = np.random.default_rng(seed).permutation(len(train_pairs))[:samples]
    if len(pick) < min(samples, 10):
        raise SegmentConvertError(f"only {len(pick)} representative images available in {data}; need at least 10")
    rep = load_segmentation_data([train_pairs[i] for i in pick], contract)
    val = load_segmentation_data(list(val_pairs), contract)
    log.info("representative set: %d images; validation set: %d images", len(rep.pairs), len(val.pairs))
    return SegmentData(rep.images, val.images, val.masks)


def _masks(logits: np.ndarray | list[np.ndarray], size: int) -> np.ndarray:
    return np.stack([mask_from_logits(lg, size) for lg in logits])


def segment_fidelity(
    keras_logits: np.ndarray, lite_logits: list[np.ndarray], truths: np.ndarray, size: int
) -> dict[str, Any]:
    """Mask IoU between the two models, and each model's ISIC 2018 Task 1 scores against ``truths``."""
    km, lm = _masks(keras_logits, size), _masks(lite_logits, size)
    keep = ("mean_jaccard", "thresholded_jaccard", "mean_dice", "min_jaccard", "below_threshold")
    ks, ls = segmentation_metrics(km, truths), segmentation_metrics(lm, truths)
    agreement = mask_agreement(km, lm)
    return {
        "n": int(len(truths)),
        "mask_iou": {"mean": agreement["mean_iou"], "min": agreement["min_iou"]},
        "keras": {k: ks[k] for k in keep},
        "tflite": {k: ls[k] for k in keep},
    }


def format_segment_report(report: dict[str, Any]) -> str:
    """A short table for the terminal."""
    k, t, iou = report["keras"], report["tflite"], report["mask_iou"]
    lines = [
        f"fidelity on {report['n']} validation images ({report['mode']} segmenter):",
        f"  mask IoU with Keras mean / min  {iou['mean']:.4f} / {iou['min']:.4f}",
        f"  {'':30s}{'keras':>9s}{report['mode']:>9s}",
        *(
            f"  {name:30s}{k[key]:9.4f}{t[key]:9.4f}"
            for name, key in (
                ("mean Jaccard", "mean_jaccard"),
                ("thresholded Jaccard (0.65)", "thresholded_jaccard"),
                ("mean Dice", "mean_dice"),
            )
        ),
        f"  file size                       {report['size_bytes'] / 1e6:.2f} MB",
    ]
    if "latency_ms" in report:
        lat = report["latency_ms"]
        lines.append("  latency (1 thread, median)      " + ", ".join(f"{n} {v:.2f} ms" for n, v in lat.items()))
    return "\n".join(lines)


def convert_segmenter(
    model_path: Path,
    run_dir: Path | None,
    contract: ModelContract,
    data: Path,
    out: Path,
    *,
    mode: str = "int8",
    samples: int = 300,
    min_iou: float = 0.95,
    force: bool = False,
    fast_hardswish: bool = True,
    seed: int = 0,
    show: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Convert a segmentation run, check its masks against Keras, write the .tflite and sidecars.

    Writes ``out`` (contract embedded), ``<out>.fidelity.json`` and ``<out>.contract.json``, as
    the classifier path does. ``show`` receives the fidelity table (default: the log).

    Returns:
        The fidelity report.

    Raises:
        SegmentConvertError: unusable model or data, or mean mask IoU below ``min_iou`` without ``force``.
    """
    import keras

    from convert.fidelity import candidate_outputs, latency_against_float32
    from convert.quantize import QuantizeConfig, quantize, tiny_scales
    from edge.model.modelfile import embed_contract, write_atomic

    try:
        model = keras.models.load_model(model_path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise SegmentConvertError(f"cannot load {model_path} as a Keras model: {str(exc).splitlines()[0]}") from None
    shape = tuple(model.output_shape)
    if len(shape) != 4 or shape[-1] != 1:
        raise SegmentConvertError(f"{model_path} is not a segmenter: output shape {shape}, expected (N, H, W, 1)")
    cdata = load_segment_data(data, contract, run_dir, samples, seed)
    config = QuantizeConfig.int8(cdata.representative, fast_hardswish) if mode == "int8" else None
    log.info("converting %s to %s", model_path, mode)
    converted = quantize(model, config or QuantizeConfig(mode))
    for name, scale in tiny_scales(converted) if mode == "int8" else []:
        log.warning("tensor %s has a degenerate quantization scale %.2e (a layer that never fired?)", name, scale)

    size = contract.image_size
    keras_logits = model.predict(cdata.validation.astype("float32"), batch_size=16, verbose=0)
    lite_logits = candidate_outputs(converted, cdata.validation)
    report = segment_fidelity(keras_logits, lite_logits, cdata.validation_masks, size)
    report.update(
        mode=mode, size_bytes=len(converted), source=str(model_path), data=str(data),
        fast_hardswish=fast_hardswish, representative_samples=len(cdata.representative),
    )  # fmt: skip
    report["latency_ms"] = latency_against_float32(model, converted, mode, cdata.validation[0])
    (show or log.info)(format_segment_report(report))

    iou = report["mask_iou"]
    contract = contract.replace(
        metrics={
            **contract.metrics,
            f"{mode}_mask_iou": round(iou["mean"], 4),
            f"{mode}_mean_jaccard": round(report["tflite"]["mean_jaccard"], 4),
        }
    )
    if iou["mean"] < min_iou and mode != "float32":
        message = (
            f"{mode} masks overlap the Keras masks by a mean IoU of {iou['mean']:.3f} (worst image {iou['min']:.3f}) "
            f"on {report['n']} validation images, below --min-mask-iou {min_iou:.2f}"
        )
        if not force:
            raise SegmentConvertError(message + ". Nothing written; use --force to write it anyway.")
        log.warning("%s; writing anyway (--force)", message)
    try:
        write_atomic(out, embed_contract(converted, contract))
        write_atomic(out.with_suffix(".fidelity.json"), json.dumps(report, indent=2).encode())
        write_atomic(out.with_suffix(".contract.json"), contract.to_json().encode())
    except OSError as exc:
        raise SegmentConvertError(f"cannot write {out}: {exc.strerror or exc}") from None
    return report
