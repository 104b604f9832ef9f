"""A light U-Net-style lesion segmenter on a MobileNetV3-Small encoder, and its loss.

The encoder is MobileNetV3-Small (ImageNet weights, batch norm re-parametrised like the
classifier's); the decoder upsamples the stride-32 features step by step, joining the encoder's
stride-16, 8, 4 and 2 features (skip connections), each step one separable convolution. The
output is a 1-channel logit mask at half the input resolution.
"""

from __future__ import annotations

import logging

import keras

from training.model import ARCHS

__all__ = ["SKIP_LAYERS", "bce_dice_loss", "build_segmenter", "dice_loss"]

log = logging.getLogger(__name__)

# MobileNetV3-Small layers whose outputs feed the decoder, deepest first (strides 32, 16, 8, 4).
SKIP_LAYERS = ("expanded_conv_10_add", "expanded_conv_7_add", "expanded_conv_2_add", "expanded_conv_project_bn")
_DECODER_WIDTHS = (64, 48, 32, 24)  # channels after each upsampling step (strides 16, 8, 4, 2)


def _stem_activation(backbone: keras.Model) -> keras.layers.Layer:
    """The stride-2 feature: the layer right after the stem convolution's batch norm."""
    layers = backbone.layers
    return layers[layers.index(backbone.get_layer("conv_bn")) + 1]


def _decoder_block(x, skip, filters: int, name: str):
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_up")(x)
    x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
    x = keras.layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_sepconv")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def build_segmenter(
    image_size: int = 224, arch: str = "small", weights: str | None = None
) -> tuple[keras.Model, keras.Model]:
    """The encoder-decoder segmenter.

    Args:
        image_size: square input side in pixels, a multiple of 32.
        arch: only "small" (the skip layers are MobileNetV3-Small's).
        weights: a weights file for the backbone (``training.model.resolve_weights``) or None.

    The model takes RGB float pixels in [0, 255] (rescaling is inside the graph) and returns
    (image_size/2, image_size/2, 1) lesion logits.

    Returns:
        (model, backbone): the backbone is the full MobileNetV3 whose layers the encoder shares,
        for freezing and batch-norm re-parametrisation.

    Raises:
        ValueError: ``image_size`` is not a multiple of 32 or ``arch`` is not "small".
    """
    if arch != "small":
        raise ValueError(f"segmentation supports arch 'small' only, got {arch!r}")
    if image_size % 32 or image_size < 64:
        raise ValueError(f"segmentation needs an image size that is a multiple of 32 (64 or more), got {image_size}")
    backbone = ARCHS[arch](
        input_shape=(image_size, image_size, 3), include_top=False, weights=weights, include_preprocessing=True
    )
    for layer in backbone.layers:  # as in build_classifier: BN statistics must track fine-tuning
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    features = [backbone.get_layer(name).output for name in SKIP_LAYERS] + [_stem_activation(backbone).output]
    encoder = keras.Model(backbone.input, features, name="encoder")

    inputs = keras.Input((image_size, image_size, 3), name="image")
    deepest, *skips = encoder(inputs)
    x = deepest
    for k, (skip, filters) in enumerate(zip(skips, _DECODER_WIDTHS)):
        x = _decoder_block(x, skip, filters, f"decoder{k + 1}")
    outputs = keras.layers.Conv2D(1, 1, name="mask_logits")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_v3_{arch}_segmenter"), backbone


def dice_loss(y_true, logits, smooth: float = 1.0):
    """1 - soft Dice per image, averaged over the batch (targets may be soft, in [0, 1])."""
    from keras import ops

    p = ops.sigmoid(logits)
    axes = (1, 2, 3)
    inter = ops.sum(p * y_true, axis=axes)
    total = ops.sum(p, axis=axes) + ops.sum(y_true, axis=axes)
    return 1.0 - ops.mean((2.0 * inter + smooth) / (total + smooth))


def bce_dice_loss(y_true, logits):
    """Binary cross-entropy on logits plus Dice loss."""
    from keras import ops

    bce = ops.mean(ops.binary_crossentropy(y_true, logits, from_logits=True))
    return bce + dice_loss(y_true, logits)
