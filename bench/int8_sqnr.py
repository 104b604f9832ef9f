"""Where does int8 lose the signal? Layer-by-layer SQNR of an int8 model against float32.

    python bench/int8_sqnr.py runs/isic9_ham models/isic9_int8.tflite --images 40

Prints, for every activation tensor the two models share, the signal-to-quantization-noise ratio
(dB) of the int8 tensor against the float32 one on images of the run's split (validation unless
--split train); then how often the float32 model itself changes its answer under +-1/2/4 levels
of pixel noise, the agreement of a weights-only int8 model and that of the given int8 model.
Needs the [train] extra (TensorFlow converts float32).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from convert.fidelity import candidate_outputs
from edge.image.preprocess import load_image, preprocess
from edge.model.contract import load_contract


def _interpreter(content: bytes):
    """An interpreter that keeps every intermediate tensor readable after invoke()."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the "debugging only" warning of preserve_all_tensors
        interp = Interpreter(model_content=content, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    return interp


def _logits(content: bytes, images: np.ndarray) -> np.ndarray:
    return np.stack(candidate_outputs(content, images))


def _activations(content: bytes, images: np.ndarray) -> tuple[list[str], dict[str, np.ndarray]]:
    """Every float or per-tensor-quantized activation, dequantized, concatenated over images."""
    interp = _interpreter(content)
    inp = interp.get_input_details()[0]
    details = sorted(interp.get_tensor_details(), key=lambda t: t["index"])
    acts: dict[str, list[np.ndarray]] = {}
    for image in images:
        interp.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interp.invoke()
        for t in details:
            scales, zeros = t["quantization_parameters"]["scales"], t["quantization_parameters"]["zero_points"]
            if len(t["shape"]) < 2 or t["shape"][0] != 1 or len(scales) > 1:
                continue  # weights, biases, per-channel tensors
            try:
                v = interp.get_tensor(t["index"]).astype(np.float64)
            except ValueError:
                continue
            if len(scales) == 1:
                v = (v - zeros[0]) * scales[0]
            acts.setdefault(t["name"], []).append(v.ravel())
    return [t["name"] for t in details], {k: np.concatenate(v) for k, v in acts.items()}


def _sqnr(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(reference**2) / max(np.mean((test - reference) ** 2), 1e-30)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (model.keras, contract.json, split.json)")
    parser.add_argument("model", type=Path, help="the int8 .tflite converted from it")
    parser.add_argument("--images", type=int, default=40, help="images for the layer table")
    parser.add_argument("--split", choices=("validation", "train"), default="validation",
                        help="which side of the run's split.json to measure on")  # fmt: skip
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from convert.quantize import QuantizeConfig, quantize

    contract = load_contract(args.run / "contract.json")
    split = json.loads((args.run / "split.json").read_text())
    images = np.stack([preprocess(load_image(p), contract) for p in split[args.split]])
    model = keras.models.load_model(args.run / "model.keras", compile=False)
    float32 = quantize(model, QuantizeConfig("float32"))
    int8 = args.model.read_bytes()

    order, ref = _activations(float32, images[: args.images])
    _, test = _activations(int8, images[: args.images])
    print(f"SQNR (dB) of int8 activations against float32, {args.images} {args.split} images")
    for name in order:
        if name in ref and name in test and ref[name].shape == test[name].shape and ref[name].size > 256:
            short = "/".join(name.split(";")[-1].split("/")[-3:])
            print(f"{_sqnr(ref[name], test[name]):6.1f}  {short}")

    top = _logits(float32, images).argmax(1)
    rng = np.random.default_rng(0)
    for level in (1, 2, 4):
        noisy = np.clip(images.astype(int) + rng.integers(-level, level + 1, images.shape), 0, 255)
        flips = np.mean(_logits(float32, noisy.astype(np.uint8)).argmax(1) != top)
        print(f"float32 answers changed by +-{level} pixel levels of noise: {flips:.3f}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # int8 weights, float activations
    with contextlib.redirect_stdout(io.StringIO()):  # Keras lists the exported variables
        weights_only = converter.convert()
    print(f"weights-only int8 agreement: {np.mean(_logits(weights_only, images).argmax(1) == top):.3f}")
    print(f"full int8 agreement: {np.mean(_logits(int8, images).argmax(1) == top):.3f} ({len(images)} images)")


if __name__ == "__main__":
    main()
