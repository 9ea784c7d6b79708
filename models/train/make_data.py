"""Write the small bundled data sets under models/data/ from the Debian Fashion-MNIST package.

    /usr/bin/python3 models/train/make_data.py

  calib-images-idx3-ubyte.gz, calib-labels-idx1-ubyte.gz   first 2,000 images/labels of the TRAINING set
  eval-images-idx3-ubyte.gz,  eval-labels-idx1-ubyte.gz    first 1,000 images/labels of the TEST set
  eval16.npy                                               first 16 test images, float32 16x1x28x28 = pixel/255

IDX files are gzip with mtime 0, so reruns are byte-identical. The per-model logits
(<name>.logits16.npy) are written by train.py.
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CALIB = 2000
EVAL = 1000


def main():
    out = common.DATA_DIR
    os.makedirs(out, exist_ok=True)
    src = common.DATASET_DIR
    for split, prefix, n in (("train", "calib", CALIB), ("t10k", "eval", EVAL)):
        images = common.read_idx(os.path.join(src, f"{split}-images-idx3-ubyte.gz"))[:n]
        labels = common.read_idx(os.path.join(src, f"{split}-labels-idx1-ubyte.gz"))[:n]
        common.write_idx(os.path.join(out, f"{prefix}-images-idx3-ubyte.gz"), images)
        common.write_idx(os.path.join(out, f"{prefix}-labels-idx1-ubyte.gz"), labels)
        print(f"{prefix}: {images.shape} images, {labels.shape} labels, from {split}")
    x = common.eval16().numpy().astype(np.float32)
    np.save(os.path.join(out, "eval16.npy"), x)
    print(f"eval16.npy: {x.shape} {x.dtype}")


if __name__ == "__main__":
    main()
