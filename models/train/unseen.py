"""Fashion-MNIST CNNs the team has not seen, for the "new user" trial of issue #8.

    /usr/bin/python3 models/train/unseen.py [OUT_DIR] [--model NAME ...] [--epochs E] [--seed S]

OUT_DIR defaults to $HOME/.cache/chanopt/unseen/. Writes OUT_DIR/<name>.onnx for each model and
prints one JSON line per model (test accuracy in PyTorch, training seconds, params, MACs, ops).
The ablation's copies are committed in models/unseen/ (its results are keyed by the models'
bytes, and a retrain elsewhere gives other bytes).

They deliberately differ from the bundled ones (models/train/nets.py) in architecture and recipe:

  inception_lrelu  Inception-style blocks: parallel 1x1, 1x1->3x3, 1x1->5x5 and MaxPool3x3(s1)->1x1
                   branches concatenated; LeakyReLU(0.1) everywhere; an AveragePool stem (28 -> 14);
                   BN folded into the convs; GAP -> Dropout -> Gemm.
  wide_prelu_bn    a wide, shallow plain net: Conv5x5/32, Conv3x3/64, Conv3x3/96, each BN -> per-channel
                   PReLU, Max/Max/AveragePool, Flatten (96x3x3) -> Dropout -> Gemm 864->64 -> PReLU
                   -> Gemm; BatchNormalization kept in the export.
  dwres_silu       depthwise-separable residual net: SiLU (Sigmoid*Mul) stem and AveragePool; blocks
                   DW3x3/DW5x5 -> BN -> HardSwish (HardSigmoid*Mul at opset 13) -> PW1x1 -> BN, residual
                   Add; stride-2 depthwise downsampling; head Concat(GlobalAveragePool, GlobalMaxPool)
                   -> Flatten -> Gemm (each channel feeds two Gemm columns). BN folded.

Recipe (not the bundled AdamW one): SGD with Nesterov momentum 0.9, weight decay 5e-4 (not on
biases/BN/PReLU), one-cycle learning rate (peak 0.08, 25% warm-up, cosine down), label smoothing
0.1, batch 96, random crop with padding 3 (no flip), seed 11, 2 threads; 1.25 / 2 / 1.5 epochs
(about 5 CPU minutes each). The pools are written the way a user would write them:
F.avg_pool2d's default count_include_pad=True exports a zero Pad before the AveragePool, and
adaptive_max_pool2d(x, 1) exports as a MaxPool with a 7x7 kernel, not GlobalMaxPool.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (first: it sets OMP_WAIT_POLICY before torch loads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def cbn(cin, cout, k=3, stride=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


# ---------------------------------------------------------------- Inception + LeakyReLU


class Inception(nn.Module):
    """Branches 1x1 | 1x1 -> 3x3 | 1x1 -> 5x5 | MaxPool3x3 s1 -> 1x1, concatenated (widths b1+b3+b5+bp)."""

    def __init__(self, cin, b1, r3, b3, r5, b5, bp, slope=0.1):
        super().__init__()
        self.slope = slope
        self.b1 = cbn(cin, b1, 1)
        self.r3, self.b3 = cbn(cin, r3, 1), cbn(r3, b3, 3)
        self.r5, self.b5 = cbn(cin, r5, 1), cbn(r5, b5, 5)
        self.bp = cbn(cin, bp, 1)

    def act(self, x):
        return F.leaky_relu(x, self.slope)

    def forward(self, x):
        a = self.act
        return torch.cat(
            [
                a(self.b1(x)),
                a(self.b3(a(self.r3(x)))),
                a(self.b5(a(self.r5(x)))),
                a(self.bp(F.max_pool2d(x, 3, 1, 1))),
            ],
            1,
        )


class InceptionLReLU(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = cbn(1, 32, 3)
        self.a1 = Inception(32, 16, 16, 24, 8, 12, 12)  # -> 64 at 14x14
        self.a2 = Inception(64, 16, 24, 32, 8, 8, 8)  # -> 64
        self.b1 = Inception(64, 32, 32, 48, 12, 24, 24)  # -> 128 at 7x7
        self.b2 = Inception(128, 32, 32, 48, 12, 24, 24)  # -> 128
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = F.avg_pool2d(F.leaky_relu(self.stem(x), 0.1), 2)  # AveragePool stem: 28 -> 14
        x = self.a2(self.a1(x))
        x = F.max_pool2d(x, 2)  # 14 -> 7
        x = self.b2(self.b1(x))
        return self.fc(self.drop(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)))


# ---------------------------------------------------------------- wide shallow, PReLU, BN kept


class WidePReLUBN(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, 1, 2, bias=False), nn.BatchNorm2d(32), nn.PReLU(32), nn.MaxPool2d(2),  # 14
            nn.Conv2d(32, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64), nn.MaxPool2d(2),  # 7
            nn.Conv2d(64, 96, 3, 1, 1, bias=False), nn.BatchNorm2d(96), nn.PReLU(96), nn.AvgPool2d(2),  # 3
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(96 * 3 * 3, 64), nn.PReLU(64), nn.Dropout(0.2), nn.Linear(64, classes)
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- depthwise residual, SiLU/HardSwish


class DWRes(nn.Module):
    """DWk -> BN -> HardSwish -> PW1x1 -> BN, plus identity."""

    def __init__(self, c, k):
        super().__init__()
        self.dw = cbn(c, c, k, groups=c)
        self.pw = cbn(c, c, 1)

    def forward(self, x):
        return x + self.pw(F.hardswish(self.dw(x)))


class DWResSiLU(nn.Module):
    def __init__(self, classes=10, c1=48, c2=96):
        super().__init__()
        self.stem = cbn(1, c1, 3)
        self.s1 = nn.Sequential(DWRes(c1, 3), DWRes(c1, 3))  # 14x14
        self.expand = cbn(c1, c2, 1)
        self.down = cbn(c2, c2, 3, stride=2, groups=c2)  # 14 -> 7, depthwise
        self.proj = cbn(c2, c2, 1)
        self.s2 = nn.Sequential(DWRes(c2, 5), DWRes(c2, 5))  # 7x7
        self.fc = nn.Linear(2 * c2, classes)

    def forward(self, x):
        x = F.avg_pool2d(F.silu(self.stem(x)), 2)
        x = self.s1(x)
        x = self.proj(F.hardswish(self.down(F.silu(self.expand(x)))))
        x = self.s2(x)
        x = torch.cat([F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)], 1)
        return self.fc(torch.flatten(x, 1))


NETS = {
    # name: (constructor, keep BN in the export, epochs). Epochs are fractional (one-cycle over
    # that many steps) so that each model trains in about 5 CPU minutes.
    "inception_lrelu": (InceptionLReLU, False, 1.25),
    "wide_prelu_bn": (WidePReLUBN, True, 2),
    "dwres_silu": (DWResSiLU, False, 1.5),
}


def train_sgd(model, epochs, seed, peak_lr=0.08, batch=96, pad=3, smoothing=0.1, wd=5e-4, log=print):
    """SGD Nesterov + one-cycle, label smoothing, crop-only augmentation. Returns (test acc, seconds)."""
    xtr, ytr = common.load_split("train")
    xte, yte = common.load_split("t10k")
    gen = torch.Generator().manual_seed(seed)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
        lr=peak_lr, momentum=0.9, nesterov=True,
    )
    per_epoch = (len(xtr) + batch - 1) // batch
    steps = round(epochs * per_epoch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=peak_lr, total_steps=steps, pct_start=0.25)
    t0 = time.time()
    passes = (steps + per_epoch - 1) // per_epoch
    for ep in range(passes):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum, seen, te = 0.0, 0, time.time()
        for i in range(0, min(len(xtr), (steps - ep * per_epoch) * batch), batch):
            idx = perm[i : i + batch]
            xb = common.augment(xtr[idx], gen, pad=pad, flip=False)
            loss = F.cross_entropy(model(xb), ytr[idx], label_smoothing=smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        acc = common.evaluate(model, xte, yte)
        log(f"pass {ep + 1}/{passes} ({seen} images) loss {loss_sum / seen:.4f} test {acc:.4f} ({time.time() - te:.1f}s)")
    return common.evaluate(model, xte, yte), time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?", default=os.path.join(os.path.expanduser("~"), ".cache", "chanopt", "unseen"))
    ap.add_argument("--model", action="append", choices=sorted(NETS), help="default: all")
    ap.add_argument("--epochs", type=float, default=None, help="default: per-model value in NETS")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name in args.model or list(NETS):
        ctor, keep_bn, epochs = NETS[name]
        epochs = args.epochs or epochs
        common.setup(args.seed)
        model = ctor()
        nparam = sum(p.numel() for p in model.parameters())
        print(f"{name}: {nparam} parameters, {epochs} epochs", flush=True)
        c0 = time.process_time()
        acc, secs = train_sgd(model, epochs, args.seed, log=lambda s: print(s, flush=True))
        cpu = time.process_time() - c0
        path = os.path.join(args.out_dir, name + ".onnx")
        m = common.export(model, path, keep_bn=keep_bn)
        params, macs = common.onnx_cost(m)
        size = os.path.getsize(path)
        if size >= 2 << 20:
            raise SystemExit(f"{path}: {size} bytes, over the 2 MB limit")
        print(json.dumps({
            "name": name, "path": path, "bytes": size, "params": params, "macs": macs,
            "ops": common.op_histogram(m), "torch_acc": acc, "train_seconds": round(secs, 1),
            "cpu_seconds": round(cpu, 1), "epochs": epochs, "seed": args.seed, "keep_bn": keep_bn,
        }), flush=True)


if __name__ == "__main__":
    main()
