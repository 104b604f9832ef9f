"""Walking a Keras functional model, nested models included: its layers and who reads what."""

from __future__ import annotations

__all__ = ["all_layers", "consumers"]


def all_layers(model) -> list:
    """Every layer of ``model``, with nested functional models replaced by their own layers."""
    import keras

    out = []
    for layer in model.layers:
        out.extend(all_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def consumers(model) -> dict[int, list]:
    """id(operation) -> the operations that read its output, over every nested functional model."""
    import keras

    out: dict[int, list] = {}
    for depth_nodes in model._nodes_by_depth.values():
        for node in depth_nodes:
            for tensor in node.input_tensors:
                producer = tensor._keras_history.operation
                out.setdefault(id(producer), []).append(node.operation)
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            out.update(consumers(layer))
    return out
