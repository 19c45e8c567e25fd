"""Regenerate models/zoo/: ImageNet CNNs (ResNet18, ResNet50, AlexNet, VGG16 at 3x224x224)
in the layer-graph network format (docs/network.md) with SYNTHETIC weights, their activation
calibration, and precision plans (int8, int4; for ResNet18 also the five HAWQ-V3 plans).

    python scripts/make_zoo.py [--out models/zoo] [--calib-images 4] [--seed 0] [--only NAME]

No network access is needed, and no pretrained ImageNet weights can be fetched here: every
network.yaml says `synthetic_weights: {seed, act_max}` instead of `weights:`, and the loader
(golden/nn/network.py, `synthetic_weights(layers, seed)`) draws the weights from the seed
(He-normal weights, small normal biases, float32), so a zoo folder holds only YAML.

Calibration: the network with those weights is loaded, and `calibrate()` (golden/nn/network.py)
runs the float network on N synthetic images `np.random.default_rng(seed).random((N, 3, 224,
224))` (uniform [0, 1)), one image at a time (the max over images of each image's act_max is
the act_max over all of them; one image at a time bounds the memory of the float im2col). The
act_max values go into the YAML rounded to 6 significant digits; the loader uses what the YAML
says.

Topologies (BatchNorm folded away, i.e. absent; every conv/fc has a bias):

- ResNet18 / ResNet50 (torchvision, ResNet v1.5): `stem` conv 7x7/2 pad 3 64 + ReLU, `pool`
  maxpool 3x3/2 pad 1; stages s1..s4 of units s{s}u{u}: basic blocks (c1 3x3 + ReLU, c2 3x3)
  or bottlenecks (c1 1x1 + ReLU, c2 3x3 + ReLU carrying the stride, c3 1x1, expansion 4); a
  1x1 strided projection `ds` where the shape changes; `add` (+ ReLU) of the last conv and
  the shortcut; then `gap` and `fc` 1000.
- AlexNet (torchvision): conv1 11x11/4 pad 2 64, pool1 3/2, conv2 5x5 pad 2 192, pool2 3/2,
  conv3..conv5 3x3 pad 1 384, 256, 256, pool3 3/2, fc1..fc3 9216-4096-4096-1000 (the
  adaptive average pooling to 6x6 is the identity at 224 and is left out; no dropout).
- VGG16 (configuration D): conv1..conv13 3x3 pad 1 (64,64,M,128,128,M,256x3,M,512x3,M,
  512x3,M), pool1..pool5 2x2/2, fc1..fc3 25088-4096-4096-1000.

All convs and the hidden fcs have ReLU; the last conv of a residual branch, the projection
shortcut and the final fc do not (signed outputs, read only by an add or the network's end).

`layers(name)` builds a model's layer list (as in the YAML) and `calibrated(name, layers(name),
seed, n, size)` its calibrated network YAML at size x size; tests/test_zoo.py builds ResNet18
at 64x64 with them.
"""

from __future__ import annotations

import os
from typing import Any

if __name__ == "__main__":      # one core (not when tests/test_zoo.py imports this file)
    for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bfimna.golden.nn.network import (  # noqa: E402
    WEIGHTED,
    Network,
    NetworkError,
    calibrate,
    load_network,
    load_plan,
    quantize,
)

MODELS = ("resnet18", "resnet50", "alexnet", "vgg16")
TITLES = {"resnet18": "ResNet18", "resnet50": "ResNet50", "alexnet": "AlexNet",
          "vgg16": "VGG16"}
SIZE = 224
CLASSES = 1000
HAWQ_PLANS = ("uniform8", "latency_0.75", "latency_0.5", "latency_0.25", "uniform4")
REGEN = "python scripts/make_zoo.py"


# -- topologies --------------------------------------------------------------------------------
def _conv(name, out, k, stride=1, pad=0, relu=True, inputs=None) -> dict:
    d = {"name": name, "type": "conv"}
    if inputs is not None:
        d["inputs"] = list(inputs)
    d.update(out_channels=out, kernel=k, stride=stride, pad=pad, relu=relu)
    return d


def _pool(name, k, stride, pad=0) -> dict:
    return {"name": name, "type": "maxpool", "kernel": k, "stride": stride, "pad": pad}


def _fc(name, out, relu) -> dict:
    return {"name": name, "type": "fc", "out_features": out, "relu": relu}


