"""Quantization-aware fine-tuning: teach the Keras model to survive int8 before converting it.

Post-training int8 quantization of a fine-tuned MobileNetV3 loses most of its signal in the early
depthwise layers: they are edge detectors, and dermoscopy images are smooth, so the quantization
noise of each activation passes through while the signal is filtered away (docs/BENCHMARKS.md).
Here the model is fine-tuned *with* that noise: every tensor the int8 converter quantizes gets a
fake-quant op with the range the converter will pick (min/max over the representative set) and
every kernel is fake-quantized per output channel after folding its batch norm, as TFLite does.
The loss distils the original model's outputs, dropout off on both sides, so the fine-tuned
model learns to keep the original's answers under int8 arithmetic. The result is an ordinary float
Keras model, converted by the usual post-training path with the same representative set.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from convert.graph import all_layers, consumers
from convert.quantize import decomposed_hard_swish, decomposed_hard_swish_layer, pin_input_range

__all__ = ["QATConfig", "quantization_aware_finetune"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QATConfig:
    epochs: int = 6
    learning_rate: float = 3e-5
    batch_size: int = 32
    temperature: float = 1.0  # distillation temperature
    seed: int = 0


@functools.cache
def _fake_quant_layer():
    import keras
    import tensorflow as tf

    class FakeQuant(keras.layers.Layer):
        """Asymmetric per-tensor int8 fake quantization with a calibrated [lo, hi] range."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.calibrating = False

        def build(self, input_shape):
            self.lo = self.add_weight(shape=(), initializer="zeros", trainable=False, name="lo")
            self.hi = self.add_weight(shape=(), initializer="zeros", trainable=False, name="hi")

        def compute_output_shape(self, input_shape):
            return input_shape

        def call(self, x):
            if self.calibrating:  # eager only: widen the range to what this batch needs
                self.lo.assign(tf.minimum(self.lo, tf.reduce_min(x)))
                self.hi.assign(tf.maximum(self.hi, tf.reduce_max(x)))
                return x
            return tf.quantization.fake_quant_with_min_max_vars(x, self.lo, self.hi, num_bits=8)

    return FakeQuant


def _quantized_kernel(kernel, fold):
    """Per-output-channel symmetric int8 fake quantization of ``kernel * fold``, divided back.

    ``fold`` is the following batch norm's gamma / sqrt(var + eps) (ones when there is none): the
    converter quantizes the folded kernel, so that is the one whose rounding matters.
    """
    import tensorflow as tf

    folded = kernel * fold
    axes = list(range(len(folded.shape) - 1))
    bound = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(folded), axis=axes), 1e-8))
    quantized = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        folded, -bound, bound, num_bits=8, narrow_range=True
    )
    return quantized / fold


@functools.cache
def _quantized_kernel_layer():  # one class per process, so isinstance works
    import keras
    import tensorflow as tf

    class QuantizedKernel(keras.layers.Layer):
        """Runs a Conv2D, DepthwiseConv2D or Dense layer with its (BN-folded) kernel fake-quantized."""

        def __init__(self, layer, batchnorm=None, **kwargs):
            super().__init__(name=f"{layer.name}_int8", **kwargs)
            self.layer = layer
            self.batchnorm = batchnorm
            self.calibrating = False  # float kernels, as the converter has when it calibrates

        def _fold(self, channels: int):
            bn = self.batchnorm
            if bn is None:
                return tf.ones(channels)
            gamma = bn.gamma if bn.scale else 1.0
            return tf.stop_gradient(gamma / tf.sqrt(bn.moving_variance + bn.epsilon))

        def compute_output_shape(self, input_shape):
            return self.layer.compute_output_shape(input_shape)

        def call(self, x):
            op = self.layer
            if self.calibrating:
                return op(x)
            if isinstance(op, keras.layers.DepthwiseConv2D):  # kernel (kh, kw, C, M): per output channel C*M
                shape = op.kernel.shape
                k = tf.reshape(op.kernel, (*shape[:2], 1, shape[2] * shape[3]))
                k = tf.reshape(_quantized_kernel(k, self._fold(k.shape[-1])), shape)
                y = tf.nn.depthwise_conv2d(x, k, (1, *op.strides, 1), op.padding.upper(), dilations=op.dilation_rate)
            elif isinstance(op, keras.layers.Conv2D):
                k = _quantized_kernel(op.kernel, self._fold(op.kernel.shape[-1]))
                y = tf.nn.conv2d(x, k, (1, *op.strides, 1), op.padding.upper(), dilations=op.dilation_rate)
            else:
                y = tf.matmul(x, _quantized_kernel(op.kernel, self._fold(op.kernel.shape[-1])))
            if op.use_bias:
                y = y + op.bias
            return op.activation(y)

    return QuantizedKernel


