#!/usr/bin/python3
"""The EVBMF of the CONet/CONetV2 authors' VBMF.py, as it behaves, for chanopt's tests.

Reads a JSON list of {"s": singular values, descending, "rows": L, "cols": M} on stdin and writes a
JSON list of {"ok", "k", "sigma2", "k_global"}: what their code computes on an L x M matrix with
those singular values, without transposing it (their code assumes L <= M). Written here from its
definitions, not copied: H = L, alpha = L/M, tau_bar = 2.5129 sqrt(alpha),
x_bar = (1 + tau_bar)(1 + alpha/tau_bar); sigma^2 minimises the EVB free energy over
[lower, upper] with scipy's bounded scalar minimiser at its default tolerance (as theirs),
lower = max(s_j^2/(M x_bar), mean(s_j..^2)/M) at j = ceil(L/(1+alpha)) - 1 (floating point),
upper = sum(s^2)/(L M); K counts s above sqrt(M sigma^2 x_bar). "ok" is false where their code
would raise (the bounds cross, or j runs past the values). "k_global" is K at the global minimum of
the same free energy over the same interval (a dense grid), which the bounded search need not find.
"""
import json
import math
import sys

import numpy as np
from scipy.optimize import minimize_scalar


def free_energy(s, m, alpha, xbar):
    def f(v):
        x = s ** 2 / (m * v)
        keep = x > xbar
        z1, z2 = x[keep], x[~keep]
        tau = 0.5 * (z1 - (1 + alpha) + np.sqrt((z1 - (1 + alpha)) ** 2 - 4 * alpha))
        return float(np.sum(z2 - np.log(z2)) + np.sum(z1 - tau) + np.sum(np.log((tau + 1) / z1))
                     + alpha * np.sum(np.log(tau / alpha + 1)))
    return f


def free_energy_grid(s, m, alpha, xbar, grid):
    """The same free energy at every point of grid at once."""
    x = s[None, :] ** 2 / (m * grid[:, None])
    keep = x > xbar
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = 0.5 * (x - (1 + alpha) + np.sqrt(np.maximum((x - (1 + alpha)) ** 2 - 4 * alpha, 0)))
        kept = x - tau + np.log((tau + 1) / x) + alpha * np.log(tau / alpha + 1)
        noise = x - np.log(x)
    return np.sum(np.where(keep, kept, noise), axis=1)


def authors(s, l, m):
    s = np.asarray(s, dtype=np.float64)
    alpha = l / m
    tb = 2.5129 * math.sqrt(alpha)
    xbar = (1 + tb) * (1 + alpha / tb)
    j = int(min(math.ceil(l / (1 + alpha)) - 1, l))
    if j < 0 or j >= len(s):
        return {"ok": False}
    lower = max(s[j] ** 2 / (m * xbar), float(np.mean(s[j:] ** 2)) / m)
    upper = float(np.sum(s ** 2)) / (l * m)
    if not lower <= upper or upper <= 0:
        return {"ok": False}
    f = free_energy(s, m, alpha, xbar)
    sigma2 = float(minimize_scalar(f, bounds=(lower, upper), method="bounded").x) if lower < upper else upper
    grid = np.exp(np.linspace(math.log(lower), math.log(upper), 4000)) if lower < upper else np.array([upper])
    g = float(grid[int(np.argmin(free_energy_grid(s, m, alpha, xbar, grid)))])
    count = lambda v: int(np.sum(s > math.sqrt(m * v * xbar)))
    return {"ok": True, "k": count(sigma2), "sigma2": sigma2, "k_global": count(g)}


def main():
    cases = json.load(sys.stdin)
    json.dump([authors(c["s"], c["rows"], c["cols"]) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
