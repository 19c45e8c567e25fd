"""Regenerate models/digits_res/: a small residual CNN trained on scikit-learn's digits (8x8
images), its float weights with activation calibration, the test split and the precision
plans, in the layer-graph network format (docs/network.md).

    pip install scikit-learn        # only this script needs it
    python scripts/train_digits_res.py [--out models/digits_res] [--epochs 60] [--seed 0]
    python scripts/train_digits_res.py --gradcheck     # finite-difference check of backprop

The network (ResNet style, no BatchNorm, 8x8 input, no upsampling):

    conv1   conv 3x3 1->8 pad 1, ReLU                          (8, 8, 8)
    b1c1    conv 3x3 8->8 pad 1, ReLU
    b1c2    conv 3x3 8->8 pad 1                                  signed
    b1add   add(b1c2, conv1), ReLU                               identity shortcut
    b2c1    conv 3x3 8->16 stride 2 pad 1, ReLU  (b1add)         (16, 4, 4)
    b2c2    conv 3x3 16->16 pad 1                                signed
    b2proj  conv 1x1 8->16 stride 2              (b1add)         signed, projection shortcut
    b2add   add(b2c2, b2proj), ReLU
    gap     global average pooling                               (16, 1, 1)
    fc      fc 16->10                                            logits

is trained in plain numpy (strided im2col convolutions, backprop through conv, add, ReLU,
global average pooling and fc; Adam with a cosine learning rate, cross entropy) on the same
80/20 stratified split (seed 0) of the digits as scripts/train_digits.py, so test.npz holds
the same 360 images as models/digits/test.npz. Calibration records the largest output of
every conv, fc and add layer (after its ReLU; the largest magnitude without) over the
training split. Deterministic for a given seed (BLAS is kept to one thread).

Results (seed 0, 60 epochs, about 30 s on one core): float test accuracy 0.9667 (the
float forward of golden/nn/network.py agrees, and its calibrate() gives the same act_max);
quantised with golden/nn/network.py (quantize, predict): int8 0.9639, int4 0.8083, mixed
0.9694. int4 loses most at b2add: its 4-bit output is what gap averages (keeping its scale)
into the classifier; with b2add alone at 4 bits (all else 8) accuracy is 0.919.
Backprop gradient check (--gradcheck, 4 images, every parameter, central differences with
eps 1e-5): max relative error 8.9e-06.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")     # one core, and bitwise reproducible
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_digits import col2im, im2col, out_size, split  # noqa: E402  (one split, one im2col)

# name, input(s), out channels, kernel, stride, pad, relu  (conv layers)
CONVS = {
    "conv1": ("input", 8, 3, 1, 1, True),
    "b1c1": ("conv1", 8, 3, 1, 1, True),
    "b1c2": ("b1c1", 8, 3, 1, 1, False),
    "b2c1": ("b1add", 16, 3, 2, 1, True),
    "b2c2": ("b2c1", 16, 3, 1, 1, False),
    "b2proj": ("b1add", 16, 1, 2, 0, False),
}
ADDS = {"b1add": ("b1c2", "conv1"), "b2add": ("b2c2", "b2proj")}   # both with ReLU
ORDER = ["conv1", "b1c1", "b1c2", "b1add", "b2c1", "b2c2", "b2proj", "b2add", "gap", "fc"]
CALIBRATED = [n for n in ORDER if n != "gap"]          # conv, add and fc outputs

LAYERS = [
    {"name": "conv1", "type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "pad": 1,
     "relu": True},
    {"name": "b1c1", "type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "pad": 1,
     "relu": True},
    {"name": "b1c2", "type": "conv", "out_channels": 8, "kernel": 3, "stride": 1, "pad": 1,
     "relu": False},
    {"name": "b1add", "type": "add", "inputs": ["b1c2", "conv1"], "relu": True},
    {"name": "b2c1", "type": "conv", "out_channels": 16, "kernel": 3, "stride": 2, "pad": 1,
     "relu": True},
    {"name": "b2c2", "type": "conv", "out_channels": 16, "kernel": 3, "stride": 1, "pad": 1,
     "relu": False},
    {"name": "b2proj", "type": "conv", "inputs": ["b1add"], "out_channels": 16, "kernel": 1,
     "stride": 2, "pad": 0, "relu": False},
    {"name": "b2add", "type": "add", "inputs": ["b2c2", "b2proj"], "relu": True},
    {"name": "gap", "type": "gap"},
    {"name": "fc", "type": "fc", "out_features": 10, "relu": False},
]

_W = ("conv1", "b1c1", "b1c2", "b2c1", "b2c2", "b2proj", "fc")


def _plan(input_bits, default, **over):
    return {"input_bits": input_bits,
            "layers": {n: dict(over.get(n, default)) for n in _W}}


PLANS = {
    "int8": _plan(8, {"w_bits": 8, "a_bits": 8}),
    "int4": _plan(4, {"w_bits": 4, "a_bits": 4}, fc={"w_bits": 4, "a_bits": 8}),
    # 8-bit stem and classifier, 4-bit weights in the blocks (b2c2 mixes 8- and 4-bit weight
    # blocks, BWQ style) with 4-bit unsigned activations; the signed branch outputs summed
    # by the adds keep 6 bits, and b2add, which gap averages into the classifier's input,
    # keeps 8 (at 4 bits it alone costs ~5 points: the int4 plan's main loss)
    "mixed": {"input_bits": 8, "layers": {
        "conv1": {"w_bits": 8, "a_bits": 8},
        "b1c1": {"w_bits": 4, "a_bits": 4},
        "b1c2": {"w_bits": 4, "a_bits": 6},
        "b1add": {"a_bits": 4},
        "b2c1": {"w_bits": 4, "a_bits": 4},
        "b2c2": {"w_bits": 4, "a_bits": 6, "blocks": [8, 4]},
        "b2proj": {"w_bits": 4, "a_bits": 6},
        "b2add": {"a_bits": 8},
        "fc": {"w_bits": 8, "a_bits": 8}}},
}


# -- numpy residual CNN ---------------------------------------------------------------------
class ResNet:
    def __init__(self, rng, dtype=np.float64):
        def he(*shape, fan_in):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(dtype)
        self.p = {}
        chans = {"input": 1, "b1add": 8}            # channels of every conv's input
        for name, (src, k_out, k, _s, _pad, _relu) in CONVS.items():
            c = chans[src]
            self.p[f"{name}.weight"] = he(k_out, c, k, k, fan_in=c * k * k)
            self.p[f"{name}.bias"] = np.zeros(k_out, dtype)
            chans[name] = k_out
        self.p["fc.weight"] = he(10, 16, fan_in=16)
        self.p["fc.bias"] = np.zeros(10, dtype)

    def forward(self, x, keep=False):
        """Logits; with keep, also the cache for backward and every layer's output."""
        p, acts, cache = self.p, {"input": x}, {}
        for name in ORDER:
            if name in CONVS:
                src, k_out, k, s, pad, relu = CONVS[name]
                h = acts[src]
                n, _, hh, ww = h.shape
                oh, ow = out_size(hh, k, s, pad), out_size(ww, k, s, pad)
                cols = im2col(h, k, pad, s)
                z = (p[f"{name}.weight"].reshape(k_out, -1) @ cols).reshape(n, k_out, oh, ow) \
                    + p[f"{name}.bias"][None, :, None, None]
                acts[name] = np.maximum(z, 0) if relu else z
                cache[name] = (h.shape, cols, z)
            elif name in ADDS:
                a, b = ADDS[name]
                z = acts[a] + acts[b]
                acts[name] = np.maximum(z, 0)
                cache[name] = z
            elif name == "gap":
                acts[name] = acts["b2add"].mean(axis=(2, 3))          # (N, 16)
            else:                                                    # fc
                acts[name] = acts["gap"] @ p["fc.weight"].T + p["fc.bias"]
        return (acts["fc"], cache, acts) if keep else acts["fc"]

    def backward(self, cache, acts, dlogits):
        p, g = self.p, {}
        d = {}                                       # gradient w.r.t. each layer's output

        def acc(name, grad):
            d[name] = d[name] + grad if name in d else grad

        g["fc.weight"] = dlogits.T @ acts["gap"]
        g["fc.bias"] = dlogits.sum(0)
        dgap = dlogits @ p["fc.weight"]                              # (N, 16)
        n, c, hh, ww = acts["b2add"].shape
        acc("b2add", np.broadcast_to(dgap[:, :, None, None] / (hh * ww), (n, c, hh, ww)))
        for name in reversed(ORDER[:-2]):
            dy = d.pop(name)
            if name in ADDS:
                dz = dy * (cache[name] > 0)
                for src in ADDS[name]:
                    acc(src, dz)
                continue
            src, k_out, k, s, pad, relu = CONVS[name]
            shape, cols, z = cache[name]
            dz = dy * (z > 0) if relu else dy
            dzf = dz.reshape(dz.shape[0], k_out, -1)
            w = p[f"{name}.weight"]
            g[f"{name}.weight"] = np.tensordot(dzf, cols, axes=([0, 2], [0, 2])).reshape(w.shape)
            g[f"{name}.bias"] = dz.sum(axis=(0, 2, 3))
            if src != "input":
                acc(src, col2im(w.reshape(k_out, -1).T @ dzf, shape, k, pad, s))
        return g


