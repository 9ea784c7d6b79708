"""Independent params/MACs count for chanopt's cost-model test (Debian python3-onnx).

params: elements of every floating-point initializer and Constant tensor.
MACs: Conv (output elements x C_in/group x kernel), ConvTranspose (input elements x C_out/group x
kernel), Gemm and MatMul (output elements x inner dim), at batch 1 where the batch is symbolic,
using ONNX's own shape inference. Prints one JSON object per model path given.
"""
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper, shape_inference

FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


def count(path):
    m = onnx.load(path)
    g = m.graph
    params = 0
    for t in g.initializer:
        if t.data_type in FLOATS:
            params += int(np.prod(t.dims))
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in FLOATS:
                    params += int(np.prod(a.t.dims))
    inits = {t.name for t in g.initializer}
    for i in g.input:
        if i.name in inits:
            continue
        dims = i.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes = {}
    outputs = {o.name for o in m.graph.output}
    for vi in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output):
        dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
        if dims and dims[0] is None and vi.name in outputs:
            dims[0] = 1  # a declared output keeps its symbolic batch; the count is at batch 1
        shapes[vi.name] = dims
    for t in m.graph.initializer:
        shapes[t.name] = list(t.dims)
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    shapes[n.output[0]] = list(a.t.dims)
    macs = 0
    for n in m.graph.node:
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        out = shapes.get(n.output[0])
        if n.op_type == "Conv":
            w = shapes[n.input[1]]
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type == "ConvTranspose":
            x, w = shapes[n.input[0]], shapes[n.input[1]]
            macs += int(np.prod(x)) * int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            # K from the weight: ONNX 1.12 loses some activations' shapes (ReduceMean with keepdims=0)
            b = shapes[n.input[1]]
            trans_b = any(at.name == "transB" and at.i for at in n.attribute)
            macs += int(np.prod(out)) * (b[1] if trans_b else b[0])
        else:
            a = shapes[n.input[0]]
            macs += int(np.prod(out)) * a[-1]
    return {"path": path, "params": params, "macs": macs}


def torch_macs(name):
    """MACs of a torchvision architecture counted by forward hooks in PyTorch, independent of ONNX.

    ONNX 1.12's shape inference cannot follow the dynamic Reshape chains of some exports
    (ShuffleNet's channel shuffle), so zoo models are counted from the network itself."""
    import torch
    import torchvision

    kw = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    net = getattr(torchvision.models, name)(weights=None, **kw).eval()
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += out.numel() * mod.in_features

    for mod in net.modules():
        mod.register_forward_hook(hook)
    with torch.no_grad():
        net(torch.zeros(1, 3, 224, 224))
    return total[0]


ZOO = {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "densenet121", "googlenet",
       "squeezenet1_1", "efficientnet_b0", "regnet_y_400mf", "shufflenet_v2_x1_0"}

for p in sys.argv[1:]:
    r = count(p)
    base = p.rsplit("/", 1)[-1][: -len(".onnx")]
    if base.endswith("_bn"):
        base = base[:-3]
    if base in ZOO:
        r["macs"] = torch_macs(base)
        r["macs_by"] = "torch hooks"
    print(json.dumps(r))
