#!/usr/bin/env python3
"""Writes the small malformed ONNX models that test/Import/errors uses.

Run from anywhere with a Python that has the onnx package (the outputs are
committed; CI never runs this):
    /work/venv/bin/python test/Import/errors/Inputs/make_bad_models.py
Each model is one Relu (or Add) over an initializer 'w' that is broken in
one way. External data lives in 'weights.bin' next to the model.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))


def model_with(init, shape=(2, 3)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Add", ["x", "w"], ["y"], name="add_w")
    graph = helper.make_graph([node], "bad", [x], [y], [init])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                             ir_version=8)


def raw(name, dims, nbytes):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.raw_data = bytes(nbytes)
    return t


def external(name, dims, location, offset=None, length=None):
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def save(name, m):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(m.SerializeToString())


# 24 bytes: exactly one float[2,3].
with open(os.path.join(HERE, "weights.bin"), "wb") as f:
    f.write(np.arange(6, dtype=np.float32).tobytes())

save("short_initializer.onnx", model_with(raw("w", [2, 3], 20)))
save("negative_dims.onnx", model_with(raw("w", [2, -3], 0)))
save("absurd_dims.onnx", model_with(raw("w", [1 << 20, 1 << 21], 0)))
save("ext_ok.onnx", model_with(external("w", [2, 3], "weights.bin", 0, 24)))
save("ext_missing.onnx", model_with(external("w", [2, 3], "missing.bin")))
save("ext_absolute.onnx", model_with(external("w", [2, 3], "/etc/passwd")))
save("ext_dotdot.onnx", model_with(external("w", [2, 3], "../Inputs/weights.bin")))
save("ext_past_end.onnx", model_with(external("w", [2, 3], "weights.bin", 8, 24)))
save("ext_wrong_length.onnx", model_with(external("w", [2, 3], "weights.bin", 0, 16)))
