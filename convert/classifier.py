"""Convert a trained classifier to TFLite, as library stages: load -> representative data -> (int8-aware
fine-tuning) -> (average models and flipped views) -> quantize -> expose the features -> check fidelity ->
calibrate -> fit the lesion gate -> gate on agreement -> write. ``convert`` (convert/cli.py) is a thin command over it.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.model.contract import ModelContract
from training.runfolder import RunFolder

__all__ = ["ClassifierOptions", "ConvertError", "convert_classifier"]

log = logging.getLogger(__name__)


class ConvertError(Exception):
    """An expected failure, said in one sentence: nothing was written."""


@dataclass(frozen=True)
class ClassifierOptions:
    """How to convert (the ``convert`` options of the same names)."""

    mode: str = "int8"  # or "float16", "float32"
    samples: int = 300  # representative images
    min_agreement: float = 0.97  # top-1 agreement with Keras on the images it labels, or nothing is written
    force: bool = False  # write even below min_agreement
    qat_epochs: int = 0  # int8-aware fine-tuning first
    qat_lr: float = 3e-5
    threshold_on: tuple[Path, ...] = ()  # collections whose validation images set the malignancy threshold
    max_refused: float = 0.02  # the lesion gate's share of refused validation images; 0 = no gate
    views: int = 1  # flipped views averaged inside the file (1, 2 or 4)
    zoom: float | None = None  # and the same views of the image's central square of this side, enlarged
    ensemble: tuple[Path, ...] = ()  # more models (model.keras of runs on the same split) averaged inside the file
    seed: int = 0


def convert_classifier(
    model_path: Path, run_dir: Path | None, contract: ModelContract, data: Path, out: Path, o: ClassifierOptions
) -> dict[str, Any]:
    """Convert ``model_path`` and write ``out`` (contract embedded), ``<out>.fidelity.json`` and
    ``<out>.contract.json``; returns the fidelity report.

    Raises:
        ConvertError: the model or data cannot be used, the file would disagree with Keras below
            ``min_agreement``, or ``out`` cannot be written.
    """
    import numpy as np

    from convert.calibration import recalibrate
    from convert.features import FeaturesError, expose_features
    from convert.fidelity import candidate_outputs, fidelity_report, format_report, latency_against_float32
    from convert.quantize import QuantizeConfig, edge_friendly, quantize, tiny_scales
    from convert.representative import RepresentativeError, load_convert_data
    from convert.views import at_size, averaged, flipped
    from edge.model.modelfile import embed_contract, write_atomic

    models = [_load_keras(path, contract) for path in (model_path, *o.ensemble)]
    if any(_size(m) > contract.image_size for m in models):
        raise ConvertError(f"an --ensemble model takes a larger input than the source's {contract.image_size} px")
    models.sort(key=_size)  # an ensemble of input sizes: the smallest models' features first, for the lesion gate
    try:
        cdata = load_convert_data(
            data,
            contract,
            run_dir,
            o.samples,
            o.seed,
            with_training=o.qat_epochs > 0,
            threshold_on=o.threshold_on,
            gate_samples=5000 if o.max_refused else 0,
        )
    except RepresentativeError as exc:
        raise ConvertError(str(exc)) from None

    config = QuantizeConfig.int8(cdata.representative) if o.mode == "int8" else QuantizeConfig(o.mode)
    sources, twins = models, []
    if o.qat_epochs:  # each model on its own, then averaged: the views and models share its weights
        from convert.qat import QATConfig, quantization_aware_finetune

        qat = QATConfig(epochs=o.qat_epochs, learning_rate=o.qat_lr, seed=o.seed)
        tuned = [quantization_aware_finetune(edge_friendly(m), at_size(cdata.training, _size(m)),
                                             at_size(cdata.representative, _size(m)), qat)
                 for m in models]  # fmt: skip  # edge_friendly: the graph that will be converted
        sources, twins = [s for s, _ in tuned], [t for _, t in tuned]
    source_model = averaged(sources, o.views, o.zoom)
    if o.views != 1 or len(models) > 1 or o.zoom:
        log.info("the file answers on the average of %d model(s) over %d flipped view(s) of each image%s",
                 len(models), o.views, f" and of its central {o.zoom:.0%}, enlarged" if o.zoom else "")  # fmt: skip
    log.info("converting %s to %s", model_path, o.mode)
    converted = quantize(source_model, config)
    for name, scale in tiny_scales(converted) if o.mode == "int8" else []:
        log.warning("tensor %s has a degenerate quantization scale %.2e (a layer that never fired?)", name, scale)
    if o.max_refused:
        try:
            converted = expose_features(converted)  # the lesion gate reads them on the device
        except FeaturesError as exc:
            message = f"cannot give the file a lesion gate: {exc}; --max-refused 0 leaves it out"
            raise ConvertError(message) from None

    seen = flipped(cdata.validation, o.views, o.zoom)

    def keras_answers(ms: list[Any]) -> np.ndarray:  # the Keras models as the file answers: the same average
        return np.mean([m.predict(at_size(v, _size(m)).astype("float32"), batch_size=64, verbose=0)
                        for m in ms for v in seen], axis=0)  # fmt: skip

    keras_logits = keras_answers(models)
    lite_logits = np.stack(candidate_outputs(converted, cdata.validation))
    report = fidelity_report(keras_logits, lite_logits, cdata.validation_labels, contract)
    report.update(
        mode=o.mode, size_bytes=len(converted), source=_portable(model_path), data=_portable(data),
        representative_samples=len(cdata.representative),
    )  # fmt: skip
    if o.ensemble:
        report["ensemble"] = [_portable(p) for p in o.ensemble]
    if o.qat_epochs:
        twin_logits = keras_answers(twins)
        report["qat"] = {
            "epochs": o.qat_epochs, "learning_rate": o.qat_lr, "images": len(cdata.training),
            # how faithfully the simulated int8 model predicts the file's answers
            "simulated_agreement_with_file": float((twin_logits.argmax(1) == lite_logits.argmax(1)).mean()),
            "simulated_agreement_with_keras": float((twin_logits.argmax(1) == keras_logits.argmax(1)).mean()),
        }  # fmt: skip
    reference = averaged(models, o.views, o.zoom)
    report["latency_ms"] = latency_against_float32(reference, converted, o.mode, cdata.validation[0])
    report["views"] = o.views
    if o.zoom:
        report["zoom"] = o.zoom
    if len({_size(m) for m in models}) > 1:
        report["input_sizes"] = [_size(m) for m in models]
    log.info("%s", format_report(report))

    target = (RunFolder(run_dir).saved_config() if run_dir else {}).get("sensitivity", 0.9)
    contract, report["calibration"] = recalibrate(
        contract, keras_logits, lite_logits, cdata.validation_labels, cdata.threshold_on, target
    )
    log.info(
        "calibrated the %s model on validation: temperature %.3f (Keras %.3f), ECE %.3f (cross-fitted)", o.mode,
        contract.temperature, report["calibration"]["temperature_keras"], report["calibration"]["ece_crossfit"],
    )  # fmt: skip
    contract = contract.replace(metrics=_file_metrics(contract, lite_logits, cdata.validation_labels, report, o.mode))
    if o.max_refused:
        from convert.gate import fit_lesion_gate
        from convert.representative import collection_names

        contract, report["lesion_gate"] = fit_lesion_gate(
            contract, converted, cdata.gate, cdata.validation, cdata.validation_collection,
            collection_names(data, run_dir), o.max_refused, span=_gate_span(models),
        )  # fmt: skip
    report_path = out.with_suffix(".fidelity.json")
    if report["label_agreement"] < o.min_agreement and o.mode != "float32":
        worst = sorted(report["disagreements_by_keras_class"].items(), key=lambda kv: -kv[1])[:3]
        names = ", ".join(f"{n} ({c})" for n, c in worst) or "none"
        message = (
            f"{o.mode} model agrees with Keras on {report['label_agreement']:.1%} of the {report['labelled']} "
            f"validation images Keras labels, below --min-agreement {o.min_agreement:.0%}; "
            f"most disagreements on: {names}"
        )
        if not o.force:
            hint = "" if o.qat_epochs else " Try --qat-epochs 1 (int8-aware fine-tuning, ~3 min on the README recipe);"
            raise ConvertError(
                f"{message}. Nothing written.{hint} --min-agreement sets the gate, --force writes it anyway."
            )
        log.warning("%s; writing anyway (--force)", message)
    try:
        final = embed_contract(converted, contract)
        report["size_bytes"] = len(final)  # with its contract (and lesion gate)
        write_atomic(out, final)
        write_atomic(report_path, json.dumps(report, indent=2).encode())
        write_atomic(out.with_suffix(".contract.json"), contract.to_json().encode())
    except OSError as exc:
        raise ConvertError(f"cannot write {out}: {exc.strerror or exc}") from None
    return report


def _load_keras(path: Path, contract: ModelContract) -> Any:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # Keras raises many types for a bad file
        raise ConvertError(f"cannot load {path} as a Keras model: {str(exc).splitlines()[0]}") from None
    if model.output_shape[-1] != len(contract.labels):
        raise ConvertError(f"{path} has {model.output_shape[-1]} outputs but {len(contract.labels)} labels")
    return model


def _size(model: Any) -> int:
    return int(model.input_shape[1])


def _gate_span(models: list[Any]) -> tuple[int, int] | None:
    """The features the lesion gate reads: all of them, or in an ensemble of input sizes only the smallest
    models' (first, once sorted): at 224 px, sharp dermoscopy sits nearly as far from the thumbnail-trained
    features as photographs do (docs/BENCHMARKS.md, "The 224 px file")."""
    from convert.views import feature_spans

    smallest = sum(_size(m) == _size(models[0]) for m in models)
    return None if smallest == len(models) else (0, feature_spans(models)[smallest - 1][1])


def _portable(path: Path) -> str:
    """``path`` relative to where convert ran (e.g. ``../shared/data/isic9/train``), never one machine's
    absolute path; an absolute one only when no relative path exists."""
    try:
        return os.path.relpath(Path(path).resolve())
    except ValueError:  # another drive
        return str(path)


def _file_metrics(
    contract: ModelContract, lite_logits: np.ndarray, y: np.ndarray, report: dict, mode: str
) -> dict[str, float]:
    """The converted file's own validation metrics (its calibrated answers), for its contract; the Keras
    model's figures stay beside them, named as such."""
    from edge.model.classifier import calibrated_probabilities
    from training.evaluate import classification_metrics

    own = classification_metrics(y, calibrated_probabilities(lite_logits, contract.temperature), contract)
    keras = {f"keras_{k}": v for k, v in contract.metrics.items() if not k.startswith(("keras_", "int8_", "float"))}
    keys = ("accuracy", "balanced_accuracy", "macro_auc", "malignant_auc")
    return {**keras, **{k: round(own[k], 4) for k in keys if own.get(k) is not None},
            f"{mode}_agreement": round(report["agreement"], 4), "views": report.get("views", 1),
            **({"zoom": report["zoom"]} if "zoom" in report else {})}  # fmt: skip