def resnet(depth: int) -> list[dict]:
    """torchvision ResNet18 (basic blocks) or ResNet50 (bottlenecks, stride on the 3x3)."""
    units, bottleneck = {18: ((2, 2, 2, 2), False), 50: ((3, 4, 6, 3), True)}[depth]
    out = [_conv("stem", 64, 7, 2, 3), _pool("pool", 3, 2, 1)]
    prev, chans = "pool", 64
    for s, n in enumerate(units, start=1):
        width = 64 << (s - 1)
        for u in range(1, n + 1):
            stride = 2 if (u == 1 and s > 1) else 1
            p = f"s{s}u{u}"
            if bottleneck:
                unit_out = 4 * width
                out += [_conv(f"{p}c1", width, 1, inputs=[prev]),
                        _conv(f"{p}c2", width, 3, stride, 1),
                        _conv(f"{p}c3", unit_out, 1, relu=False)]
            else:
                unit_out = width
                out += [_conv(f"{p}c1", width, 3, stride, 1, inputs=[prev]),
                        _conv(f"{p}c2", width, 3, 1, 1, relu=False)]
            last = out[-1]["name"]
            shortcut = prev
            if stride != 1 or chans != unit_out:
                out.append(_conv(f"{p}ds", unit_out, 1, stride, 0, relu=False, inputs=[prev]))
                shortcut = f"{p}ds"
            out.append({"name": f"{p}add", "type": "add", "inputs": [last, shortcut],
                        "relu": True})
            prev, chans = f"{p}add", unit_out
    return out + [{"name": "gap", "type": "gap"}, _fc("fc", CLASSES, False)]


def alexnet() -> list[dict]:
    return [_conv("conv1", 64, 11, 4, 2), _pool("pool1", 3, 2),
            _conv("conv2", 192, 5, 1, 2), _pool("pool2", 3, 2),
            _conv("conv3", 384, 3, 1, 1), _conv("conv4", 256, 3, 1, 1),
            _conv("conv5", 256, 3, 1, 1), _pool("pool3", 3, 2),
            _fc("fc1", 4096, True), _fc("fc2", 4096, True), _fc("fc3", CLASSES, False)]


def vgg16() -> list[dict]:
    cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
           512, 512, 512, "M"]
    out, nc, npool = [], 0, 0
    for v in cfg:
        if v == "M":
            npool += 1
            out.append(_pool(f"pool{npool}", 2, 2))
        else:
            nc += 1
            out.append(_conv(f"conv{nc}", v, 3, 1, 1))
    return out + [_fc("fc1", 4096, True), _fc("fc2", 4096, True), _fc("fc3", CLASSES, False)]


def layers(name: str) -> list[dict]:
    """The layer list of model `name` (the YAML's `layers:`), the same at every input size
    (`network_yaml(..., size)` sets it; the loader infers the shapes)."""
    return {"resnet18": lambda: resnet(18), "resnet50": lambda: resnet(50),
            "alexnet": alexnet, "vgg16": vgg16}[name]()


# -- counting ----------------------------------------------------------------------------------
def stats(net: Network) -> dict:
    """Layer count, conv/fc count, MACs per image and parameters (weights + biases)."""
    macs = params = 0
    for lay in net.layers:
        if lay.type == "conv":
            k_out, oh, ow = lay.out_shape
            fan = lay.in_shape[0] // lay.groups * lay.kernel ** 2
            macs += k_out * oh * ow * fan
            params += k_out * fan + k_out
        elif lay.type == "fc":
            fan = int(np.prod(lay.in_shape))
            macs += fan * lay.out_channels
            params += fan * lay.out_channels + lay.out_channels
    return {"layers": len(net.layers),
            "conv": sum(lay.type == "conv" for lay in net.layers),
            "fc": sum(lay.type == "fc" for lay in net.layers),
            "macs": macs, "params": params}


# -- files -------------------------------------------------------------------------------------
def _flow(d: dict) -> str:
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(str(x) for x in v) + "]"
        return str(v)
    return "{" + ", ".join(f"{k}: {val(v)}" for k, v in d.items()) + "}"


def _num(v: float) -> str:
    s = f"{v:.6g}"
    return s if any(ch in s for ch in ".en") else s + ".0"


