"""Train the bundled networks whose output is not class logits, and export them to models/<name>.onnx.

    /usr/bin/python3 models/train/train_dense.py --model unet
    /usr/bin/python3 models/train/train_dense.py --model embed

  unet   a small U-Net predicting Fashion-MNIST foreground masks (mask = pixel/255 > MASK_THRESHOLD):
         encoder 8, 16 (MaxPool), bottleneck 32 (MaxPool); decoder ConvTranspose 2x2/s2 then Concat
         with the 14x14 skip, nearest Resize x2 then Concat with the 28x28 skip; 1x1 head and Sigmoid.
         Output `mask`, N x 1 x 28 x 28 probabilities. Trained with per-pixel BCE.
  embed  a small residual net whose output `embedding` is an L2-normalised 32-d feature vector,
         N x 32 (GAP, Flatten, Linear projection, x / sqrt(sum x^2 + eps)), trained as a cosine
         classifier (scaled dot products with learned class directions, dropped at export).

Writes models/dense/<name>.onnx and models/dense/<name>.out16.npy (PyTorch eval-mode outputs on
models/data/eval16.npy). They live apart from the classifiers in models/ (whose tests expect class
logits) so that each test picks the kind of model it is about. Deterministic: fixed seed, 2 threads, deterministic kernels. Prints one
JSON summary line at the end (test IoU or accuracy, seconds, params, MACs, op histogram).
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (first: it sets OMP_WAIT_POLICY before torch loads)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DENSE_DIR = os.path.join(common.MODELS_DIR, "dense")
MASK_THRESHOLD = 0.25
EPOCHS = {"unet": 2, "embed": 2}
OUTPUT = {"unet": "mask", "embed": "embedding"}


def cbr(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class UNet(nn.Module):
    def __init__(self, w=(8, 16, 32)):
        super().__init__()
        self.enc1 = nn.Sequential(cbr(1, w[0]), cbr(w[0], w[0]))
        self.enc2 = nn.Sequential(cbr(w[0], w[1]), cbr(w[1], w[1]))
        self.mid = nn.Sequential(cbr(w[1], w[2]), cbr(w[2], w[2]))
        self.up2 = nn.ConvTranspose2d(w[2], w[1], 2, 2)
        self.dec2 = nn.Sequential(cbr(2 * w[1], w[1]), cbr(w[1], w[1]))
        self.red1 = cbr(w[1], w[0])
        self.dec1 = nn.Sequential(cbr(2 * w[0], w[0]), cbr(w[0], w[0]))
        self.head = nn.Conv2d(w[0], 1, 1)

    def logits(self, x):
        e1 = self.enc1(x)  # 28
        e2 = self.enc2(F.max_pool2d(e1, 2))  # 14
        m = self.mid(F.max_pool2d(e2, 2))  # 7
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))  # 14
        u1 = F.interpolate(self.red1(d2), scale_factor=2.0, mode="nearest")  # 28
        d1 = self.dec1(torch.cat([u1, e1], 1))
        return self.head(d1)

    def forward(self, x):
        return torch.sigmoid(self.logits(x))


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout))
        self.c2 = nn.Sequential(nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        s = x if self.short is None else self.short(x)
        return F.relu(self.c2(F.relu(self.c1(x))) + s)


class EmbedNet(nn.Module):
    def __init__(self, w=(12, 24, 48), dim=32, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, w[0], 3, 1, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU())
        self.blocks = nn.Sequential(Block(w[0], w[0], 1), Block(w[0], w[1], 2), Block(w[1], w[2], 2))
        self.proj = nn.Linear(w[2], dim)
        self.classes = nn.Parameter(torch.randn(classes, dim) * 0.1)  # training only

    def forward(self, x):
        x = self.blocks(self.stem(x))
        e = self.proj(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))
        return e / torch.sqrt((e * e).sum(1, keepdim=True) + 1e-6)

    def class_logits(self, x):
        return 16.0 * self(x) @ F.normalize(self.classes, dim=1).t()


def masks(x):
    return (x > MASK_THRESHOLD).float()


@torch.no_grad()
def mask_iou(model, x, batch=1000):
    model.eval()
    inter = union = 0.0
    for i in range(0, len(x), batch):
        xb = x[i : i + batch]
        p, y = model(xb) > 0.5, masks(xb) > 0.5
        inter += (p & y).sum().item()
        union += (p | y).sum().item()
    return inter / union


@torch.no_grad()
def accuracy(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model.class_logits(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def train(name, model, epochs, seed, lr=3e-3, batch=128, log=print):
    """AdamW with a cosine decay; returns (test figure, seconds)."""
    xtr, ytr = common.load_split("train")
    xte, yte = common.load_split("t10k")
    gen = torch.Generator().manual_seed(seed)
    total = epochs * ((len(xtr) + batch - 1) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(1.0, s / total))))
    t0 = time.time()
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum, seen = 0.0, 0
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            if name == "unet":
                xb = common.augment(xtr[idx], gen, pad=2, flip=True)
                loss = F.binary_cross_entropy_with_logits(model.logits(xb), masks(xb))
            else:
                xb = common.augment(xtr[idx], gen, pad=2, flip=True)
                loss = F.cross_entropy(model.class_logits(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        fig = mask_iou(model, xte) if name == "unet" else accuracy(model, xte, yte)
        log(f"epoch {ep + 1}/{epochs} loss {loss_sum / seen:.4f} test {fig:.4f} ({time.time() - t0:.1f}s)")
    fig = mask_iou(model, xte) if name == "unet" else accuracy(model, xte, yte)
    return fig, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, choices=sorted(EPOCHS))
    ap.add_argument("--epochs", type=int, default=None, help="default: per-model value in EPOCHS")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", default=DENSE_DIR, help="where <name>.onnx and <name>.out16.npy go (default models/dense/)")
    args = ap.parse_args()

    common.setup(args.seed)
    model = UNet() if args.model == "unet" else EmbedNet()
    epochs = EPOCHS[args.model] if args.epochs is None else args.epochs
    print(f"{args.model}: {sum(p.numel() for p in model.parameters())} parameters, {epochs} epochs", flush=True)
    fig, secs = train(args.model, model, epochs, args.seed, log=lambda s: print(s, flush=True))
    model.eval()

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, args.model + ".onnx")
    m = common.export(model, path, output=OUTPUT[args.model])
    size = os.path.getsize(path)
    if size >= 300 << 10:
        raise SystemExit(f"{path}: {size} bytes, over the 300 kB limit")
    with torch.no_grad():
        out = model(common.eval16()).numpy().astype(np.float32)
    np.save(os.path.join(args.out_dir, f"{args.model}.out16.npy"), out)
    params, macs = common.onnx_cost(m)
    figure = "torch_iou" if args.model == "unet" else "torch_acc"
    r = {"name": args.model, "path": path, "bytes": size, "params": params, "macs": macs, "ops": common.op_histogram(m),
         figure: round(fig, 4), "train_seconds": round(secs, 1), "epochs": epochs, "seed": args.seed,
         "torch": torch.__version__}
    print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
