"""Regenerate models/digits/: a small CNN trained on scikit-learn's digits (8x8 images),
its float weights with activation calibration, the test split and the precision plans.

    pip install scikit-learn        # only this script needs it
    python scripts/train_digits.py [--out models/digits] [--epochs 60] [--seed 0]

The network (conv 3x3 1->8, ReLU, maxpool 2, conv 3x3 8->16, ReLU, maxpool 2, fc 64->10)
is trained in plain numpy (im2col convolutions, Adam, cross entropy), so no deep
learning framework is needed. Calibration records the largest activation of every
layer over the training split; golden/nn/network.py turns weights and calibration into the
integer network for any precision plan. Deterministic for a given seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent

LAYERS = [
    {"name": "conv1", "type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "pad": 1,
     "relu": True},
    {"name": "pool1", "type": "maxpool", "kernel": 2, "stride": 2},
    {"name": "conv2", "type": "conv", "out_channels": 16, "kernel": 3, "stride": 1, "pad": 1,
     "relu": True},
    {"name": "pool2", "type": "maxpool", "kernel": 2, "stride": 2},
    {"name": "fc", "type": "fc", "out_features": 10, "relu": False},
]

PLANS = {
    "int8": {"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 8},
                                         "conv2": {"w_bits": 8, "a_bits": 8},
                                         "fc": {"w_bits": 8, "a_bits": 8}}},
    "int4": {"input_bits": 4, "layers": {"conv1": {"w_bits": 4, "a_bits": 4},
                                         "conv2": {"w_bits": 4, "a_bits": 4},
                                         "fc": {"w_bits": 4, "a_bits": 8}}},
    "mixed": {"input_bits": 8, "layers": {"conv1": {"w_bits": 8, "a_bits": 4},
                                          "conv2": {"w_bits": 4, "a_bits": 4,
                                                    "blocks": [8, 4]},
                                          "fc": {"w_bits": 8, "a_bits": 8}}},
}


# -- numpy CNN ------------------------------------------------------------------------------
def out_size(h, k, s, pad):
    return (h + 2 * pad - k) // s + 1


def im2col(x, k, pad, s=1):
    """(N, C, H, W) -> (N, C*k*k, OH*OW), rows in (c, dy, dx) order like weight.reshape
    (stride s; scripts/train_digits_res.py uses it too)."""
    n, c, h, w = x.shape
    oh, ow = out_size(h, k, s, pad), out_size(w, k, s, pad)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = np.empty((n, c, k, k, oh, ow), dtype=x.dtype)
    for dy in range(k):
        for dx in range(k):
            cols[:, :, dy, dx] = xp[:, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s]
    return cols.reshape(n, c * k * k, oh * ow)


def col2im(cols, shape, k, pad, s=1):
    """The adjoint of im2col: scatter-add the columns back onto (N, C, H, W)."""
    n, c, h, w = shape
    oh, ow = out_size(h, k, s, pad), out_size(w, k, s, pad)
    cols = cols.reshape(n, c, k, k, oh, ow)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), dtype=cols.dtype)
    for dy in range(k):
        for dx in range(k):
            xp[:, :, dy:dy + s * (oh - 1) + 1:s, dx:dx + s * (ow - 1) + 1:s] += cols[:, :, dy, dx]
    return xp[:, :, pad:pad + h, pad:pad + w]


def split(seed):
    """The digits (N, 1, 8, 8) scaled to 0..1 and their labels, split 80/20 stratified
    (train x, test x, train y, test y); both digits models use this split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float64)[:, None]      # (N, 1, 8, 8), values 0..1
    return train_test_split(x, d.target, test_size=0.2, random_state=seed, stratify=d.target)


