"""Print, as JSON, a SHA-256 of every preprocessed model input: one per model contract and image.

    python bench/pi_probe.py FOLDER MODEL.tflite [MODEL.tflite ...]

bench/pi_check.py runs it on x86 and in the emulated Raspberry Pi: the digests must be equal, so any
difference left between the platforms' answers is the runtime's, not the preprocessing's.
Edge-only: NumPy, OpenCV and the model files' embedded contracts.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from edge.image.preprocess import IMAGE_SUFFIXES, ImageError, load_image, preprocess
from edge.model.modelfile import read_contract


def main() -> None:
    folder, models = Path(sys.argv[1]), [Path(m) for m in sys.argv[2:]]
    contracts = {m.name: read_contract(m) for m in models}
    digests = {}
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            image = load_image(path)
        except ImageError:
            continue
        for name, contract in contracts.items():
            tensor = preprocess(image, contract)
            digests[f"{name}:{path.name}"] = hashlib.sha256(tensor.tobytes()).hexdigest()[:16]
    json.dump(digests, sys.stdout, indent=0)


if __name__ == "__main__":
    main()
