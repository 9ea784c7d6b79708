"""Train one bundled Fashion-MNIST network and export it to models/<name>.onnx.

    /usr/bin/python3 models/train/train.py --model resnet8

writes models/<name>.onnx and models/data/<name>.logits16.npy (PyTorch eval-mode logits on the first
16 test images, models/data/eval16.npy). `resnet8` also writes resnet8_bn.onnx: the same weights
exported with BatchNormalization kept. Deterministic: fixed seed, 2 threads, deterministic kernels.
Prints one JSON summary line at the end (accuracy, seconds, params, MACs, op histogram).
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (first: it sets OMP_WAIT_POLICY before torch loads)
import nets  # noqa: E402
import torch  # noqa: E402

# Epochs per network: about 3-4 minutes of training each on a 2-core machine.
EPOCHS = {"resnet8": 3, "densenet": 3, "mobilenetv2_se": 3, "resnext": 3, "vgg": 3}


def count_bn(module):
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in module.modules())


def export_checked(model, name, keep_bn, out_dir, data_dir):
    path = os.path.join(out_dir, name + ".onnx")
    m = common.export(model, path, keep_bn=keep_bn)
    hist = common.op_histogram(m)
    params, macs = common.onnx_cost(m)
    size = os.path.getsize(path)
    if size >= 2 << 20:
        raise SystemExit(f"{path}: {size} bytes, over the 2 MB limit")
    common.dump_logits(model, name, data_dir)
    return {"name": name, "path": path, "bytes": size, "params": params, "macs": macs, "ops": hist}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(nets.NETS))
    ap.add_argument("--epochs", type=int, default=None, help="default: per-model value in EPOCHS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=common.MODELS_DIR, help="where <name>.onnx goes (default models/)")
    ap.add_argument("--data-dir", default=common.DATA_DIR, help="where the logits go (default models/data/)")
    ap.add_argument("--checkpoint", default=None, help="also save the state dict here (.pt)")
    ap.add_argument("--from-checkpoint", default=None, help="skip training, load this state dict, export")
    args = ap.parse_args()

    common.setup(args.seed)
    model = nets.NETS[args.model]()
    epochs = EPOCHS[args.model] if args.epochs is None else args.epochs
    if args.from_checkpoint:
        model.load_state_dict(torch.load(args.from_checkpoint))
        xte, yte = common.load_split("t10k")
        acc, secs = common.evaluate(model, xte, yte), 0.0
    else:
        print(f"{args.model}: {sum(p.numel() for p in model.parameters())} parameters, {epochs} epochs", flush=True)
        acc, secs = common.train(model, epochs, seed=args.seed, log=lambda s: print(s, flush=True))
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    model.eval()

    results = [export_checked(model, args.model, False, args.out_dir, args.data_dir)]
    if args.model == "resnet8":
        results.append(export_checked(model, "resnet8_bn", True, args.out_dir, args.data_dir))
    for r in results:
        bn = r["ops"].get("BatchNormalization", 0)
        if r["name"].endswith("_bn") and bn != count_bn(model):
            raise SystemExit(f"{r['name']}: {bn} BatchNormalization nodes, want {count_bn(model)}")
        r.update(torch_acc=acc, train_seconds=round(secs, 1), epochs=epochs, seed=args.seed, torch=torch.__version__)
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
