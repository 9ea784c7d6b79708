"""Shared pieces of the bundled-model training scripts.

Data loading (Fashion-MNIST IDX gz from the Debian package, no downloads), a deterministic
training loop (fixed seeds, 2 threads, one in-memory tensor, no DataLoader workers), evaluation,
ONNX export (opset 13, input `input` N x 1 x 28 x 28 = pixel/255, output `logits` N x 10, dynamic
batch) and the logits dump used by the golden tests.

Run with Debian's interpreter: /usr/bin/python3 (it sees python3-torch and python3-onnx).
"""

import gzip
import os
import struct
import time
import warnings

# libgomp's default spin-waiting collapses when the 2 cores are shared with other work (a training
# step measured 5x slower); passive waiting keeps the speed. Must be set before torch loads libgomp.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

DATASET_DIR = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
HERE = os.path.dirname(os.path.abspath(__file__))
MODELS_DIR = os.path.dirname(HERE)
DATA_DIR = os.path.join(MODELS_DIR, "data")

OPSET = 13
EVAL16 = 16  # images in the logits golden dump


def setup(seed=0, threads=2):
    """Fix every seed and the thread count; ask torch for deterministic kernels."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def read_idx(path):
    """Read an IDX file (gzip or plain) into a numpy array of its stored dtype (uint8 here)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return arr.reshape(dims)


def write_idx(path, arr):
    """Write a uint8 array as IDX (gzip-compressed when path ends in .gz, mtime 0 so reruns are byte-identical)."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    payload = header + arr.tobytes()
    if path.endswith(".gz"):
        with open(path, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as f:
                f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)


def load_split(split):
    """Return (images float32 N x 1 x 28 x 28 in [0, 1], labels int64 N) for split 'train' or 't10k'."""
    x = read_idx(os.path.join(DATASET_DIR, f"{split}-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(DATASET_DIR, f"{split}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(y.astype(np.int64))
    return x, y


def augment(x, gen, pad=2, flip=True):
    """Random crop after zero padding by `pad`, and random horizontal flip, batched."""
    n, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # n,1,h,1
        cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # n,1,1,w
        bidx = torch.arange(n)[:, None, None, None]
        cidx = torch.arange(c)[None, :, None, None]
        x = xp[bidx, cidx, rows, cols]
    if flip:
        m = torch.rand(n, generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x


@torch.no_grad()
def evaluate(model, x, y, batch=1000):
    model.eval()
    correct = 0
    for i in range(0, len(x), batch):
        correct += (model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum().item()
    return correct / len(x)


def train(model, epochs, lr=3e-3, weight_decay=5e-4, batch=128, seed=0, warmup=200, pad=2, flip=True, log=print):
    """AdamW with linear warm-up then cosine decay to zero, on all 60k training images.

    Returns (test accuracy in PyTorch, seconds spent training)."""
    xtr, ytr = load_split("train")
    xte, yte = load_split("t10k")
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = (len(xtr) + batch - 1) // batch
    total = epochs * steps_per_epoch
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)

    def lr_at(step):
        if step < warmup:
            return (step + 1) / warmup
        p = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + np.cos(np.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    t0 = time.time()
    step = 0
    for ep in range(epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=gen)
        loss_sum, seen = 0.0, 0
        te = time.time()
        for i in range(0, len(xtr), batch):
            idx = perm[i : i + batch]
            xb = augment(xtr[idx], gen, pad=pad, flip=flip)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            seen += len(idx)
        acc = evaluate(model, xte, yte)
        log(f"epoch {ep + 1}/{epochs} loss {loss_sum / seen:.4f} test {acc:.4f} ({time.time() - te:.1f}s)")
    secs = time.time() - t0
    acc = evaluate(model, xte, yte)
    return acc, secs


def export(model, path, keep_bn=False, output="logits"):
    """Export in eval mode, opset 13, dynamic batch. keep_bn keeps BatchNormalization nodes;
    output names the graph output (the classifiers' is "logits").

    torch 1.13 folds BN into the preceding Conv only for training=TrainingMode.EVAL (the
    default for an eval-mode model). training=PRESERVE on an eval-mode model exports inference-mode
    BatchNormalization (running statistics, one output) and skips that fold."""
    import onnx

    model.eval()
    dummy = torch.zeros(1, 1, 28, 28)
    mode = torch.onnx.TrainingMode.PRESERVE if keep_bn else torch.onnx.TrainingMode.EVAL
    tmp = path + ".tmp"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            dummy,
            tmp,
            opset_version=OPSET,
            input_names=["input"],
            output_names=[output],
            dynamic_axes={"input": {0: "N"}, output: {0: "N"}},
            training=mode,
            do_constant_folding=True,
        )
    m = onnx.load(tmp)
    onnx.checker.check_model(m, full_check=True)
    os.replace(tmp, path)
    return m


def op_histogram(m):
    hist = {}
    for n in m.graph.node:
        hist[n.op_type] = hist.get(n.op_type, 0) + 1
    return dict(sorted(hist.items()))


def onnx_cost(m):
    """(params, MACs at 1x1x28x28): params = elements of float initializers and Constant tensors;
    MACs of Conv (out elems x Cin/groups x kh x kw) and Gemm/MatMul (M*N*K), via onnx shape inference."""
    import onnx
    from onnx import numpy_helper, shape_inference

    params = 0
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}
    for t in m.graph.initializer:
        if t.data_type in floats:
            params += int(np.prod(t.dims))
    for n in m.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in floats:
                    params += int(np.prod(a.t.dims))
    m2 = onnx.ModelProto()
    m2.CopyFrom(m)
    m2.graph.input[0].type.tensor_type.shape.dim[0].ClearField("dim_param")
    m2.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    m2 = shape_inference.infer_shapes(m2)
    shapes = {}
    for vi in list(m2.graph.value_info) + list(m2.graph.input) + list(m2.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for t in m2.graph.initializer:
        shapes[t.name] = list(t.dims)
    macs = 0
    for n in m2.graph.node:
        if n.op_type == "Conv":
            w = shapes[n.input[1]]
            out = shapes[n.output[0]]
            macs += int(np.prod(out)) * int(np.prod(w[1:]))
        elif n.op_type == "Gemm":
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            ta = any(x.name == "transA" and x.i for x in n.attribute)
            tb = any(x.name == "transB" and x.i for x in n.attribute)
            mdim, k = (a[1], a[0]) if ta else (a[0], a[1])
            ndim = b[0] if tb else b[1]
            macs += mdim * ndim * k
        elif n.op_type == "MatMul":
            a, b = shapes[n.input[0]], shapes[n.input[1]]
            out = shapes[n.output[0]]
            macs += int(np.prod(out)) * a[-1]
    return params, macs


def eval16():
    """The first 16 images of the test set, float32 16 x 1 x 28 x 28 = pixel/255."""
    x, _ = load_split("t10k")
    return x[:EVAL16].contiguous()


@torch.no_grad()
def dump_logits(model, name, data_dir=DATA_DIR):
    """Write data_dir/<name>.logits16.npy (eval-mode logits on eval16()) and data_dir/eval16.npy."""
    model.eval()
    os.makedirs(data_dir, exist_ok=True)
    x = eval16()
    logits = model(x).numpy().astype(np.float32)
    np.save(os.path.join(data_dir, f"{name}.logits16.npy"), logits)
    np.save(os.path.join(data_dir, "eval16.npy"), x.numpy().astype(np.float32))
    return logits
