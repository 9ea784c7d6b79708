"""Write small ONNX models that imitate exporters other than a plain PyTorch opset-13 export, so
chanopt is tried on files "as a new user would bring them".

    /usr/bin/python3 models/foreign/make_foreign.py OUT_DIR [--force] [NAME ...]

For each model NAME it writes, into OUT_DIR:

    NAME.onnx            the model (random weights from a fixed seed, each file well under 2 MB)
    NAME.input.npy       float32 input at batch 2 (seed fixed), in the layout the model wants
    NAME.expected.npy    the first output of the reference (the torch module, or for the tf2onnx
                         imitation a torch re-implementation of the hand-built graph) on that input
    NAME.cost.json       an independent count: params = elements of every float initializer and
                         Constant tensor in the file; MACs from PyTorch forward hooks at batch 1
                         (Conv2d: output elements x C_in/groups x kh x kw; ConvTranspose2d: input
                         elements x C_out/groups x kh x kw; Linear: output elements x in_features);
                         also the batch-1 input shape the MACs are for, what onnx.checker said, and
                         the sha256 of this script (so a cache made by an older version is noticed).

Models (see README.md beside this script):
    tf2onnx_nhwc        Keras-style CNN as tf2onnx writes it: NHWC input + Transpose, MatMul+Add Dense
    opset9_constants    ResNet-like torch export at opset 9, weights in Constant nodes, N x 3 x H x W
    opset11_constants   the same network at opset 11
    hardswish_se        MobileNetV3-style blocks (HardSwish, HardSigmoid SE gates, LeakyRelu, Max), opset 14
    detection_head      FPN-style net: ConvTranspose and Resize upsampling, two outputs, opset 13
    bn_training_mode    BatchNormalization exported in training mode (extra outputs, batch statistics)

A model whose four files all exist is skipped unless --force is given; every file is written under a
temporary name and renamed, so an interrupted run leaves no partial file behind.
"""

import argparse
import collections
import copy
import hashlib
import io
import json
import os
import sys
import time
import warnings

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

FLOATS = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}


# ---------------------------------------------------------------------------------------------
# shared helpers


