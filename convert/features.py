"""Give a converted classifier a second output: the pooled features its logits are computed from.

The lesion gate (:mod:`edge.model.lesion_gate`) scores those features on the device. They already
exist inside the file (the input of the final FULLY_CONNECTED op), so exposing them costs no compute:
the tensor is listed as an output after the logits, in the subgraph and in its signature.
"""

from __future__ import annotations

import flatbuffers

__all__ = ["FEATURES_OUTPUT", "FeaturesError", "expose_features"]

FEATURES_OUTPUT = "features"


class FeaturesError(ValueError):
    """The file's graph does not end in pooled features and a dense layer."""


def expose_features(model_bytes: bytes) -> bytes:
    """``model_bytes`` with the final dense layer's input as a second output (a file that already has
    two outputs is returned as it is).

    Raises:
        FeaturesError: the logits are not made by a FULLY_CONNECTED op on a (1, D) tensor.
    """
    from ai_edge_litert import schema_py_generated as schema  # ships with the LiteRT wheel

    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    graph = model.subgraphs[0]
    outputs = [int(i) for i in graph.outputs]
    if len(outputs) == 2:
        return model_bytes
    if len(outputs) != 1:
        raise FeaturesError(f"expected one output, found {len(outputs)}")
    producer = next((op for op in graph.operators if outputs[0] in [int(i) for i in op.outputs]), None)
    code = model.operatorCodes[producer.opcodeIndex] if producer is not None else None
    fully_connected = schema.BuiltinOperator.FULLY_CONNECTED
    if code is None or max(code.builtinCode, code.deprecatedBuiltinCode) != fully_connected:
        raise FeaturesError("the logits are not made by a dense (FULLY_CONNECTED) layer")
    features = int(producer.inputs[0])
    shape = list(graph.tensors[features].shape)
    if len(shape) != 2 or shape[0] != 1:
        raise FeaturesError(f"the dense layer's input has shape {shape}, not (1, D)")
    graph.outputs = [*outputs, features]
    for signature in model.signatureDefs or []:
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = FEATURES_OUTPUT, features
        signature.outputs = [*(signature.outputs or []), entry]
    builder = flatbuffers.Builder(len(model_bytes) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
