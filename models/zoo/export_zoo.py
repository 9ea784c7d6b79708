"""Export torchvision ImageNet architectures (random init, no weight downloads) to ONNX, for
structure tests: real-world graphs that chanopt must load, group, slice and run.

    /usr/bin/python3 models/zoo/export_zoo.py OUT_DIR [NAME ...]

Writes OUT_DIR/<name>.onnx for each name (default: all of ZOO): opset 13, input `input`
N x 3 x 224 x 224 float (dynamic batch), output `logits` N x 1000. Models are exported in eval
mode; torch folds BatchNormalization into the preceding Conv, except for the *_bn variants, which
keep BatchNormalization nodes (training=TrainingMode.PRESERVE on an eval-mode model: inference BN
with running statistics). Each model's weights come from torch.manual_seed(0), so reruns give the
same weights.

Also writes OUT_DIR/input.npy (float32 1x3x224x224, uniform [0, 1), seed 0) and
OUT_DIR/<name>.logits.npy (PyTorch eval-mode output on it), the reference for runtime checks.

Existing <name>.onnx files are skipped (delete one to re-export it); files are written under a
temporary name and renamed, so an interrupted run leaves no partial model behind.
"""

import os
import sys
import time
import warnings

# libgomp's default spin-waiting collapses when the cores are shared; set before torch loads it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.models as tvm  # noqa: E402


def _build(name):
    if name == "googlenet":
        return tvm.googlenet(weights=None, aux_logits=False, init_weights=True)
    if name.endswith("_bn"):
        name = name[: -len("_bn")]
    return getattr(tvm, name)(weights=None)


# name -> keep BatchNormalization nodes
ZOO = {
    "resnet18": False,
    "resnet50": False,
    "mobilenet_v2": False,
    "mobilenet_v3_small": False,
    "densenet121": False,
    "googlenet": False,
    "squeezenet1_1": False,
    "efficientnet_b0": False,
    "regnet_y_400mf": False,
    "shufflenet_v2_x1_0": False,
    "resnet18_bn": True,
    "mobilenet_v2_bn": True,
}

OPSET = 13


def save_npy(path, arr):
    tmp = path + ".tmp.npy"
    np.save(tmp, arr)
    os.replace(tmp, path)


def export_one(name, keep_bn, out_dir, x):
    path = os.path.join(out_dir, name + ".onnx")
    if os.path.exists(path):
        return None
    torch.manual_seed(0)
    model = _build(name).eval()
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            x,
            tmp,
            opset_version=OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            training=mode,
            do_constant_folding=True,
        )
    with torch.no_grad():
        logits = model(x).numpy().astype(np.float32)
    save_npy(os.path.join(out_dir, name + ".logits.npy"), logits)
    os.replace(tmp, path)
    return path


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        raise SystemExit(__doc__)
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(ZOO)
    for n in names:
        if n not in ZOO:
            raise SystemExit(f"unknown model {n!r}; known: {', '.join(ZOO)}")
    os.makedirs(out_dir, exist_ok=True)
    torch.set_num_threads(2)
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    save_npy(os.path.join(out_dir, "input.npy"), x.numpy())
    t_all = time.time()
    total = 0
    for name in names:
        t0 = time.time()
        path = export_one(name, ZOO[name], out_dir, x)
        size = os.path.getsize(os.path.join(out_dir, name + ".onnx"))
        total += size
        state = "exported" if path else "exists, skipped"
        print(f"{name:20s} {size / 1e6:7.1f} MB  {time.time() - t0:6.1f} s  {state}", flush=True)
    print(f"{'total':20s} {total / 1e6:7.1f} MB  {time.time() - t_all:6.1f} s", flush=True)


if __name__ == "__main__":
    main()
