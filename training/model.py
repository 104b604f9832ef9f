"""Build MobileNetV3 classifiers and make offline ImageNet weights fine-tunable."""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
from pathlib import Path

import keras
import numpy as np

__all__ = ["ARCHS", "build_classifier", "reparametrize_batchnorm", "resolve_weights"]

log = logging.getLogger(__name__)

ARCHS = {
    "small": keras.applications.MobileNetV3Small,
    "large": keras.applications.MobileNetV3Large,
    # ReLU, 3x3 kernels, no squeeze-excite: the parts of MobileNetV3 that int8 handles worst are gone
    "large-minimalistic": functools.partial(keras.applications.MobileNetV3Large, minimalistic=True),
}
_SHIPPED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"
_OFFLINE = {
    "small": "mobilenet_v3_small_224_imagenet_no_top.weights.h5",
    "large-minimalistic": "mobilenet_v3_large_minimalistic_224_imagenet_no_top.weights.h5",
}


def resolve_weights(weights: str, arch: str) -> str | None:
    """Map ``imagenet|none|PATH|RUN`` to what Keras takes: ImageNet weights come from an offline file
    (``../shared/weights``); Keras' own download is tried only when online; a ``train`` run folder
    gives its trained backbone (a second stage at another input size: convolutions do not depend on it).

    Raises:
        FileNotFoundError: a weights PATH is missing, no ImageNet weights are at hand offline, or a
            run folder holds no model of this ``arch``.
    """
    if weights == "none":
        return None
    if weights == "imagenet":
        offline = _SHIPPED_WEIGHTS / _OFFLINE.get(arch, "-")
        if offline.is_file():
            log.info("using offline ImageNet weights %s", offline)
            return str(offline)
        if not _online():
            raise FileNotFoundError(
                f"no ImageNet weights for --arch {arch} at hand offline ({_SHIPPED_WEIGHTS} has none) and the "
                "internet is out of reach: pass --weights PATH or --weights none"
            )
        return "imagenet"  # Keras downloads them
    path = Path(weights)
    if path.is_dir():
        return _backbone_of_run(path, arch)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    return str(path)


def _backbone_of_run(run: Path, arch: str) -> str:
    """The backbone of ``run``'s trained model as a weights file (written once, in the cache)."""
    from training.pipeline import cache_dir
    from training.runfolder import RunFolder

    folder = RunFolder(run).require()
    model_path = folder.model_file
    trained = folder.contract().arch
    if trained != f"mobilenet_v3_{arch.replace('-', '_')}":
        raise FileNotFoundError(f"{run} trained {trained}, not --arch {arch}: no backbone of that kind there")
    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()[:16]
    out = cache_dir().parent / "backbones" / f"{digest}.weights.h5"
    if not out.is_file():
        model = keras.saving.load_model(model_path, compile=False)
        backbone = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        out.parent.mkdir(parents=True, exist_ok=True)
        backbone.save_weights(out.with_suffix(".tmp.weights.h5"))  # Keras wants the suffix
        out.with_suffix(".tmp.weights.h5").replace(out)
    log.info("using the trained backbone of %s", run)
    return str(out)


def _online(host: str = "storage.googleapis.com") -> bool:
    """Whether Keras' weight downloads could work (a name lookup; no data is sent)."""
    try:
        socket.getaddrinfo(host, 443)
        return True
    except OSError:
        return False


def build_classifier(
    num_classes: int,
    image_size: int = 224,
    arch: str = "small",
    weights: str | None = None,
    dropout_rate: float = 0.2,
) -> tuple[keras.Model, keras.Model]:
    """A MobileNetV3 backbone + pooling + dropout + dense logits.

    The model takes RGB float pixels in [0, 255] (rescaling is inside the graph) and returns
    logits; calibration (temperature) is applied outside, from the contract.

    Returns:
        (model, backbone) so callers can freeze and unfreeze the backbone.
    """
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    backbone = ARCHS[arch](
        input_shape=(image_size, image_size, 3),
        include_top=False,
        weights=weights,
        include_preprocessing=True,
    )
    # Keras sets momentum 0.999: with ~50 steps an epoch the moving statistics then lag the
    # fine-tuned weights and validation (inference mode) swings wildly. 0.9 tracks them.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = backbone(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout_rate, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits", dtype="float32")(x)  # float32 under mixed precision
    name = f"mobilenet_v3_{arch.replace('-', '_')}_classifier"
    return keras.Model(inputs, outputs, name=name), backbone


def reparametrize_batchnorm(backbone: keras.Model, images: np.ndarray, batch_size: int = 16) -> int:
    """Give folded batch-norm layers real statistics without changing the function.

    The offline weights fold batch norm into the convolutions (each BN is identity + bias), so
    fine-tuning with BN in training mode has no working normalisation. For each BN layer this
    measures its input's per-channel mean m and variance v on ``images`` and sets
    moving_mean=m, moving_variance=v, gamma=s*sqrt(v+eps), beta=t+s*m, where s and t are the
    layer's current scale and shift: the inference output stays the same.

    Returns:
        How many BN layers were re-parametrised.
    """
    bns = [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not bns:
        return 0
    probe = keras.Model(backbone.input, [bn.input for bn in bns])
    sums = [None] * len(bns)
    sq = [None] * len(bns)
    for start in range(0, len(images), batch_size):
        acts = probe(images[start : start + batch_size].astype("float32"), training=False)
        for k, a in enumerate(acts):
            a = np.asarray(a, dtype=np.float64).reshape(-1, a.shape[-1])
            sums[k] = a.sum(0) if sums[k] is None else sums[k] + a.sum(0)
            sq[k] = (a * a).sum(0) if sq[k] is None else sq[k] + (a * a).sum(0)
    for k, bn in enumerate(bns):
        total = int(np.prod(bn.input.shape[1:-1])) * len(images)
        m = sums[k] / total
        v = np.maximum(sq[k] / total - m * m, 1e-6)
        gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in bn.get_weights())
        s = gamma / np.sqrt(var + bn.epsilon)
        t = beta - mean * s
        bn.set_weights(
            [
                (s * np.sqrt(v + bn.epsilon)).astype("float32"),
                (t + s * m).astype("float32"),
                m.astype("float32"),
                v.astype("float32"),
            ]
        )
    return len(bns)