class Net:
    def __init__(self, rng):
        def he(*shape, fan_in):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float64)
        self.p = {"conv1.weight": he(8, 1, 3, 3, fan_in=9), "conv1.bias": np.zeros(8),
                  "conv2.weight": he(16, 8, 3, 3, fan_in=72), "conv2.bias": np.zeros(16),
                  "fc.weight": he(10, 64, fan_in=64), "fc.bias": np.zeros(10)}

    def forward(self, x, keep=False):
        p, cache, acts = self.p, {}, {}
        h = x
        for name in ("conv1", "conv2"):
            w, b = p[f"{name}.weight"], p[f"{name}.bias"]
            n, c, hh, ww = h.shape
            cols = im2col(h, 3, 1)
            z = (w.reshape(w.shape[0], -1) @ cols).reshape(n, w.shape[0], hh, ww) \
                + b[None, :, None, None]
            a = np.maximum(z, 0)
            acts[name] = a
            # maxpool 2x2
            r = a.reshape(n, w.shape[0], hh // 2, 2, ww // 2, 2)
            m = r.max(axis=(3, 5))
            pool = "pool1" if name == "conv1" else "pool2"
            acts[pool] = m
            cache[name] = (h, cols, z, a, m)
            h = m
        flat = h.reshape(h.shape[0], -1)
        logits = flat @ p["fc.weight"].T + p["fc.bias"]
        acts["fc"] = logits
        cache["fc"] = flat
        return (logits, cache, acts) if keep else logits

    def backward(self, cache, dlogits):
        p, g = self.p, {}
        flat = cache["fc"]
        g["fc.weight"] = dlogits.T @ flat
        g["fc.bias"] = dlogits.sum(0)
        dh = (dlogits @ p["fc.weight"]).reshape(cache["conv2"][4].shape)
        for name in ("conv2", "conv1"):
            h, cols, z, a, m = cache[name]
            n, k, hh, ww = a.shape
            r = a.reshape(n, k, hh // 2, 2, ww // 2, 2)
            mask = (r == m[:, :, :, None, :, None])
            da = (mask * dh[:, :, :, None, :, None]).reshape(a.shape)
            dz = da * (z > 0)
            w = p[f"{name}.weight"]
            dzf = dz.reshape(n, k, -1)
            g[f"{name}.weight"] = np.einsum("nkp,ncp->kc", dzf, cols).reshape(w.shape)
            g[f"{name}.bias"] = dz.sum(axis=(0, 2, 3))
            dcols = np.einsum("kc,nkp->ncp", w.reshape(k, -1), dzf)
            dh = col2im(dcols, h.shape, 3, 1)
        return g


def train(x, y, epochs, seed):
    rng = np.random.default_rng(seed)
    net = Net(rng)
    m = {k: np.zeros_like(v) for k, v in net.p.items()}
    v = {k: np.zeros_like(v) for k, v in net.p.items()}
    lr, b1, b2, t = 3e-3, 0.9, 0.999, 0
    for ep in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            idx = order[i:i + 32]
            logits, cache, _ = net.forward(x[idx], keep=True)
            e = np.exp(logits - logits.max(1, keepdims=True))
            prob = e / e.sum(1, keepdims=True)
            prob[np.arange(len(idx)), y[idx]] -= 1
            grads = net.backward(cache, prob / len(idx))
            t += 1
            for k in net.p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                net.p[k] -= lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t)) + 1e-8)
        if (ep + 1) % 10 == 0:
            acc = (net.forward(x).argmax(1) == y).mean()
            print(f"epoch {ep + 1}: train accuracy {acc:.4f}", flush=True)
    return net


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "digits")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    xtr, xte, ytr, yte = split(args.seed)
    net = train(xtr, ytr, args.epochs, args.seed)
    acc = (net.forward(xte).argmax(1) == yte).mean()
    print(f"float test accuracy {acc:.4f} on {len(yte)} images")
    _, _, acts = net.forward(xtr, keep=True)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.astype(np.float32) for k, v in net.p.items()}
    arrays["input.act_max"] = np.float32(1.0)
    for name in ("conv1", "conv2", "fc"):
        a = acts[name]
        arrays[f"{name}.act_max"] = np.float32(np.abs(a).max())
    np.savez(out / "weights.npz", **arrays)
    np.savez_compressed(out / "test.npz", x=xte.astype(np.float32), y=yte.astype(np.int64))
    net_yaml = {"name": "digits_cnn",
                "input": {"channels": 1, "height": 8, "width": 8},
                "weights": "weights.npz", "dataset": "test.npz",
                "float_accuracy": round(float(acc), 4),
                "layers": LAYERS}
    header = ("# Small CNN on scikit-learn's digits (8x8), regenerated by "
              "scripts/train_digits.py.\n# Format: docs/network.md.\n")
    (out / "network.yaml").write_text(header + yaml.safe_dump(net_yaml, sort_keys=False))
    for name, plan in PLANS.items():
        (out / f"{name}.yaml").write_text(
            f"# Precision plan {name} for models/digits/network.yaml (docs/network.md).\n"
            + yaml.safe_dump({"name": name, **plan}, sort_keys=False))
    print(f"wrote {out}/network.yaml, weights.npz, test.npz, "
          + ", ".join(f"{n}.yaml" for n in PLANS))


if __name__ == "__main__":
    main()
