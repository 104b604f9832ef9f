"""Screen lesion-gate designs on one file's own features, without converting again.

    python bench/gate_screen.py runs/all224_s0 --model runs/all224_s0/int8x1e4m.tflite
                                                   # bench/results/gate_screen.json (or --name)

RUN is the `train` run the file was converted from. The file's pooled features (every model's, as
the device computes them) are taken once for a sample of RUN's training side, its validation part, its
test parts and the 106 non-lesion images of bench/nonlesion.py; each design is then fitted on the
training sample, thresholded on validation as ``convert`` does (at most 2 % of each collection's
validation images refused) and scored by what the gate targets ask: the share of each test part set
aside (at most 3 %) and the share of non-lesion images refused (at least 95 %). The designs:

- one: one PPCA distance (edge/model/lesion_gate.py) on the features ``convert`` gives it (the file's
  own gate, refitted here on the sample: the check that the screen reproduces bench/gates.py);
- one, all features: the same on every model's features; one with 16 or 64 principal directions instead
  of 32; one fitted and thresholded with benign/malignant's images too;
- per collection: one PPCA a collection, benign/malignant's images included (they name no class, but a
  distance needs none), the score the smallest distance: a sharp image need only be near the sharp
  collections, a thumbnail near the thumbnails;
- per collection, all features;
- 2, 4 or 8 clusters: one PPCA a k-means cluster of the training features (no collection names needed).

Each is thresholded at 2 % (convert's default) and at 3 % of each collection's validation images. Features
are kept in the temporary folder between runs of one file, so designs are screened again in seconds.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
from nonlesion import non_lesion_images
from recipe import collection_names, scored_sets
from results import save

from edge.image.preprocess import preprocess
from edge.image.quality import ISSUES, assess_quality
from edge.model.lesion_gate import LesionGate, threshold_for
from edge.model.runtime import TFLiteModel
from training.runfolder import RunFolder
from training.splits import load_images
from training.train import read_collections

log = logging.getLogger(__name__)
COLOUR_ISSUE = ISSUES[4]  # the colour gate's (bench/gates.py)


def features(model: TFLiteModel, images) -> np.ndarray:
    out = []
    for image in images:
        model(np.ascontiguousarray(image))
        out.append(model.features().astype(np.float32))
    return np.stack(out)


def sample_of(paths: list[str], run: Path, contract, per_collection: int, seed: int = 0):
    """(images, collection names) of up to ``per_collection`` of ``paths`` from each of RUN's collections."""
    config = RunFolder(run).config()
    samples, _, origins, _ = read_collections(config)
    by_path = {str(s.path.resolve()): s for s in samples}
    names = collection_names(config)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(len(names)):
        ours = [by_path[p] for p in paths if p in by_path and origins[by_path[p].path] == c]
        pick = rng.permutation(len(ours))[:per_collection]
        chosen += [ours[i] for i in sorted(pick)]
    loaded = load_images(chosen, contract)
    return loaded.images, np.array([names[origins[s.path]] for s in loaded.samples])


class Mixture:
    """The smallest of several PPCA distances (one a group of training images)."""

    def __init__(self, gates: list[LesionGate]) -> None:
        self.gates = gates

    def score(self, f: np.ndarray) -> np.ndarray:
        return np.min([g.score(f) for g in self.gates], axis=0)


def clustered(x: np.ndarray, clusters: int, span: tuple[int, int], seed: int = 0) -> list[LesionGate]:
    """One PPCA a k-means cluster of the training features' directions (no collection names needed)."""
    from sklearn.cluster import KMeans

    unit = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-6)
    labels = KMeans(clusters, n_init=4, random_state=seed).fit_predict(unit)
    padded = np.zeros((len(x), span[1]), np.float32)
    padded[:, span[0] :] = x
    return [LesionGate.fit(padded[labels == c], span=span) for c in range(clusters)]