def network_yaml(name: str, lays: list[dict], seed: int, act_max: dict[str, float] | None,
                 size: int = SIZE, n_images: int = 0) -> str:
    """The network YAML text; act_max None: placeholders 1.0 (before calibration)."""
    names = ["input"] + [d["name"] for d in lays if d["type"] in ("add", *WEIGHTED)]
    am = act_max or dict.fromkeys(names, 1.0)
    head = [
        f"# {TITLES.get(name, name)} (torchvision topology, BatchNorm folded away), "
        f"3x{size}x{size} input, in the layer-graph",
        "# network format (docs/network.md).",
        "# SYNTHETIC weights (seeded He-normal; no pretrained ImageNet weights can be fetched "
        "here):",
        "# golden/nn/network.py synthetic_weights(layers, seed) draws them from `seed` on "
        "loading.",
        "# act_max: calibrated with the float network (golden/nn/network.py calibrate()) on "
        f"{n_images}",
        f"# synthetic uniform [0, 1) images, np.random.default_rng({seed}).random(({n_images}, 3, "
        f"{size}, {size})),",
        "# the largest output of every conv, fc and add layer (6 significant digits).",
        f"# Regenerate: {REGEN} --only {name} --seed {seed} --calib-images {n_images}",
    ]
    body = [f"name: {name}",
            f"input: {{channels: 3, height: {size}, width: {size}}}",
            "synthetic_weights:",
            f"  seed: {seed}",
            "  act_max:"]
    body += [f"    {n}: {_num(am[n])}" for n in names]
    body.append("layers:")
    body += [f"  - {_flow(d)}" for d in lays]
    return "\n".join(head + body) + "\n"


def calib_images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, size, size))


def calibrated(name: str, lays: list[dict], seed: int, n_images: int, size: int = SIZE,
               log=None) -> tuple[str, dict[str, float]]:
    """(network YAML text, act_max by name): loads the network with placeholder act_max (the
    loader draws the synthetic weights), runs calibrate() image by image, takes the max."""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "network.yaml"
        p.write_text(network_yaml(name, lays, seed, None, size, n_images))
        net = load_network(p)
    x = calib_images(n_images, seed, size)
    am: dict[str, float] = {}
    for i in range(n_images):
        t0 = time.time()
        for k, v in calibrate(net, x[i:i + 1]).items():
            key = k.removesuffix(".act_max")
            am[key] = max(am.get(key, 0.0), v)
        if log:
            log(f"  {name}: calibration image {i + 1}/{n_images} ({time.time() - t0:.1f} s)")
    am = {k: float(_num(v)) for k, v in am.items()}
    return network_yaml(name, lays, seed, am, size, n_images), am


def _plan_text(name: str, model: str, header: list[str], input_bits: int,
               entries: dict[str, dict]) -> str:
    lines = [f"# Precision plan {name} for models/zoo/{model}/network.yaml (docs/network.md)."]
    lines += [f"# {h}" if h else "#" for h in header]
    lines += [f"name: {name}", f"input_bits: {input_bits}", "layers:"]
    lines += [f"  {k}: {_flow(v)}" for k, v in entries.items()]
    return "\n".join(lines) + "\n"


def uniform_plans(model: str, lays: list[dict]) -> dict[str, str]:
    """int8 (everything 8/8) and int4 (first conv and last fc 8/8, the rest 4/4)."""
    weighted = [d["name"] for d in lays if d["type"] in WEIGHTED]
    first, last = weighted[0], weighted[-1]
    out = {}
    for bits in (8, 4):
        entries = {}
        for d in lays:
            if d["type"] in WEIGHTED:
                b = 8 if d["name"] in (first, last) else bits
                entries[d["name"]] = {"w_bits": b, "a_bits": b}
            elif d["type"] == "add":
                entries[d["name"]] = {"a_bits": bits}
        header = (["Every conv and fc layer: 8-bit weights and outputs; 8-bit input."]
                  if bits == 8 else
                  ["The usual convention of keeping the first and the last layer at 8 bits: "
                   f"{first} and {last}",
                   "w8/a8, every other conv and fc layer w4/a4 (add layers a4); 8-bit input."])
        out[f"int{bits}"] = _plan_text(f"int{bits}", model, header, 8, entries)
    return out


# HAWQ-V3 ResNet18 bit configurations (github.com/Zhen-Dong/HAWQ, bit_config.py): per unit
# (act, c1, act1, c2) and, for the units with a downsample conv, its weight bits (id).
HAWQ_TOP1 = {"float": 71.47, "uniform8": 71.56, "latency_0.75": 70.40, "latency_0.5": 70.34,
             "latency_0.25": 68.56, "uniform4": 68.45}