def loss_and_grad(net, x, y):
    logits, cache, acts = net.forward(x, keep=True)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = -logp[np.arange(len(y)), y].mean()
    prob = np.exp(logp)
    prob[np.arange(len(y)), y] -= 1
    return loss, net.backward(cache, acts, prob / len(y))


def gradcheck(x, y, seed, eps=1e-5):
    """Central differences of the loss against backward() for every parameter, in float64
    on a tiny batch; returns the largest relative error |num - ana| / (|num| + |ana|) over
    all entries (floor 1e-7 on the denominator: exact zeros from dead ReLUs). eps = 1e-5
    balances truncation error against round-off in the loss differences."""
    rng = np.random.default_rng(seed)
    net = ResNet(rng)
    for k in net.p:                              # non-zero biases exercise their gradients
        if k.endswith(".bias"):
            net.p[k] = rng.standard_normal(net.p[k].shape) * 0.1
    _, g = loss_and_grad(net, x, y)
    worst = 0.0
    for k, w in net.p.items():
        num = np.empty_like(w)
        flat, nflat = w.reshape(-1), num.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            lp, _ = loss_and_grad(net, x, y)
            flat[i] = old - eps
            lm, _ = loss_and_grad(net, x, y)
            flat[i] = old
            nflat[i] = (lp - lm) / (2 * eps)
        rel = np.abs(num - g[k]) / np.maximum(np.abs(num) + np.abs(g[k]), 1e-7)
        worst = max(worst, float(rel.max()))
        print(f"  {k:15s} {w.size:5d} entries  max |grad| {np.abs(g[k]).max():.3e}  "
              f"max abs err {np.abs(num - g[k]).max():.1e}  max rel err {rel.max():.1e}")
    return worst


