#!/usr/bin/python3
"""Writes a small valid ONNX CNN whose weights are low-rank plus noise, for the metrics tests.

Usage: metrics_model.py OUT.onnx [SEED]

Every weighted op the metrics handle appears once: a 3x3 Conv, a 1x1 Conv, a grouped Conv, a
depthwise Conv, a ConvTranspose, a Gemm with transB=1, a MatMul and a Gemm with transB=0. Each weight is built as
(unfolding of rank r) + noise, so EVBMF has a real low-rank structure to find.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def low_rank(rng, rows, cols, rank, noise=0.02):
    u = np.linalg.qr(rng.standard_normal((rows, rank)))[0]
    v = np.linalg.qr(rng.standard_normal((cols, rank)))[0]
    d = np.linspace(3.0, 1.0, rank) * (np.sqrt(rows) + np.sqrt(cols)) * noise * 2
    return u @ np.diag(d) @ v.T + noise * rng.standard_normal((rows, cols))


def main(out, seed):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def weight(name, shape, rank, out_axis=0):
        rows = shape[out_axis]
        cols = int(np.prod(shape)) // rows
        w = low_rank(rng, rows, cols, rank)
        if out_axis == 1:  # built as the axis-1 unfolding, fold it back
            rest = (shape[0],) + tuple(shape[2:])
            w = np.moveaxis(w.reshape((rows,) + rest), 0, 1)
        inits.append(numpy_helper.from_array(w.reshape(shape).astype(np.float32), name))
        return name

    x = "x"
    nodes.append(helper.make_node("Conv", [x, weight("w1", (48, 8, 3, 3), 12)], ["c1"], name="conv3x3", pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.append(helper.make_node("Conv", ["r1", weight("w2", (96, 48, 1, 1), 20)], ["c2"], name="conv1x1"))
    nodes.append(helper.make_node("Conv", ["c2", weight("w3", (64, 24, 3, 3), 9)], ["c3"], name="grouped", group=4, pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Conv", ["c3", weight("w4", (64, 1, 3, 3), 3)], ["c4"], name="depthwise", group=64, pads=[1, 1, 1, 1]))
    # unnamed on purpose: the metrics name it by its first output
    nodes.append(helper.make_node("ConvTranspose", ["c4", weight("w5", (64, 40, 2, 2), 10, out_axis=1)], ["up"], strides=[2, 2]))
    nodes.append(helper.make_node("GlobalAveragePool", ["up"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    nodes.append(helper.make_node("Gemm", ["flat", weight("w6", (120, 40), 7), "b6"], ["fc1"], name="fc1", transB=1))
    inits.append(numpy_helper.from_array(np.zeros(120, np.float32), "b6"))
    nodes.append(helper.make_node("MatMul", ["fc1", weight("w7", (120, 30), 5, out_axis=1)], ["fc2"], name="fc2"))
    nodes.append(helper.make_node("Gemm", ["fc2", weight("w8", (30, 10), 3, out_axis=1)], ["y"], name="fc3"))
    graph = helper.make_graph(
        nodes, "metrics_model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