@functools.cache
def _simulated_hard_swish_layer():
    import keras

    class SimulatedHardSwish(keras.layers.Layer):
        """The decomposed hard-swish ``(x / 6) * relu6(x + 3)`` with its two inner int8 tensors fake-quantized."""

        def __init__(self, sixth, gate, **kwargs):
            super().__init__(**kwargs)
            self.sixth, self.gate = sixth, gate

        def compute_output_shape(self, input_shape):
            return input_shape

        def call(self, x):
            return decomposed_hard_swish(x, self.sixth, self.gate)

    return SimulatedHardSwish


class _Simulator:
    """Builds the fake-quant twin of a classifier via ``keras.models.clone_model(call_function=...)``."""

    def __init__(self, model) -> None:
        import keras

        self.keras = keras
        self.consumers = consumers(model)
        self.fake_quants: list = []
        self.fq_cls = _fake_quant_layer()
        self.kernel_cls = _quantized_kernel_layer()
        self.hard_swish_cls = decomposed_hard_swish_layer()
        self.bn_after = {}  # id(conv) -> its batch norm
        for op_id, ops in self.consumers.items():
            if len(ops) == 1 and isinstance(ops[0], keras.layers.BatchNormalization):
                self.bn_after[op_id] = ops[0]

    def _fused_into_next(self, op) -> bool:
        """True when the converter folds this op's output into the next op (conv+BN, +ReLU, +3)."""
        keras = self.keras
        nxt = self.consumers.get(id(op), [])
        if len(nxt) != 1:
            return False
        n = nxt[0]
        producer_fuses = isinstance(
            op, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.BatchNormalization)
        ) or _is_scalar_op(op, "Add")
        consumer_fuses = isinstance(n, (keras.layers.BatchNormalization, keras.layers.ReLU)) or _is_scalar_op(n, "Add")
        return producer_fuses and consumer_fuses

    def call(self, op, *args, **kwargs):
        keras = self.keras
        if isinstance(op, keras.Model):
            return op(*args, **kwargs)
        if isinstance(op, keras.layers.Conv2D | keras.layers.DepthwiseConv2D | keras.layers.Dense):
            y = self.kernel_cls(op, self.bn_after.get(id(op)))(*args)
        elif isinstance(op, self.hard_swish_cls):  # three int8 tensors: x / 6, relu6(x + 3), their product
            sixth, gate = self._fake_quant(f"{op.name}_sixth"), self._fake_quant(f"{op.name}_gate")
            y = _simulated_hard_swish_layer()(sixth, gate, name=f"{op.name}_int8")(*args)
        else:
            y = op(*args, **kwargs)
        if self._fused_into_next(op) or isinstance(op, keras.layers.Dropout | keras.layers.InputLayer):
            return y
        return self._fake_quant(f"{op.name}_fq")(y)

    def _fake_quant(self, name: str):
        fq = self.fq_cls(name=name)
        self.fake_quants.append(fq)
        return fq


def _is_scalar_op(op, name: str) -> bool:
    """An ``x + 3.0`` style keras op (not a layer) in the functional graph."""
    import keras

    return not isinstance(op, keras.layers.Layer) and type(op).__name__ == name