def judge(gate, feats: dict[str, np.ndarray], val_groups: dict[str, np.ndarray], nonlesion: np.ndarray,
          colourless: np.ndarray, max_refused: float = 0.02) -> dict:  # fmt: skip
    scores = {name: gate.score(f) for name, f in val_groups.items()}
    threshold = threshold_for(scores.values(), max_refused)
    aside = {name: round(float((gate.score(f) > threshold).mean()), 4) for name, f in feats.items()}
    refused = gate.score(nonlesion) > threshold
    return {"threshold": round(threshold, 3), "test_set_aside": aside, "worst_test_part": max(aside.values()),
            "non_lesion_refused": round(float(refused.mean()), 4),
            "non_lesion_refused_any_gate": round(float((refused | colourless).mean()), 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--model", type=Path, required=True, help="the converted file (its features are screened)")
    parser.add_argument("--per-collection", type=int, default=2000, help="training images sampled a collection")
    parser.add_argument("--name", default="gate_screen", help="the results file: bench/results/NAME.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from edge.model.modelfile import read_contract

    contract = read_contract(args.model)
    model = TFLiteModel(args.model, threads=2)
    own = LesionGate.from_dict(contract.lesion_gate)
    span = (own.start, own.start + own.dims)
    split = RunFolder(args.run).split()

    key = f"{args.model.parent.name}_{args.model.stem}_{args.per_collection}"
    cache = Path(tempfile.gettempdir()) / f"gate_screen_{key}.npz"
    if cache.exists():  # the features of one file do not change: designs are screened again in seconds
        c = np.load(cache, allow_pickle=True)
        train, train_names, val, val_names, photos, colourless = (c[k] for k in (
            "train", "train_names", "val", "val_names", "photos", "colourless"))  # fmt: skip
        tests = c["tests"].item()
    else:
        images, train_names = sample_of(split["train"], args.run, contract, args.per_collection)
        train = features(model, images)
        images, val_names = sample_of(split["validation"], args.run, contract, 10**9)
        val = features(model, images)
        del images
        tests = {s.name: features(model, s.images) for s in scored_sets(args.run, contract)}
        raw = [im for _, _, im in non_lesion_images()]
        photos = features(model, [preprocess(im, contract) for im in raw])
        colourless = np.array([COLOUR_ISSUE in assess_quality(im, contract.crop_fraction)["issues"] for im in raw])
        np.savez(cache, train=train, train_names=train_names, val=val, val_names=val_names, photos=photos,
                 colourless=colourless, tests=np.array(tests, dtype=object))  # fmt: skip
    log.info("features: %d training, %d validation, %d test, %d non-lesion images", len(train), len(val),
             sum(map(len, tests.values())), len(photos))  # fmt: skip

    classed = train_names != "benign_malignant"  # convert fits on collections with class names
    groups = sorted(set(train_names))
    full = (0, train.shape[1])
    designs = {
        "one (the file's)": LesionGate.fit(train[classed], span=span),
        "one, all features": LesionGate.fit(train[classed], span=full),
        "per collection": Mixture([LesionGate.fit(train[train_names == g], span=span) for g in groups]),
        "per collection, all features": Mixture([LesionGate.fit(train[train_names == g], span=full) for g in groups]),
    }
    for k in (16, 64):
        designs[f"one, k={k}"] = LesionGate.fit(train[classed], span=span, k=k)
    designs["one, fitted and thresholded with benign/malignant"] = LesionGate.fit(train, span=span)
    for clusters in (2, 4, 8):
        designs[f"{clusters} clusters"] = Mixture(clustered(train[classed][:, span[0] : span[1]], clusters, span))
    rows = []
    for name, gate in designs.items():
        # convert thresholds on collections with class names; a mixture fitted on benign/malignant too
        val_groups = {g: val[val_names == g] for g in sorted(set(val_names))
                      if name.startswith("per") or "benign/malignant" in name or g != "benign_malignant"}  # fmt: skip
        for max_refused in (0.02, 0.03):
            rows.append({"design": name, "max_refused": max_refused,
                         **judge(gate, tests, val_groups, photos, colourless, max_refused)})  # fmt: skip
            log.info("%s", rows[-1])
    command = f"python bench/gate_screen.py {args.run} --model {args.model}"
    save(args.name, command, model=str(args.model), per_collection=args.per_collection, rows=rows)


if __name__ == "__main__":
    main()