_UNITS = ("s1u1", "s1u2", "s2u1", "s2u2", "s3u1", "s3u2", "s4u1", "s4u2")
HAWQ: dict[str, dict[str, Any]] = {
    "uniform8": {u: (8, 8, 8, 8) for u in _UNITS} | {"id": {"s2u1": 8, "s3u1": 8, "s4u1": 8}},
    "uniform4": {u: (4, 4, 4, 4) for u in _UNITS} | {"id": {"s2u1": 4, "s3u1": 4, "s4u1": 4}},
    "latency_0.75": {"s1u1": (8, 8, 8, 8), "s1u2": (8, 8, 8, 8), "s2u1": (8, 8, 8, 8),
                     "s2u2": (8, 8, 4, 4), "s3u1": (8, 8, 8, 8), "s3u2": (8, 8, 4, 4),
                     "s4u1": (8, 8, 4, 4), "s4u2": (8, 8, 4, 4),
                     "id": {"s2u1": 8, "s3u1": 8, "s4u1": 8}},
    "latency_0.5": {"s1u1": (8, 8, 8, 8), "s1u2": (8, 8, 8, 8), "s2u1": (8, 8, 4, 4),
                    "s2u2": (8, 8, 4, 4), "s3u1": (8, 8, 8, 8), "s3u2": (4, 4, 4, 4),
                    "s4u1": (8, 8, 4, 4), "s4u2": (4, 4, 4, 4),
                    "id": {"s2u1": 8, "s3u1": 8, "s4u1": 8}},
    "latency_0.25": {"s1u1": (8, 8, 8, 8), "s1u2": (8, 8, 4, 4), "s2u1": (8, 8, 4, 4),
                     "s2u2": (4, 4, 4, 4), "s3u1": (4, 4, 4, 4), "s3u2": (4, 4, 4, 4),
                     "s4u1": (4, 4, 4, 4), "s4u2": (4, 4, 4, 4),
                     "id": {"s2u1": 8, "s3u1": 4, "s4u1": 4}},
}
BRANCH_BITS = 16        # HAWQ's quant_act_int32: the residual branches before the add


def hawq_plans() -> dict[str, str]:
    """The five HAWQ-V3 ResNet18 plans, mapped per /tmp/spec/zoo.md (see the headers)."""
    out = {}
    for key in HAWQ_PLANS:
        cfg = HAWQ[key]
        entries = {"stem": {"w_bits": 8, "a_bits": cfg["s1u1"][0]}}
        for i, u in enumerate(_UNITS):
            _, c1, act1, c2 = cfg[u]
            entries[f"{u}c1"] = {"w_bits": c1, "a_bits": act1}
            entries[f"{u}c2"] = {"w_bits": c2, "a_bits": BRANCH_BITS}
            if u in cfg["id"]:
                entries[f"{u}ds"] = {"w_bits": cfg["id"][u], "a_bits": BRANCH_BITS}
            nxt = cfg[_UNITS[i + 1]][0] if i + 1 < len(_UNITS) else 8
            entries[f"{u}add"] = {"a_bits": nxt}
        entries["fc"] = {"w_bits": 8, "a_bits": 8}
        header = [
            "HAWQ-V3 ResNet18 plan: github.com/Zhen-Dong/HAWQ, bit_config.py, key",
            f"bit_config_resnet18_{key}; published ImageNet top-1 {HAWQ_TOP1[key]:.2f}% "
            f"(float {HAWQ_TOP1['float']:.2f}%), HAWQ model_zoo.md.",
            "That accuracy is HAWQ's trained weights': with this zoo's SYNTHETIC weights only "
            "the bits matter.",
            "Mapping (models/zoo/README.md): stem w8, a = s1u1's input bits; sXuYc1 w = conv1 "
            "bits, a = act1;",
            f"sXuYc2 and sXuYds (no ReLU, they feed the add) w = conv2 / downsample bits, a = "
            f"{BRANCH_BITS}",
            "(HAWQ's quant_act_int32 before the add); sXuYadd a = the next unit's input bits "
            "(8 after the",
            "last unit: quant_act_output); fc w8/a8; input 8 (quant_input).",
        ]
        out[key] = _plan_text(key, "resnet18", header, 8, entries)
    return out


