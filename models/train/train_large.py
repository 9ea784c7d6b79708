"""Train the real-size bundled network and export it to models/large/resnet18q.onnx.

    /usr/bin/python3 models/train/train_large.py [--test-dir ~/.cache/chanopt/large-test] [--test-set-only]

The network has torchvision's ResNet-18 layout (7x7/2 stem, max pool, four stages of two basic
blocks, BN folded into the convs at export) at three sixteenths of its widths (12-24-48-96), for
3 x 112 x 112 inputs (pixel/255, no normalisation). The task is Fashion-MNIST made to look like the
`make photos` folder (models/zoo/make_photos.py): each image upscaled, tinted with a random colour
and set on a random smooth background, so the three channels carry colour the net must ignore.

Class indices follow the sorted class-folder names of the photos folder (bag, boot, coat, dress,
pullover, sandal, shirt, sneaker, trouser, tshirt), so that a folder of class subfolders read by
chanopt (labels = indices of the sorted folder names) is labelled as the model predicts.

Training images are rendered on the fly in torch (bicubic 28 -> 112, tint, background, random
shift and flip); the test set is rendered as make_photos.py does (PIL bicubic to 224, JPEG quality
90, then resized to 112 as chanopt's folder reader does) from the first --test-count Fashion-MNIST
test images, and written to --test-dir as images.npy (uint8 N x 3 x 112 x 112) and labels.npy
(int64), the files `chanopt eval --data --labels` reads. Accuracy is reported on that set.

Also writes models/large/input.npy (one test image, float32) and models/large/resnet18q.logits.npy
(PyTorch's logits on it) for `node models/zoo/ort_check.mjs models/large resnet18q`, the ONNX
Runtime comparison. Deterministic: fixed seed, 2 threads, deterministic kernels. Prints one JSON
summary line at the end (accuracy, seconds, params, MACs, op histogram, file size).
"""

import argparse
import io
import json
import os
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (first: it sets OMP_WAIT_POLICY before torch loads)
import nets  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

NAME = "resnet18q"
SIZE = 112
OUT_DIR = os.path.join(common.MODELS_DIR, "large")
# Fashion-MNIST's label order, named as make_photos.py names the class folders.
FASHION_NAMES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
SORTED_NAMES = sorted(FASHION_NAMES)
# fashion label -> index of its folder name in sorted order
TO_FOLDER_ORDER = torch.tensor([SORTED_NAMES.index(n) for n in FASHION_NAMES])