def count_macs(net, x):
    """MACs of Conv2d, ConvTranspose2d and Linear modules on input x, by forward hooks."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += inp[0].numel() * (mod.out_channels // mod.groups) * k
        elif isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in net.modules()]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return total[0]


def count_params(model):
    """Elements of every floating-point initializer and Constant tensor of the main graph."""
    n = 0
    for t in model.graph.initializer:
        if t.data_type in FLOATS:
            n += int(np.prod(t.dims, dtype=np.int64))
    for node in model.graph.node:
        if node.op_type != "Constant":
            continue
        for a in node.attribute:
            if a.name == "value" and a.t.data_type in FLOATS:
                n += int(np.prod(a.t.dims, dtype=np.int64))
            elif a.name == "value_float":
                n += 1
            elif a.name == "value_floats":
                n += len(a.floats)
    return n


def torch_export(net, x, opset, dynamic_axes, output_names=("output",), training=None):
    buf = io.BytesIO()
    kw = {}
    if training is not None:
        kw["training"] = training
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            net,
            x,
            buf,
            opset_version=opset,
            input_names=["input"],
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
            **kw,
        )
    return onnx.load_from_string(buf.getvalue())


def randomise_bn(net, gen):
    """Give every BatchNorm non-trivial statistics and affine parameters, so folding them matters."""
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                m.weight.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=gen) * 0.5 + 0.75)


def batch_input(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


Built = collections.namedtuple("Built", "model x expected macs input_name input_shape notes")


# ---------------------------------------------------------------------------------------------
# 1. tf2onnx: a Keras CNN, NHWC


class TFReference(nn.Module):
    """The tf2onnx graph below, re-implemented with torch layers: the expected output and the MACs."""

    def __init__(self, w):
        super().__init__()

        def conv(name, stride=1):
            k = w[name + "/kernel"]  # OIHW already
            c = nn.Conv2d(k.shape[1], k.shape[0], k.shape[2], stride=stride, bias=True)
            c.weight.data = torch.from_numpy(k)
            c.bias.data = torch.from_numpy(w[name + "/bias"])
            return c

        self.conv1 = conv("conv2d")
        self.conv2 = conv("conv2d_1")
        self.conv3 = conv("conv2d_2")
        self.conv4 = conv("conv2d_3", stride=2)
        k = w["dense/kernel"]
        self.dense = nn.Linear(k.shape[0], k.shape[1])
        self.dense.weight.data = torch.from_numpy(k.T.copy())
        self.dense.bias.data = torch.from_numpy(w["dense/bias"])

    def forward(self, x):  # x: N x 28 x 28 x 1
        x = x.permute(0, 3, 1, 2)
        x = F.relu(self.conv1(F.pad(x, (1, 1, 1, 1))))
        x = F.max_pool2d(x, 2, 2)
        r = x
        x = F.relu(self.conv2(F.pad(x, (1, 1, 1, 1))))
        x = self.conv3(F.pad(x, (1, 1, 1, 1)))
        x = F.relu(x + r)
        # TF "SAME" at stride 2 on an even size pads only at the end: (0, 1) on each spatial axis
        x = F.relu(self.conv4(F.pad(x, (0, 1, 0, 1))))
        x = x.mean(dim=(2, 3), keepdim=True)
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
        return torch.softmax(self.dense(x), dim=-1)


def build_tf2onnx_nhwc():
    rng = np.random.default_rng(1)

    def he(o, i, k):
        return (rng.standard_normal((o, i, k, k)) * np.sqrt(2.0 / (i * k * k))).astype(np.float32)

    w = {
        "conv2d/kernel": he(16, 1, 3),
        "conv2d_1/kernel": he(16, 16, 3),
        "conv2d_2/kernel": he(16, 16, 3),
        "conv2d_3/kernel": he(32, 16, 3),
        "dense/kernel": (rng.standard_normal((32, 10)) * np.sqrt(2.0 / 32)).astype(np.float32),
    }
    for name, c in [("conv2d", 16), ("conv2d_1", 16), ("conv2d_2", 16), ("conv2d_3", 32), ("dense", 10)]:
        w[name + "/bias"] = (rng.standard_normal(c) * 0.05).astype(np.float32)

    inits, nodes = [], []

    def init(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def node(op, name, inputs, **attrs):
        out = name + ":0"
        nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    # tf2onnx names: TF op names with ":0" tensor suffixes, folded constants as const_fold_opt__N
    x = node("Transpose", "model/conv2d/Conv2D__6", ["input_1"], perm=[0, 3, 1, 2])

    def conv(layer, x, stride, pads):
        k = init("model/%s/Conv2D/ReadVariableOp:0" % layer, w[layer + "/kernel"])
        b = init("model/%s/BiasAdd/ReadVariableOp:0" % layer, w[layer + "/bias"])
        kh = w[layer + "/kernel"].shape[2]
        return node("Conv", "model/%s/BiasAdd" % layer, [x, k, b], dilations=[1, 1], group=1,
                    kernel_shape=[kh, kh], pads=pads, strides=[stride, stride])

    x = conv("conv2d", x, 1, [1, 1, 1, 1])
    x = node("Relu", "model/conv2d/Relu", [x])
    x = node("MaxPool", "model/max_pooling2d/MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
    r = x
    x = conv("conv2d_1", x, 1, [1, 1, 1, 1])
    x = node("Relu", "model/conv2d_1/Relu", [x])
    x = conv("conv2d_2", x, 1, [1, 1, 1, 1])
    x = node("Add", "model/add/add", [x, r])
    x = node("Relu", "model/re_lu/Relu", [x])
    x = conv("conv2d_3", x, 2, [0, 0, 1, 1])
    x = node("Relu", "model/conv2d_3/Relu", [x])
    x = node("GlobalAveragePool", "model/global_average_pooling2d/Mean", [x])
    x = node("Transpose", "model/global_average_pooling2d/Mean__20", [x], perm=[0, 2, 3, 1])
    shape = init("const_fold_opt__31", np.array([-1, 32], dtype=np.int64))
    x = node("Reshape", "model/global_average_pooling2d/Mean_Squeeze__22", [x, shape])
    k = init("model/dense/MatMul/ReadVariableOp:0", w["dense/kernel"])
    x = node("MatMul", "model/dense/MatMul", [x, k])
    b = init("model/dense/BiasAdd/ReadVariableOp:0", w["dense/bias"])
    x = node("Add", "model/dense/BiasAdd", [x, b])
    nodes.append(helper.make_node("Softmax", [x], ["dense"], name="model/dense/Softmax", axis=-1))

    graph = helper.make_graph(
        nodes,
        "tf2onnx",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__38", 28, 28, 1])],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__39", 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, producer_name="tf2onnx", producer_version="1.9.3 1190aa",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    model.doc_string = "converted from keras_model (imitation written by make_foreign.py)"

    ref = TFReference(w).eval()
    xb = batch_input((2, 28, 28, 1), 11)
    with torch.no_grad():
        expected = ref(torch.from_numpy(xb)).numpy()
    macs = count_macs(ref, torch.zeros(1, 28, 28, 1))
    return Built(model, xb, expected, macs, "input_1", [1, 28, 28, 1],
                 "hand-built with onnx.helper; reference: torch re-implementation")


# ---------------------------------------------------------------------------------------------
# 2. opset 9 / 11 exports with every weight in a Constant node and symbolic spatial dims


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                               nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16))
        self.relu6 = nn.ReLU6()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.up_conv = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.down = nn.AvgPool2d(2)
        self.b = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2), nn.BatchNorm2d(32), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.relu6(x + self.a(x))  # residual Add, then Clip(0, 6)
        x = self.down(self.up_conv(self.up(x)))  # Upsample x2, conv, AveragePool back
        x = self.b(F.pad(x, (1, 1, 1, 1), mode="constant", value=0.0))  # explicit Pad, unpadded conv
        return self.fc(torch.flatten(self.gap(x), 1))


def weights_to_constants(model):
    """Move every initializer into a Constant node at the top of the graph (PaddleOCR-style)."""
    g = model.graph
    inits = list(g.initializer)
    names = {t.name for t in inits}
    consts = [helper.make_node("Constant", [], [t.name], name="const_" + t.name, value=t) for t in inits]
    del g.initializer[:]
    keep = [i for i in g.input if i.name not in names]
    del g.input[:]
    g.input.extend(keep)
    nodes = consts + list(g.node)
    del g.node[:]
    g.node.extend(nodes)


def set_dims(vi, dims):
    shape = vi.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def build_opset_constants(opset):
    torch.manual_seed(0)
    net = SmallResNet()
    randomise_bn(net, torch.Generator().manual_seed(1))
    net.eval()
    x1 = torch.zeros(1, 3, 32, 32)
    model = torch_export(net, x1, opset, {"input": {0: "N", 2: "H", 3: "W"}, "output": {0: "N"}})
    weights_to_constants(model)
    set_dims(model.graph.input[0], ["N", 3, "H", "W"])
    set_dims(model.graph.output[0], ["N", 10])
    del model.graph.value_info[:]  # shapes stay for the reader to infer
    xb = batch_input((2, 3, 32, 32), 12)
    with torch.no_grad():
        expected = net(torch.from_numpy(xb)).numpy()
    return Built(model, xb, expected, count_macs(net, x1), "input", [1, 3, 32, 32],
                 "torch.onnx.export opset %d; initializers moved to Constant nodes" % opset)


# ---------------------------------------------------------------------------------------------
# 3. MobileNetV3-style: HardSwish, HardSigmoid squeeze-excite, LeakyRelu, Max


class SqueezeExcite(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x):
        s = F.hardsigmoid(self.fc2(F.relu(self.fc1(self.pool(x)))))
        return x * s


class HardSwishSE(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16),
                                  nn.Hardswish())
        # block 1: depthwise, SE, project, residual
        self.dw1 = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16),
                                 nn.ReLU())
        self.se1 = SqueezeExcite(16, 8)
        self.pw1 = nn.Sequential(nn.Conv2d(16, 16, 1, bias=False), nn.BatchNorm2d(16))
        # block 2: expand, depthwise 5x5 stride 2, SE, project
        self.exp2 = nn.Sequential(nn.Conv2d(16, 48, 1, bias=False), nn.BatchNorm2d(48), nn.Hardswish())
        self.dw2 = nn.Sequential(nn.Conv2d(48, 48, 5, stride=2, padding=2, groups=48, bias=False),
                                 nn.BatchNorm2d(48), nn.Hardswish())
        self.se2 = SqueezeExcite(48, 12)
        self.pw2 = nn.Sequential(nn.Conv2d(48, 24, 1, bias=False), nn.BatchNorm2d(24))
        # two branches merged by an elementwise maximum
        self.br_a = nn.Sequential(nn.Conv2d(24, 24, 1), nn.LeakyReLU(0.1))
        self.br_b = nn.Conv2d(24, 24, 3, padding=1)
        self.head = nn.Sequential(nn.Conv2d(24, 64, 1, bias=False), nn.BatchNorm2d(64), nn.Hardswish())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.pw1(self.se1(self.dw1(x)))
        x = self.pw2(self.se2(self.dw2(self.exp2(x))))
        x = torch.maximum(self.br_a(x), self.br_b(x))
        return self.fc(torch.flatten(self.gap(self.head(x)), 1))


def build_hardswish_se():
    torch.manual_seed(0)
    net = HardSwishSE()
    randomise_bn(net, torch.Generator().manual_seed(2))
    net.eval()
    x1 = torch.zeros(1, 3, 32, 32)
    model = torch_export(net, x1, 14, {"input": {0: "N"}, "output": {0: "N"}})
    xb = batch_input((2, 3, 32, 32), 13)
    with torch.no_grad():
        expected = net(torch.from_numpy(xb)).numpy()
    return Built(model, xb, expected, count_macs(net, x1), "input", [1, 3, 32, 32],
                 "torch.onnx.export opset 14")


# ---------------------------------------------------------------------------------------------
# 4. FPN / detection head: ConvTranspose and Resize, two outputs


class DetectionHead(nn.Module):
    def __init__(self, anchors=3, classes=5):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU())  # 32x32
        self.c2 = nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())  # 16x16
        self.c3 = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU())  # 8x8
        self.lat3 = nn.Conv2d(64, 32, 1)
        self.lat2 = nn.Conv2d(32, 32, 1)
        self.deconv = nn.ConvTranspose2d(32, 32, 2, stride=2)  # 8 -> 16
        self.up = nn.Upsample(scale_factor=2, mode="nearest")  # 8 -> 16
        self.smooth = nn.Sequential(nn.Conv2d(64, 32, 3, padding=1), nn.ReLU())
        self.cls = nn.Conv2d(32, anchors * classes, 3, padding=1)
        self.box = nn.Conv2d(32, anchors * 4, 3, padding=1)

    def forward(self, x):
        c2 = self.c2(self.c1(x))
        p3 = self.lat3(self.c3(c2))
        p2 = self.lat2(c2) + self.deconv(p3)
        f = self.smooth(torch.cat([p2, self.up(p3)], dim=1))
        return self.cls(f), self.box(f)


def build_detection_head():
    torch.manual_seed(0)
    net = DetectionHead().eval()
    x1 = torch.zeros(1, 3, 64, 64)
    model = torch_export(net, x1, 13, {"input": {0: "N"}, "cls": {0: "N"}, "box": {0: "N"}},
                         output_names=("cls", "box"))
    xb = batch_input((2, 3, 64, 64), 14)
    with torch.no_grad():
        expected = net(torch.from_numpy(xb))[0].numpy()
    return Built(model, xb, expected, count_macs(net, x1), "input", [1, 3, 64, 64],
                 "torch.onnx.export opset 13; outputs cls, box")


# ---------------------------------------------------------------------------------------------
# 5. BatchNormalization exported in training mode


class ConvBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                               nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(32),
                               nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.gap(self.f(x)), 1))


def build_bn_training_mode():
    torch.manual_seed(0)
    net = ConvBN()
    randomise_bn(net, torch.Generator().manual_seed(3))
    net.train()  # PRESERVE on a module in train mode: BN with training_mode=1 and running-stat outputs
    x1 = torch.zeros(1, 3, 32, 32)
    model = torch_export(copy.deepcopy(net), torch.randn(2, 3, 32, 32), 14,
                         {"input": {0: "N"}, "output": {0: "N"}},
                         training=torch.onnx.TrainingMode.PRESERVE)
    xb = batch_input((2, 3, 32, 32), 15)
    with torch.no_grad():
        # training-mode BN normalises by the batch's statistics; the copy keeps net's running stats
        expected = copy.deepcopy(net)(torch.from_numpy(xb)).numpy()
    macs = count_macs(copy.deepcopy(net).eval(), x1)
    return Built(model, xb, expected, macs, "input", [1, 3, 32, 32],
                 "torch.onnx.export opset 14, training=PRESERVE on a train-mode module; "
                 "expected uses batch statistics")


BUILDERS = collections.OrderedDict([
    ("tf2onnx_nhwc", build_tf2onnx_nhwc),
    ("opset9_constants", lambda: build_opset_constants(9)),
    ("opset11_constants", lambda: build_opset_constants(11)),
    ("hardswish_se", build_hardswish_se),
    ("detection_head", build_detection_head),
    ("bn_training_mode", build_bn_training_mode),
])


# ---------------------------------------------------------------------------------------------
# writing, checking, reporting


def files_of(out_dir, name):
    base = os.path.join(out_dir, name)
    return [base + ".onnx", base + ".input.npy", base + ".expected.npy", base + ".cost.json"]


def write_atomic(path, fill):
    tmp = path + ".tmp%d" % os.getpid()
    try:
        with open(tmp, "wb") as f:
            fill(f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def check(model):
    """'full' when check_model(full_check=True) passes, else 'plain: <why full failed>'; raises when
    even the plain check fails."""
    onnx.checker.check_model(model)
    try:
        onnx.checker.check_model(model, full_check=True)
        return "full"
    except Exception as e:  # noqa: BLE001 - the message is the report
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return "plain (full_check failed: %s)" % first


def script_sha256():
    """The hash of this script, recorded in every cost.json so readers can tell stale files."""
    with open(os.path.abspath(__file__), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def make(out_dir, name):
    built = BUILDERS[name]()
    model = built.model
    status = check(model)
    onnx_path, in_path, exp_path, cost_path = files_of(out_dir, name)
    data = model.SerializeToString()
    cost = {
        "model": name,
        "params": count_params(model),
        "macs": int(built.macs),
        "input_name": built.input_name,
        "input_shape": built.input_shape,
        "checker": status,
        "notes": built.notes,
        "script_sha256": script_sha256(),
    }
    # the model last: its presence with the others means a complete set
    write_atomic(in_path, lambda f: np.save(f, built.x.astype(np.float32)))
    write_atomic(exp_path, lambda f: np.save(f, np.asarray(built.expected, dtype=np.float32)))
    write_atomic(cost_path, lambda f: f.write((json.dumps(cost, indent=1) + "\n").encode()))
    write_atomic(onnx_path, lambda f: f.write(data))


def summary_row(out_dir, name):
    path = files_of(out_dir, name)[0]
    m = onnx.load(path)
    with open(files_of(out_dir, name)[3]) as f:
        cost = json.load(f)
    ops = collections.Counter(n.op_type for n in m.graph.node)
    hist = " ".join("%s:%d" % (k, v) for k, v in sorted(ops.items()))
    opset = ",".join("%s%d" % (o.domain + "=" if o.domain else "", o.version) for o in m.opset_import)
    return (name + ".onnx", opset, m.producer_name, os.path.getsize(path), cost["params"], cost["macs"],
            cost["checker"], hist)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("names", nargs="*", help="models to make (default: all)")
    ap.add_argument("--force", action="store_true", help="rewrite files that exist")
    args = ap.parse_args()
    names = args.names or list(BUILDERS)
    for n in names:
        if n not in BUILDERS:
            ap.error("unknown model %r (known: %s)" % (n, ", ".join(BUILDERS)))
    os.makedirs(args.out_dir, exist_ok=True)
    torch.set_num_threads(2)
    start = time.time()
    for name in names:
        if not args.force and all(os.path.exists(p) for p in files_of(args.out_dir, name)):
            print("%-18s exists, skipped" % name)
            continue
        t0 = time.time()
        make(args.out_dir, name)
        print("%-18s written in %.1fs" % (name, time.time() - t0))
    print()
    print("%-24s %-6s %-9s %9s %8s %10s  %s" % ("file", "opset", "producer", "bytes", "params", "macs", "checker"))
    rows = [summary_row(args.out_dir, n) for n in names]
    for r in rows:
        print("%-24s %-6s %-9s %9d %8d %10d  %s" % r[:7])
    print()
    for r in rows:
        print("%s: %s" % (r[0], r[7]))
    print("\ntotal %.1fs" % (time.time() - start))


if __name__ == "__main__":
    sys.exit(main())
