"""Does a model score smoothed images better than images as they are? (the resampling gap)

    python bench/resampling_gap.py runs/isic9_224_sog_long --split train

For the run's Keras model on one side of its split.json: accuracy and balanced accuracy of the
images as the contract preprocesses them, after a Gaussian blur of sigma 0.6 px, and turned by one
degree (bilinear, reflected border). A large gain from smoothing means training saw only resampled
images. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from edge.image.preprocess import load_image, preprocess
from edge.model.contract import load_contract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder (model.keras, contract.json, split.json)")
    parser.add_argument("--split", choices=["validation", "train"], default="validation")
    args = parser.parse_args()

    import keras
    from sklearn.metrics import balanced_accuracy_score

    contract = load_contract(args.run / "contract.json")
    paths = json.loads((args.run / "split.json").read_text())[args.split]
    y = np.array([contract.labels.index(Path(p).parent.name) for p in paths])  # folder-per-class runs
    x = np.stack([preprocess(load_image(p), contract) for p in paths])
    model = keras.models.load_model(args.run / "model.keras", compile=False)
    turn = cv2.getRotationMatrix2D((x.shape[2] / 2, x.shape[1] / 2), 1.0, 1.0)
    views = {
        "as is": x,
        "gaussian blur 0.6 px": np.stack([cv2.GaussianBlur(i, (0, 0), 0.6) for i in x]),
        "turned 1 degree": np.stack(
            [cv2.warpAffine(i, turn, i.shape[1::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT) for i in x]
        ),
    }
    out = {}
    for name, v in views.items():
        pred = model.predict(v.astype("float32"), batch_size=64, verbose=0).argmax(1)
        out[name] = {
            "accuracy": round(float((pred == y).mean()), 3),
            "balanced": round(balanced_accuracy_score(y, pred), 3),
        }
    print(json.dumps({"run": str(args.run), "split": args.split, "images": len(y)} | out, indent=1))


if __name__ == "__main__":
    main()
