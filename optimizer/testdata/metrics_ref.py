#!/usr/bin/python3
"""Independent reference for chanopt's CONet layer metrics (optimizer/metrics.go).

Usage: metrics_ref.py MODEL.onnx  ->  JSON list, one object per Conv/ConvTranspose/Gemm/MatMul whose
weight is an initializer (or a Constant, or an Identity of either), in node order.

EVBMF here follows the papers (Nakajima et al., JMLR 2013; NIPS 2012) with numpy's SVD and scipy's
bounded scalar minimiser, and writes the free energy literally as sum(x - ln x) + sum over x > xbar of
psi1(x); the Go code uses an algebraically rearranged form and its own Brent search.
"""
import json
import math
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from scipy.optimize import minimize_scalar

TAU_BAR = 2.5129


def evbmf(y):
    """Return (K, shrunk values, sigma2) for the matrix y."""
    if y.shape[0] > y.shape[1]:
        y = y.T
    l, m = y.shape
    s = np.linalg.svd(y, compute_uv=False)
    energy = float(np.sum(s ** 2))
    if energy <= 0:
        return 0, [], 0.0
    alpha = l / m
    tb = TAU_BAR * math.sqrt(alpha)
    xbar = (1 + tb) * (1 + alpha / tb)
    # at most hbar = ceil(l*m/(l+m)) - 1 components survive; values from index hbar on are noise
    hbar = -(-(l * m) // (l + m)) - 1
    lower = max(s[hbar] ** 2 / (m * xbar), float(np.mean(s[hbar:] ** 2)) / m)
    upper = energy / (l * m)

    def free_energy(v):
        x = s ** 2 / (m * v)
        total = float(np.sum(x - np.log(x)))
        big = x[x > xbar]
        if big.size:
            tau = 0.5 * (big - 1 - alpha + np.sqrt((big - 1 - alpha) ** 2 - 4 * alpha))
            total += float(np.sum(np.log(tau + 1) + alpha * np.log(tau / alpha + 1) - tau))
        return total

    if lower < upper:
        sigma2 = float(minimize_scalar(free_energy, bounds=(lower, upper), method="bounded",
                                       options={"xatol": max(1e-10 * lower, 1e-30 * upper), "maxiter": 500}).x)
    else:
        sigma2 = upper
    thr = math.sqrt(m * sigma2 * (1 + tb) * (1 + alpha / tb))
    kept = s[s > thr]
    t = sigma2 / kept ** 2
    shrunk = kept / 2 * (1 - (l + m) * t + np.sqrt(np.maximum((1 - (l + m) * t) ** 2 - 4 * l * m * t ** 2, 0)))
    return int(kept.size), [float(v) for v in shrunk], sigma2


def side(mat_, channels):
    k, vals, sigma2 = evbmf(mat_)
    rank = k / channels
    kg = sum(v / vals[0] for v in vals) / channels if k else 0.0
    mc = vals[0] / vals[-1] if k else 0.0
    qc = math.atan2(rank, 1 - 1 / mc if mc else 1.0)
    return dict(k=k, rank=rank, kg=kg, mc=mc, qc=qc, sigma2=sigma2)


def constants(graph):
    """Initializers, Constant outputs and Identity copies of either, by name."""
    c = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    c[n.output[0]] = numpy_helper.to_array(a.t)
        elif n.op_type == "Identity" and n.input[0] in c:
            c[n.output[0]] = c[n.input[0]]
    return c


def layer(n, w):
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
    w = w.astype(np.float64)
    g = attrs.get("group", 1)
    if n.op_type in ("Gemm", "MatMul"):
        if w.ndim != 2:
            return None
        out_m = w if (n.op_type == "Gemm" and attrs.get("transB", 0)) else w.T
        in_m = out_m.T
        c_out, c_in = out_m.shape
    elif n.op_type == "Conv":
        out_m = w.reshape(w.shape[0], -1)
        in_m = np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)
        c_out, c_in = w.shape[0], w.shape[1] * g
    else:  # ConvTranspose: C_in x C_out/g x k
        in_m = w.reshape(w.shape[0], -1)
        out_m = np.moveaxis(w, 1, 0).reshape(w.shape[1], -1)
        c_in, c_out = w.shape[0], w.shape[1] * g
    rec = dict(name=n.name or n.output[0], op=n.op_type, in_channels=int(c_in), out_channels=int(c_out))
    for key, mat_ in (("in", in_m), ("out", out_m)):
        present = mat_.shape[0] > 1 and mat_.size > 0
        rec["has_" + key] = present
        if present:
            for name, v in side(mat_, mat_.shape[0]).items():
                rec[name + "_" + key] = v
    qcs = [rec["qc_" + k] for k in ("in", "out") if rec["has_" + k]]
    rec["qc"] = sum(qcs) / len(qcs) if qcs else 0.0
    return rec


def main(path):
    model = onnx.load(path)
    c = constants(model.graph)
    out = []
    for n in model.graph.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            continue
        if len(n.input) < 2 or n.input[1] not in c:
            continue
        rec = layer(n, c[n.input[1]])
        if rec is not None:
            out.append(rec)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