def plans(model: str, lays: list[dict]) -> dict[str, str]:
    out = uniform_plans(model, lays)
    if model == "resnet18":
        out |= hawq_plans()
    return out


def check(folder: Path, log=print) -> list[str]:
    """Load the network and every plan, quantize; return the failures (with acc_bits)."""
    net = load_network(folder / "network.yaml")
    failures = []
    for p in sorted(folder.glob("*.yaml")):
        if p.name == "network.yaml":
            continue
        plan = load_plan(p, net)
        try:
            q = quantize(net, plan)
        except NetworkError as exc:
            failures.append(f"{folder.name}/{p.name}: {exc}")
            log(f"  {folder.name}/{p.name}: quantize FAILED: {exc}")
            log("    acc_bits (bound) per conv/fc layer: " + acc_bits_report(net, plan))
            continue
        worst = max(q.layers, key=lambda ql: ql.acc_bits)
        log(f"  {folder.name}/{p.name}: quantized; widest accumulator {worst.acc_bits} bits "
            f"({worst.name})")
    return failures


def acc_bits_report(net: Network, plan) -> str:
    """The accumulator bound of every conv/fc layer, computed as quantize() does, with the
    input bits the plan gives each layer (for a failure report)."""
    W = net.weights
    bits = {"input": plan.input_bits}
    parts = []
    for lay in net.layers:
        e = plan.layers.get(lay.name, {})
        if lay.type in WEIGHTED:
            w = W[f"{lay.name}.weight"].astype(np.float64).reshape(lay.out_channels, -1)
            wb = e["w_bits"]
            wq = np.round(w / (np.abs(w).max(axis=1, keepdims=True) / ((1 << (wb - 1)) - 1)))
            b = int(np.abs(wq).sum(axis=1).max()) * ((1 << bits[lay.inputs[0]]) - 1)
            parts.append(f"{lay.name}={b.bit_length() + 1}")
            bits[lay.name] = e["a_bits"]
        elif lay.type == "add":
            bits[lay.name] = e.get("a_bits", max(bits[n] for n in lay.inputs))
        else:
            bits[lay.name] = bits[lay.inputs[0]]
    return ", ".join(parts)


# -- README ------------------------------------------------------------------------------------
README = """\
# Model zoo (synthetic weights)

ImageNet CNNs at 3x224x224 in the layer-graph network format (docs/network.md), with
precision plans. Regenerate everything (no network access needed; about 1.5 minutes on one
core, most of it VGG16's float calibration):

```
{regen} --out models/zoo --calib-images {n} --seed {seed}
{regen} --only resnet18            # one model (the README is then kept)
```

**The weights are SYNTHETIC** (seeded He-normal; no pretrained ImageNet weights can be fetched
here): weights ~ N(0, 2/fan_in), biases ~ N(0, 0.01^2), float32, drawn by
golden/nn/network.py `synthetic_weights(layers, seed)` (layer i from `default_rng([seed, i])`)
when the network is loaded. So each folder holds only YAML: `network.yaml` says
`synthetic_weights: {{seed, act_max}}` instead of `weights:`, and there is no dataset. These
networks are for sizing, scheduling and bit-exact checks of the hardware against the golden
model; their outputs mean nothing as ImageNet classifications, and no accuracy is claimed.

`act_max` (the calibration: the largest output of the input and of every conv, fc and add
layer, after ReLU, or the largest magnitude without) comes from `calibrate()` with the float
network on {n} synthetic uniform [0, 1) images, `np.random.default_rng({seed}).random(({n}, 3,
224, 224))`, and is stored rounded to 6 significant digits (the loader uses what the YAML says).

Topologies follow torchvision with BatchNorm folded away (absent; every conv and fc has a
bias): ResNet18 and ResNet50 v1.5 (basic blocks / bottlenecks with the stride on the 3x3 conv,
1x1 strided projection shortcuts where the shape changes, add + ReLU, global average pooling,
fc 1000), AlexNet (the adaptive average pooling to 6x6 is the identity at 224 and is left
out; no dropout), VGG16 (configuration D). Layer names: the ResNets `stem`, `pool`,
`s{{stage}}u{{unit}}c{{k}}`, `s{{stage}}u{{unit}}ds`, `s{{stage}}u{{unit}}add`, `gap`, `fc`;
AlexNet and VGG16 `conv1`.., `pool1`.., `fc1`..`fc3`.

| model | layers | conv | fc | MACs / image | parameters | plans |
|---|---:|---:|---:|---:|---:|---|
{table}

MACs: the sum over conv layers of output elements x (input channels / groups) x k x k, plus
input x output features of every fc (pooling, add and gap are not counted); parameters:
weights + biases. Published figures: ResNet18 1.81 G, ResNet50 4.09 G, AlexNet 0.71 G, VGG16
15.5 G MACs (tests/test_zoo.py checks these counts against them within 2%).

## Plans

- `int8.yaml`: 8-bit input; every conv and fc layer w8/a8, add layers a8.
- `int4.yaml`: 8-bit input; the first conv and the last fc w8/a8 (the usual convention of
  keeping the first and last layers at 8 bits), every other conv and fc w4/a4, add layers a4.
- ResNet18 also has the five HAWQ-V3 mixed-precision plans below.

## HAWQ-V3 ResNet18 plans

From github.com/Zhen-Dong/HAWQ (Yao et al., "HAWQ-V3: Dyadic Neural Network Quantization",
ICML 2021): `bit_config.py`, keys `bit_config_resnet18_{{uniform8, latency_0.75, latency_0.5,
latency_0.25, uniform4}}`; top-1 from the same repository's `model_zoo.md` (ImageNet, with
HAWQ's trained weights: not an accuracy of this zoo's synthetic weights).

| plan | HAWQ key | published top-1 (%) |
|---|---|---:|
| (float) | | {float_top1:.2f} |
{hawq}

Mapping onto the plan format (HAWQ gives, per unit sXuY, the unit's input activation bits, the
conv1 weight bits, the activation bits after conv1, the conv2 weight bits and the downsample
weight bits):

- `stem`: w8, a = s1u1's input bits (8); `fc`: w8/a8 (logits); input 8 (quant_input).
- `sXuYc1`: w = conv1 bits, a = the activation bits after conv1.
- `sXuYc2` and `sXuYds` (no ReLU, they feed the add): w = conv2 / downsample bits, a = {branch}
  (HAWQ keeps the branches at quant_act_int32 before the add).
- `sXuYadd`: a = the next unit's input bits (quant_act_output, 8, after the last unit).
"""