def load_uint8(split):
    """(images uint8 N x 28 x 28, labels in folder order int64 N)."""
    d = common.DATASET_DIR
    x = common.read_idx(os.path.join(d, f"{split}-images-idx3-ubyte.gz"))
    y = common.read_idx(os.path.join(d, f"{split}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(x.copy()), TO_FOLDER_ORDER[torch.from_numpy(y.astype(np.int64))]


def background(phase, size):
    """make_photos.py's smooth background: 0.25 + 0.2 sin(3x + 2y + phase_c), x, y in [0, 1)."""
    grid = torch.arange(size, dtype=torch.float32) / size
    yy, xx = grid[:, None], grid[None, :]
    base = (3 * xx + 2 * yy)[None, None]  # 1,1,H,W
    return 0.25 + 0.2 * torch.sin(base + phase[:, :, None, None])


def render(x28, gen, shift=8):
    """Training images: uint8 N x 28 x 28 -> float32 N x 3 x SIZE x SIZE in [0, 1], random tint,
    background, shift (up to `shift` pixels, edges replicated) and horizontal flip."""
    n = len(x28)
    grey = F.interpolate(x28[:, None].float() / 255, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    grey = grey.clamp(0, 1)
    tint = 0.3 + 0.7 * torch.rand(n, 3, generator=gen)
    phase = 2 * np.pi * torch.rand(n, 3, generator=gen)
    rgb = background(phase, SIZE) * (1 - grey) + grey * tint[:, :, None, None]
    rgb = torch.round(rgb.clamp(0, 1) * 255) / 255  # 8-bit like a decoded image
    if shift > 0:
        padded = F.pad(rgb, (shift, shift, shift, shift), mode="replicate")
        oy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
        rows = (oy[:, None] + torch.arange(SIZE))[:, None, :, None]
        cols = (ox[:, None] + torch.arange(SIZE))[:, None, None, :]
        rgb = padded[torch.arange(n)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], rgb.flip(3), rgb)


def render_test(count, seed=1):
    """The held-out set as a user's JPEG folder would give it (see the module doc): uint8 N x 3 x 112 x 112."""
    from PIL import Image

    x, y = load_uint8("t10k")
    rng = np.random.default_rng(seed)
    out = np.empty((count, 3, SIZE, SIZE), dtype=np.uint8)
    gy, gx = np.mgrid[0:224, 0:224] / 224.0
    for i in range(count):
        grey = np.asarray(Image.fromarray(x[i].numpy()).resize((224, 224), Image.BICUBIC), dtype=np.float32) / 255
        tint = rng.uniform(0.3, 1.0, size=3)
        phase = rng.uniform(0, 2 * np.pi, size=3)
        bg = 0.25 + 0.2 * np.sin(np.stack([gx * 3 + phase[c] + gy * 2 for c in range(3)], axis=-1))
        rgb = bg * (1 - grey[..., None]) + grey[..., None] * tint
        buf = io.BytesIO()
        Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        buf.seek(0)
        img = Image.open(buf).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC)
        out[i] = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    return out, y[:count].numpy().astype(np.int64)


@torch.no_grad()
def accuracy(model, x_uint8, y, batch=250):
    model.eval()
    correct = 0
    for i in range(0, len(x_uint8), batch):
        xb = torch.from_numpy(x_uint8[i : i + batch]).float() / 255
        correct += (model(xb).argmax(1) == torch.from_numpy(y[i : i + batch])).sum().item()
    return correct / len(x_uint8)


def train(model, steps, xte, yte, lr=3e-3, weight_decay=5e-4, batch=64, seed=0, warmup=150, log=print):
    """AdamW, linear warm-up then cosine decay to zero over `steps` batches drawn from the 60k
    training images (reshuffled each pass). Returns seconds spent."""
    xtr, ytr = load_uint8("train")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.time()
    perm, pos = torch.randperm(len(xtr), generator=gen), 0
    loss_sum, seen = 0.0, 0
    every = max(1, steps // 20)
    for step in range(steps):
        if pos + batch > len(xtr):
            perm, pos = torch.randperm(len(xtr), generator=gen), 0
        idx = perm[pos : pos + batch]
        pos += batch
        model.train()
        loss = F.cross_entropy(model(render(xtr[idx], gen)), ytr[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        loss_sum += loss.item() * len(idx)
        seen += len(idx)
        if (step + 1) % every == 0 or step + 1 == steps:
            msg = f"step {step + 1}/{steps} loss {loss_sum / seen:.4f} ({time.time() - t0:.0f}s)"
            if (step + 1) % (every * 5) == 0 or step + 1 == steps:
                msg += f" test {accuracy(model, xte[:500], yte[:500]):.4f} (first 500)"
            log(msg)
            loss_sum, seen = 0.0, 0
    return time.time() - t0


def export(model, path):
    """Eval-mode export (BN folded), opset 13, symbolic batch, checked by onnx.checker."""
    import onnx

    model.eval()
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            torch.zeros(1, 3, SIZE, SIZE),
            tmp,
            opset_version=common.OPSET,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
            training=torch.onnx.TrainingMode.EVAL,
            do_constant_folding=True,
        )
    m = onnx.load(tmp)
    onnx.checker.check_model(m, full_check=True)
    os.replace(tmp, path)
    return m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1600, help="training batches of 64 (1600: 1.7 epochs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--test-count", type=int, default=2000)
    ap.add_argument("--test-dir", default=os.path.expanduser("~/.cache/chanopt/large-test"))
    ap.add_argument("--out-dir", default=OUT_DIR)
    ap.add_argument("--test-set-only", action="store_true", help="write the held-out set and stop (make large-test)")
    ap.add_argument("--checkpoint", default=None, help="also save the state dict here (.pt)")
    ap.add_argument("--from-checkpoint", default=None, help="skip training, load this state dict, export")
    args = ap.parse_args()

    common.setup(args.seed)
    t0 = time.time()
    xte, yte = render_test(args.test_count)
    os.makedirs(args.test_dir, exist_ok=True)
    np.save(os.path.join(args.test_dir, "images.npy"), xte)
    np.save(os.path.join(args.test_dir, "labels.npy"), yte)
    print(f"test set: {len(xte)} images in {args.test_dir} ({time.time() - t0:.0f}s)", flush=True)
    if args.test_set_only:
        return

    model = nets.ResNet18Layout()
    if args.from_checkpoint:
        model.load_state_dict(torch.load(args.from_checkpoint))
        secs = 0.0
    else:
        print(f"{NAME}: {sum(p.numel() for p in model.parameters())} parameters, {args.steps} steps", flush=True)
        secs = train(model, args.steps, xte, yte, seed=args.seed, log=lambda s: print(s, flush=True))
    if args.checkpoint:
        torch.save(model.state_dict(), args.checkpoint)
    model.eval()
    acc = accuracy(model, xte, yte)

    os.makedirs(args.out_dir, exist_ok=True)
    path = os.path.join(args.out_dir, NAME + ".onnx")
    m = export(model, path)
    size = os.path.getsize(path)
    if size >= 2 << 20:
        raise SystemExit(f"{path}: {size} bytes, over the 2 MB limit")
    x1 = torch.from_numpy(xte[:1]).float() / 255
    with torch.no_grad():
        logits = model(x1).numpy().astype(np.float32)
    np.save(os.path.join(args.out_dir, "input.npy"), x1.numpy())
    np.save(os.path.join(args.out_dir, NAME + ".logits.npy"), logits)
    params, macs = common.onnx_cost(m)  # at the graph's own input shape, batch 1
    print(
        json.dumps(
            {
                "name": NAME,
                "path": path,
                "bytes": size,
                "params": params,
                "macs": macs,
                "ops": common.op_histogram(m),
                "torch_acc": acc,
                "test_images": len(xte),
                "train_seconds": round(secs, 1),
                "steps": args.steps,
                "seed": args.seed,
                "torch": torch.__version__,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
