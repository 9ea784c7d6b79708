"""Writes a folder of RGB JPEG "photos" at 224x224 for the real-size benchmarks and tests.

No real photographs are reachable from these machines, so each image is a Fashion-MNIST image
upscaled to 224x224 with bicubic resampling, tinted with a random colour and set on a random
smooth background, saved as JPEG (quality 90) in class folders (the ImageFolder layout users
have). It exercises what a user's folder does: decoding, resizing-free loading at the model's
size, three channels, and a realistic file size.

usage: make_photos.py OUT_DIR [COUNT]   (existing files are kept)
"""
import gzip
import os
import sys

import numpy as np
from PIL import Image

SRC = "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz"
LABELS = "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz"
CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]


def read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8, offset=offset)


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    images = read_idx(SRC, 16).reshape(-1, 28, 28)
    labels = read_idx(LABELS, 8)
    rng = np.random.default_rng(0)
    for i in range(count):
        folder = os.path.join(out, CLASSES[labels[i]])
        path = os.path.join(folder, "img%05d.jpg" % i)
        if os.path.exists(path):
            continue
        os.makedirs(folder, exist_ok=True)
        grey = np.asarray(Image.fromarray(images[i]).resize((224, 224), Image.BICUBIC), dtype=np.float32) / 255
        tint = rng.uniform(0.3, 1.0, size=3)
        y, x = np.mgrid[0:224, 0:224] / 224.0
        phase = rng.uniform(0, 2 * np.pi, size=3)
        bg = 0.25 + 0.2 * np.sin(np.stack([x * 3 + phase[c] + y * 2 for c in range(3)], axis=-1))
        rgb = bg * (1 - grey[..., None]) + grey[..., None] * tint
        Image.fromarray(np.clip(rgb * 255, 0, 255).astype(np.uint8)).save(path, quality=90)


if __name__ == "__main__":
    main()