def readme(rows: dict[str, dict], plan_names: dict[str, list[str]], seed: int,
           n_images: int) -> str:
    table = "\n".join(
        f"| {TITLES[name]} (`{name}/`) | {r['layers']} | {r['conv']} | {r['fc']} | "
        f"{r['macs'] / 1e9:.3f} G ({r['macs']:,}) | {r['params'] / 1e6:.2f} M ({r['params']:,}) | "
        + ", ".join(f"`{p}`" for p in plan_names[name]) + " |" for name, r in rows.items())
    hawq = "\n".join(f"| `{k}.yaml` | `bit_config_resnet18_{k}` | {HAWQ_TOP1[k]:.2f} |"
                     for k in HAWQ_PLANS)
    return README.format(regen=REGEN,
                         n=n_images, seed=seed, table=table, float_top1=HAWQ_TOP1["float"],
                         hawq=hawq, branch=BRANCH_BITS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "zoo")
    ap.add_argument("--calib-images", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=MODELS, action="append",
                    help="only this model (repeatable); the README is then not rewritten")
    args = ap.parse_args(argv)
    t_start = time.time()
    failures = []
    for name in args.only or MODELS:
        t0 = time.time()
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        lays = layers(name)
        print(f"{name}: {len(lays)} layers, calibrating on {args.calib_images} images",
              flush=True)
        text, _ = calibrated(name, lays, args.seed, args.calib_images,
                             log=lambda s: print(s, flush=True))
        (folder / "network.yaml").write_text(text)
        for pname, ptext in plans(name, lays).items():
            (folder / f"{pname}.yaml").write_text(ptext)
        failures += check(folder)
        print(f"{name}: done in {time.time() - t0:.1f} s", flush=True)
    if not args.only:
        rows, plan_names = {}, {}
        for name in MODELS:
            net = load_network(args.out / name / "network.yaml")
            rows[name] = stats(net)
            plan_names[name] = list(plans(name, layers(name)))
        (args.out / "README.md").write_text(readme(rows, plan_names, args.seed,
                                                   args.calib_images))
    print(f"total {time.time() - t_start:.1f} s", flush=True)
    for f in failures:
        print("FAILED:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
