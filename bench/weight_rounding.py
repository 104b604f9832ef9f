"""How much do int8 *weights* alone cost, rounded to nearest or data-aware? (activations stay float)

    python bench/weight_rounding.py runs/isic9_224_half_r2

For the run's Keras model on its validation split: top-1 agreement with itself after every kernel
is put on its symmetric per-output-channel int8 grid (the converter's weight format), rounded to
nearest and with convert/rounding.py (statistics from 300 training-side images); then the layers
whose nearest rounding alone costs most. Prints JSON. Needs the [train] extra.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from convert.graph import all_layers
from convert.rounding import nearest_kernel, round_weights
from edge.model.contract import load_contract
from training.datasets import Sample
from training.evaluate import predict_logits
from training.splits import load_images


def main() -> None:
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="training run folder (model.keras, contract.json, split.json)")
    parser.add_argument("--top", type=int, default=5, help="layers to list")
    args = parser.parse_args()
    split = json.loads((args.run / "split.json").read_text())
    contract = load_contract(args.run / "contract.json")
    validation = [Sample(Path(p), name) for p, name in zip(split["validation"], split["validation_labels"])]
    training = [Sample(Path(p), "") for p in split["train"]]
    images = load_images(validation, contract).images
    pick = np.random.default_rng(0).choice(len(training), min(300, len(training)), replace=False)
    representative = load_images([training[i] for i in sorted(pick)], contract).images

    model = keras.saving.load_model(args.run / "model.keras")
    top = predict_logits(model, images).argmax(1)

    def agreement(m) -> float:
        return round(float(np.mean(predict_logits(m, images).argmax(1) == top)), 3)

    kernels = [
        layer
        for layer in all_layers(model)
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense)
    ]
    alone = []
    for layer in kernels:
        original = np.asarray(layer.kernel)
        layer.kernel.assign(nearest_kernel(original, isinstance(layer, keras.layers.DepthwiseConv2D)))
        alone.append((agreement(model), layer.name))
        layer.kernel.assign(original)
    for layer in kernels:
        layer.kernel.assign(nearest_kernel(np.asarray(layer.kernel), isinstance(layer, keras.layers.DepthwiseConv2D)))
    nearest_all = agreement(model)
    model = keras.saving.load_model(args.run / "model.keras")
    aware, count = round_weights(model, representative)
    result = {
        "run": str(args.run),
        "validation_images": len(images),
        "kernels": count,
        "agreement_nearest": nearest_all,
        "agreement_data_aware": agreement(aware),
        "worst_layers_nearest_alone": [{"layer": n, "agreement": a} for a, n in sorted(alone)[: args.top]],
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