def _dihedral(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip and quarter turn of the batch: new views without resampling the pixels."""
    if rng.random() < 0.5:
        images = images[:, :, ::-1]
    return np.rot90(images, k=int(rng.integers(4)), axes=(1, 2))


def _simulated(model):
    import keras

    sim = _Simulator(model)
    twin = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=sim.call, recursive=True)
    return twin, sim.fake_quants


def _calibrate(twin, fake_quants: list, representative: np.ndarray) -> None:
    """Set every fake-quant range to min/max over ``representative``, as the converter calibrates.

    The converter calibrates the float model, so the kernels stay float while the ranges are
    measured (with int8 kernels the deeper ranges drift by up to 10 % from the file's).
    """
    simulated = fake_quants + [layer for layer in all_layers(twin) if isinstance(layer, _quantized_kernel_layer())]
    for fq in fake_quants:
        fq.lo.assign(0.0)
        fq.hi.assign(0.0)
    for layer in simulated:
        layer.calibrating = True
    try:
        for start in range(0, len(representative), 32):
            batch = representative[start : start + 32].astype("float32")
            twin(pin_input_range(batch) if start == 0 else batch, training=False)
    finally:
        for layer in simulated:
            layer.calibrating = False


def quantization_aware_finetune(
    model,
    train_images: np.ndarray,
    representative: np.ndarray,
    config: QATConfig = QATConfig(),
):
    """Fine-tune a copy of ``model`` under simulated int8; return (float copy, fake-quant twin).

    The returned weights are the average of the second half of the epochs' end weights.

    ``train_images`` are uint8 (N, S, S, 3) training images (never validation ones); the loss is
    the KL divergence from the original model's softened outputs, so no labels are needed.
    """
    import keras
    import tensorflow as tf

    teacher = model
    student = keras.models.clone_model(model)
    student.set_weights(model.get_weights())
    for layer in all_layers(student):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # inference statistics, so the folded kernels are what we quantize
    twin, fake_quants = _simulated(student)
    _calibrate(twin, fake_quants, representative)
    log.info("quantization-aware fine-tuning: %d fake-quant points, %d images", len(fake_quants), len(train_images))

    t = config.temperature
    optimizer = keras.optimizers.Adam(config.learning_rate)
    trainable = list(twin.trainable_weights)

    @tf.function(reduce_retracing=True)
    def step(x):
        target = tf.nn.softmax(teacher(x, training=False) / t)
        with tf.GradientTape() as tape:
            logits = twin(x, training=False)  # no dropout: match the teacher, not a noisy copy of it
            loss = tf.reduce_mean(keras.losses.kl_divergence(target, tf.nn.softmax(logits / t))) * t * t
        grads = tape.gradient(loss, trainable)
        optimizer.apply_gradients(zip(grads, trainable))
        return loss

    keras.utils.set_random_seed(config.seed)  # dropout draws
    rng = np.random.default_rng(config.seed)
    averaged: list[np.ndarray] | None = None
    first_averaged = config.epochs // 2
    for epoch in range(config.epochs):
        order = rng.permutation(len(train_images))
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = _dihedral(train_images[order[start : start + config.batch_size]], rng)
            losses.append(float(step(tf.constant(batch.astype("float32")))))
        log.info("QAT epoch %d/%d: distillation loss %.4f", epoch + 1, config.epochs, float(np.mean(losses)))
        _calibrate(twin, fake_quants, representative)  # the ranges follow the weights
        if epoch >= first_averaged:  # average the later epochs' weights: a steadier result than the last
            weights = student.get_weights()
            n = epoch - first_averaged
            averaged = weights if averaged is None else [(a * n + w) / (n + 1) for a, w in zip(averaged, weights)]
    if averaged is not None:
        student.set_weights(averaged)
    _calibrate(twin, fake_quants, representative)
    return student, twin