def train(x, y, epochs, seed, lr=3e-3, batch=32):
    """Adam on mini-batches of 32, the learning rate decaying on a cosine to zero."""
    rng = np.random.default_rng(seed)
    net = ResNet(rng)
    m = {k: np.zeros_like(v) for k, v in net.p.items()}
    v = {k: np.zeros_like(v) for k, v in net.p.items()}
    b1, b2, t = 0.9, 0.999, 0
    steps = epochs * -(-len(x) // batch)
    for ep in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            _, grads = loss_and_grad(net, x[idx], y[idx])
            step_lr = lr * 0.5 * (1 + np.cos(np.pi * t / steps))     # cosine decay
            t += 1
            for k in net.p:
                m[k] = b1 * m[k] + (1 - b1) * grads[k]
                v[k] = b2 * v[k] + (1 - b2) * grads[k] ** 2
                net.p[k] -= step_lr * (m[k] / (1 - b1 ** t)) / (np.sqrt(v[k] / (1 - b2 ** t))
                                                                 + 1e-8)
        if (ep + 1) % 10 == 0:
            acc = (net.forward(x).argmax(1) == y).mean()
            print(f"epoch {ep + 1}: train accuracy {acc:.4f}", flush=True)
    return net


def quantised_accuracies(out):
    """Test accuracy of every plan with the project's own integer network, if importable."""
    sys.path.insert(0, str(ROOT))
    try:
        from bfimna.golden.nn.network import load_network, load_plan, predict, quantize
    except ImportError as e:                                    # pragma: no cover
        print(f"(quantised accuracies skipped: {e})")
        return {}
    net = load_network(out / "network.yaml")
    x, y = net.test_set()
    res = {}
    for name in PLANS:
        q = quantize(net, load_plan(out / f"{name}.yaml", net))
        res[name] = float((predict(q, q.quantize_input(x)) == y).mean())
    return res


def flow_yaml(obj):
    return yaml.safe_dump(obj, default_flow_style=True, sort_keys=False, width=200).strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "digits_res")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gradcheck", action="store_true",
                    help="only check backward() against finite differences on 4 images")
    args = ap.parse_args()

    xtr, xte, ytr, yte = split(args.seed)
    if args.gradcheck:
        worst = gradcheck(xtr[:4], ytr[:4], args.seed)
        print(f"gradient check: max relative error {worst:.2e}")
        sys.exit(0 if worst < 1e-5 else 1)

    t0 = time.perf_counter()
    net = train(xtr, ytr, args.epochs, args.seed)
    print(f"training took {time.perf_counter() - t0:.1f} s")
    acc = (net.forward(xte).argmax(1) == yte).mean()
    print(f"float test accuracy {acc:.4f} on {len(yte)} images")
    _, _, acts = net.forward(xtr, keep=True)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.astype(np.float32) for k, v in net.p.items()}
    arrays["input.act_max"] = np.float32(xtr.max())
    for name in CALIBRATED:
        arrays[f"{name}.act_max"] = np.float32(np.abs(acts[name]).max())
    np.savez(out / "weights.npz", **arrays)
    np.savez_compressed(out / "test.npz", x=xte.astype(np.float32), y=yte.astype(np.int64))
    head = {"name": "digits_res",
            "input": {"channels": 1, "height": 8, "width": 8},
            "weights": "weights.npz", "dataset": "test.npz",
            "float_accuracy": round(float(acc), 4)}
    text = ("# Small residual CNN on scikit-learn's digits (8x8), regenerated by "
            "scripts/train_digits_res.py.\n# Format: docs/network.md (layer graph).\n")
    text += "".join(f"{k}: {flow_yaml(v) if isinstance(v, dict) else v}\n"
                    for k, v in head.items())
    text += "layers:\n" + "".join(f"  - {flow_yaml(layer)}\n" for layer in LAYERS)
    assert yaml.safe_load(text)["layers"] == LAYERS
    (out / "network.yaml").write_text(text)
    for name, plan in PLANS.items():
        body = "".join(f"  {k}: {flow_yaml(v)}\n" for k, v in plan["layers"].items())
        (out / f"{name}.yaml").write_text(
            f"# Precision plan {name} for models/digits_res/network.yaml (docs/network.md).\n"
            f"name: {name}\ninput_bits: {plan['input_bits']}\nlayers:\n{body}")
    print(f"wrote {out}/network.yaml, weights.npz, test.npz, "
          + ", ".join(f"{n}.yaml" for n in PLANS))
    for name, a in quantised_accuracies(out).items():
        print(f"quantised test accuracy, plan {name}: {a:.4f}")


if __name__ == "__main__":
    main()
