"""BF-IMNA's evaluation, reproduced with this project's cost model (`make paper`).

    python scripts/paper.py [--out docs/results.md] [--jobs 2] [--cache build/paper]
                            [--models alexnet vgg16 resnet50 resnet18] [--batches 1 2 4]

Predicts (the schedule's exact cycles and activity; nothing is executed) every zoo model
(SYNTHETIC weights, models/zoo/README.md) on the ImageNet-scale configuration
(configs/scale/imagenet.yaml): AlexNet, VGG16 and ResNet50 at int8 and at a mixed plan
(int4 with the first and last layers at 8 bits), ResNet18 under HAWQ-V3's five plans, and
ResNet18 int8 at several batch sizes. Then evaluates each prediction under every
technology table (configs/tech/*.yaml) at every voltage it lists (sched/evaluate.py,
docs/energy.md) and writes docs/results.md, its figures (docs/results/*.png) and every
number as JSON (docs/results/results.json).

Predictions run in `--jobs` processes and are cached in `--cache` (keyed by the content of
the network, plan and configuration files and of the scheduler and cost model sources),
so a second run only re-evaluates.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402
from tqdm import tqdm  # noqa: E402

from bfimna.golden.spec.config import load_config  # noqa: E402
from bfimna.golden.spec.costs import cost_table  # noqa: E402
from bfimna.golden.spec.tech import default_tech_paths, load_tech  # noqa: E402
from bfimna.sched.evaluate import KINDS, evaluate  # noqa: E402
from bfimna.sched.run import LayerResult, RunReport  # noqa: E402

ZOO = ROOT / "models" / "zoo"
CONFIG = ROOT / "configs" / "scale" / "imagenet.yaml"
HAWQ = ("uniform8", "latency_0.75", "latency_0.5", "latency_0.25", "uniform4")
BIG = ("alexnet", "vgg16", "resnet50")
# the share of the enabled rows a write programs, measured on the bit-level golden tile
# (scripts/measure_tagged.py: digits CNN int8 0.078, mixed 0.071; docs/energy.md)
MEASURED_SHARE = 0.078
SOURCES = [ROOT / "sched" / f for f in ("schedule.py", "run.py")] + \
    [ROOT / "golden" / "spec" / f for f in ("costs.py", "isa.py", "microcode.py", "luts.json")] + \
    [ROOT / "golden" / "nn" / "network.py", ROOT / "golden" / "model" / "controller.py"]


def _zoo_script():
    spec = importlib.util.spec_from_file_location("make_zoo", ROOT / "scripts" / "make_zoo.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def jobs(models, batches) -> list[tuple[str, str, int]]:
    out = []
    for m in models:
        if m == "resnet18":
            out += [(m, p, 1) for p in HAWQ]
            out += [(m, "uniform8", b) for b in batches if b != 1]
        else:
            out += [(m, p, 1) for p in ("int8", "int4")]
    return out


def _key(model: str, plan: str, batch: int) -> str:
    h = hashlib.sha256()
    for p in [ZOO / model / "network.yaml", ZOO / model / f"{plan}.yaml", CONFIG] + SOURCES:
        h.update(p.read_bytes())
    h.update(str(batch).encode())
    return h.hexdigest()[:16]


def _predict(model: str, plan: str, batch: int) -> tuple[list[dict], float]:
    from bfimna.golden.nn.network import load_network, load_plan, quantize
    from bfimna.sched.run import predict_network
    net = load_network(ZOO / model / "network.yaml")
    q = quantize(net, load_plan(ZOO / model / f"{plan}.yaml", net))
    t0 = time.perf_counter()
    rep = predict_network(q, batch, load_config(CONFIG))
    return [asdict(layer) for layer in rep.layers], time.perf_counter() - t0


def predictions(todo, cache: Path, n_jobs: int) -> tuple[dict[tuple, RunReport], dict]:
    """The reports of `todo` (from the cache, or predicted in n_jobs processes) and the
    wall time each prediction took."""
    cache.mkdir(parents=True, exist_ok=True)
    out, walls, missing = {}, {}, []
    for job in todo:
        f = cache / f"{job[0]}_{job[1]}_b{job[2]}_{_key(*job)}.json"
        if f.exists():
            data = json.loads(f.read_text())
            out[job], walls[job] = data["layers"], data["wall_s"]
        else:
            missing.append((job, f))
    if missing:
        print(f"predicting {len(missing)} (network, plan, batch) on {CONFIG.name} in "
              f"{n_jobs} process(es); {len(out)} cached in {cache}", file=sys.stderr)
        with ProcessPoolExecutor(n_jobs) as pool:
            futs = {pool.submit(_predict, *job): (job, f) for job, f in missing}
            bar = tqdm(total=len(futs), unit="prediction", file=sys.stderr)
            for fut in as_completed(futs):
                job, f = futs[fut]
                layers, wall = fut.result()
                f.write_text(json.dumps({"job": job, "wall_s": wall, "layers": layers}))
                out[job], walls[job] = layers, wall
                bar.set_description_str(f"{job[0]} {job[1]} b{job[2]}: {wall:.0f} s")
                bar.update(1)
            bar.close()
    return ({job: RunReport(layers=[LayerResult(**d) for d in out[job]])
             for job in todo}, walls)        # in todo's order, whatever finished first


def evaluations(preds, cfg) -> list[dict]:
    rows = []
    for path in default_tech_paths():
        tech = load_tech(path)
        for vdd in tech.voltages:
            point = tech.point(vdd)
            nominal = vdd == tech.point(None).vdd
            for (model, plan, batch), rep in preds.items():
                for share in (1.0, MEASURED_SHARE) if nominal and batch == 1 else (1.0,):
                    ev = evaluate(rep, cfg, point, batch, network=model, plan=plan,
                                  tagged_share=share)
                    rows.append({"model": model, "plan": plan, "batch": batch,
                                 "tech": point.tech, "vdd": vdd, "tagged_share": share,
                                 "nominal": nominal and share == 1.0,
                                 "write_cycles": point.write_cycles,
                                 "clock_mhz": point.clock_hz / 1e6, **ev.total})
    return rows


# -- the report ------------------------------------------------------------------------------

def _fmt(v: float, digits: int = 3) -> str:
    return f"{v:.{digits}g}"


def write_report(rows, out: Path, figs: Path, published, hawq_top1, walls) -> list[dict]:
    figs.mkdir(parents=True, exist_ok=True)
    (figs / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    techs = list(dict.fromkeys(r["tech"] for r in rows))
    lines = [
        "# Results: BF-IMNA's evaluation with this project's cost model",
        "",
        "Written by `make paper` (scripts/paper.py); every number below is in "
        "`docs/results/results.json`. **The networks' weights are SYNTHETIC** (seeded "
        "He-normal, models/zoo/README.md): cycles and energy depend on the weights only "
        "through their values' canonical signed digits, so they are representative of a "
        "trained network at the same precision, not equal to it; no accuracy is measured "
        "here (the ResNet18 accuracies are HAWQ-V3's published ones).",
        "",
        "Hardware: `configs/scale/imagenet.yaml` (16 tiles, each a 4096x128 CAP and four "
        "4096x256 MAPs). Technologies: " + ", ".join(f"`{t}`" for t in techs) +
        " (configs/tech/, every number sourced in docs/tech.md). Cost model: docs/energy.md "
        "(latency counts host words as not overlapped with compute; layers run one after "
        "another; staged runs: no activation stays on chip between layers, so host traffic "
        "is large; `--on-chip` in `bfimna run` and `bfimna evaluate` keeps them where they "
        "fit, docs/scheduler.md).",
        ""]
    nominal = [r for r in rows if r["nominal"]]
    shared = {(r["model"], r["plan"], r["tech"]): r for r in rows if r["tagged_share"] != 1}
    rows = [r for r in rows if r["tagged_share"] == 1]

    # ImageNet networks at int8 and mixed, per technology and voltage
    lines += ["## AlexNet, VGG16, ResNet50 (batch 1)", "",
              "| network | plan | technology | VDD (V) | clock (MHz) | latency (ms) | "
              "frames/s | energy/frame (mJ) | power (W) | TOPS/W | GOPS | EDP (J*s) |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["model"] in BIG and r["batch"] == 1:
            lines.append(f"| {r['model']} | {r['plan']} | {r['tech']} | {r['vdd']} | "
                         f"{_fmt(r['clock_mhz'])} | {_fmt(r['latency_s'] * 1e3)} | "
                         f"{_fmt(r['frames_per_s'])} | {_fmt(r['energy_per_frame_j'] * 1e3)} | "
                         f"{_fmt(r['power_w'])} | {_fmt(r['tops_per_w'])} | "
                         f"{_fmt(r['gops'])} | {_fmt(r['edp_js'])} |")
    lines += ["", "Energy by kind at the nominal voltage (share of the total):", "",
              "| network | plan | technology | " + " | ".join(KINDS) + " |",
              "|---|---|---|" + "---:|" * len(KINDS)]
    for r in nominal:
        if r["model"] in BIG and r["batch"] == 1:
            lines.append(f"| {r['model']} | {r['plan']} | {r['tech']} | " + " | ".join(
                f"{r[f'energy_{k}_j'] / r['energy_j']:.1%}" for k in KINDS) + " |")
    lines += ["", f"Writes charged for every enabled row (the exact bound) against the "
              f"measured tagged share {MEASURED_SHARE} (docs/energy.md), nominal voltage:", "",
              "| network | plan | technology | energy/frame, share 1 (mJ) | share "
              f"{MEASURED_SHARE} (mJ) | ratio | EDP ratio |", "|---|---|---|---:|---:|---:|---:|"]
    for r in nominal:
        s = shared.get((r["model"], r["plan"], r["tech"]))
        if s is not None and r["batch"] == 1 and (r["model"] in BIG or r["plan"] in
                                                  ("uniform8", "uniform4")):
            lines.append(f"| {r['model']} | {r['plan']} | {r['tech']} | "
                         f"{_fmt(r['energy_per_frame_j'] * 1e3)} | "
                         f"{_fmt(s['energy_per_frame_j'] * 1e3)} | "
                         f"{s['energy_j'] / r['energy_j']:.3f} | "
                         f"{s['edp_js'] / r['edp_js']:.3f} |")
    lines += ["", "![energy breakdown](results/energy_breakdown.png)",
              "![voltage scaling](results/voltage.png)", ""]

    # ResNet18 HAWQ plans
    r18 = {(r["plan"], r["tech"]): r for r in nominal
           if r["model"] == "resnet18" and r["batch"] == 1}
    claims: list[dict] = []
    if r18:
        lines += ["## ResNet18 under HAWQ-V3's plans (batch 1, nominal voltage)", "",
                  "Top-1: HAWQ-V3's published ImageNet accuracy of each plan with its own "
                  "trained weights (github.com/Zhen-Dong/HAWQ, model_zoo.md; Yao et al., ICML "
                  "2021), not measured here.", "",
                  "| plan | published top-1 (%) | technology | latency (ms) | energy (mJ) | "
                  "EDP (J*s) | EDP / uniform8 |", "|---|---:|---|---:|---:|---:|---:|"]
        for tech in techs:
            base = r18[("uniform8", tech)]["edp_js"]
            for plan in HAWQ:
                r = r18[(plan, tech)]
                lines.append(f"| {plan} | {hawq_top1[plan]} | {tech} | "
                             f"{_fmt(r['latency_s'] * 1e3)} | {_fmt(r['energy_j'] * 1e3)} | "
                             f"{_fmt(r['edp_js'])} | {r['edp_js'] / base:.3f} |")
        lines += ["", "![EDP against accuracy](results/edp_accuracy.png)", ""]
        claims = check_claims(r18, techs, hawq_top1)
        lines += ["### The paper's two claims on these plans, in our model", ""]
        lines += [f"- {c['text']}: **{'holds' if c['holds'] else 'does not hold'}** "
                  f"({c['detail']})" for c in claims]
        lines += [""]

    # batch size
    batch = sorted((r for r in nominal if r["model"] == "resnet18" and r["plan"] == "uniform8"),
                   key=lambda r: (r["tech"], r["batch"]))
    if len({r["batch"] for r in batch}) > 1:
        lines += ["## Batch size (ResNet18 uniform8, nominal voltage)", "",
                  "| technology | batch | latency (ms) | frames/s | energy/frame (mJ) | "
                  "TOPS/W | EDP of the batch (J*s) |", "|---|---:|---:|---:|---:|---:|---:|"]
        for r in batch:
            lines.append(f"| {r['tech']} | {r['batch']} | {_fmt(r['latency_s'] * 1e3)} | "
                         f"{_fmt(r['frames_per_s'])} | {_fmt(r['energy_per_frame_j'] * 1e3)} "
                         f"| {_fmt(r['tops_per_w'])} | {_fmt(r['edp_js'])} |")
        lines += [""]

    # published accelerators
    if published:
        lines += ["## Against published in-memory accelerators", "",
                  "As their papers report them (docs/data/published.yaml gives each figure's "
                  "source). Caveats: their figures are peak or measured silicon/simulation "
                  "at other nodes and precisions; ours are a model's predictions on "
                  "synthetic-weight networks with the host traffic of a layer-by-layer "
                  "schedule. Compare orders of magnitude, not digits.", "",
                  "| accelerator | node (nm) | precision | GOPS/W | GOPS/mm2 | note |",
                  "|---|---:|---|---:|---:|---|"]
        for acc in published.get("accelerators", []):
            fig = acc.get("figures", {}) or {}

            def val(name, fig=fig):
                v = (fig.get(name) or {}).get("value")
                return "-" if v is None else _fmt(float(v))
            kind = (fig.get("gops_per_w") or {}).get("kind", "")
            lines.append(f"| {acc['name']} | {acc.get('node_nm') or '-'} | "
                         f"{acc.get('precision', '-')} | {val('gops_per_w')} | "
                         f"{val('gops_per_mm2')} | {kind} |")
        for r in nominal:
            if r["model"] in BIG and r["plan"] == "int8" and r["batch"] == 1:
                lines.append(f"| this model: {r['model']} int8, {r['tech']} | - | 8-bit | "
                             f"{_fmt(r['tops_per_w'] * 1e3)} | {_fmt(r['gops_per_mm2'])} | "
                             f"workload, predicted |")
        lines += [""]
    lines += differences(rows, published)
    lines += ["## Prediction wall times (this machine)", "",
              "| network | plan | batch | seconds |", "|---|---|---:|---:|"]
    lines += [f"| {m} | {p} | {b} | {w:.0f} |" for (m, p, b), w in sorted(walls.items())]
    lines += [""]
    out.write_text("\n".join(lines) + "\n")
    plots(rows, figs, hawq_top1, techs)
    return claims


def differences(rows, published) -> list[str]:
    """Where our numbers differ from the paper's and why, with the figures that say so."""
    big = [r for r in rows if r["nominal"] and r["model"] in BIG and r["plan"] == "int8"
           and r["batch"] == 1]
    if not big:
        return []
    host = {r["model"]: r["host_words"] / r["latency_cycles"] for r in big
            if r["tech"] == big[0]["tech"]}
    best = max(big, key=lambda r: r["tops_per_w"])
    peaks = {a["name"]: (a.get("figures") or {}).get("gops_per_w", {}).get("value")
             for a in (published or {}).get("accelerators", [])}
    peaks = {k: v for k, v in peaks.items() if v}
    sram = {r["model"]: r for r in big if r["tech"].startswith("sram")}
    reram = {r["model"]: r for r in big if r["tech"].startswith("reram")}
    mac8 = next(r["cycles"] for r in cost_table(bits=(8,)) if r["op"] == "MAC.u")
    ratio = ""
    if "resnet50" in sram and "resnet50" in reram:
        a, b = reram["resnet50"], sram["resnet50"]
        ratio = (f" (ResNet50 int8: {a['energy_j'] / b['energy_j']:.1f}x the energy, "
                 f"{a['latency_s'] / b['latency_s']:.1f}x the latency)")
    out = ["## Where these numbers differ from the paper's, and why", "",
           "BF-IMNA's body (its tables, hardware sizes, energy parameters) is not reachable "
           "from here, so only its abstract's claims can be set against ours. Our numbers "
           "are this project's model, and differ for these reasons:", "",
           f"- **Efficiency is far below the published accelerators.** The best int8 figure "
           f"here is {best['tops_per_w'] * 1e3:.0f} GOPS/W ({best['model']}, {best['tech']})"
           + (", against " + ", ".join(f"{k} {v:g}" for k, v in peaks.items())
              + " GOPS/W (their peaks, 16-bit, 32 nm)" if peaks else "")
           + ". So the paper's claim of 20% higher energy efficiency and 2% higher "
           "throughput than ISAAC, PUMA and PipeLayer at fixed precision does **not** hold "
           "in this model. An AP computes bit-serially: an 8-bit MAC by a worst-case "
           f"weight is {mac8} compare and write cycles (`bfimna isa --costs --bits 8`), "
           "and each compare evaluates every "
           "enabled row's match line (4096 rows of 128 cells in this configuration), which "
           "is most of the SRAM energy (the compare column above).",
           "- **Host traffic.** No activation stays on chip between layers "
           "(docs/scheduler.md): each layer's inputs are staged from the host and its "
           "outputs read back, and the model does not overlap that with compute. Host "
           "words are " + ", ".join(f"{m} {v:.0%}" for m, v in host.items())
           + " of the latency cycles (int8, batch 1).",
           "- **Row use.** Late layers of the ImageNet networks have few output positions "
           "per image (7x7 in ResNet's last stage), so at batch 1 their passes use a few "
           "percent of the 4096 CAP rows; `bfimna run --predict` reports the share and "
           "the makespan against the lane-parallel bound.",
           "- **ReRAM loses to SRAM here**" + ratio
           + ": a 2T2R write is a RESET and a SET phase of about 10.8 ns each (12 cycles "
           "at 526 MHz, the sequencer stalls), about 1.3 pJ per cell, and bit-serial "
           "arithmetic writes after every compare group. Charging only the tagged rows "
           f"(share {MEASURED_SHARE}, the table above) cuts the ReRAM energy to about a "
           "fifth, still above SRAM. Our ReRAM figures come from Eva-CAM with NVSim's "
           "device (docs/tech.md); a device with faster, cheaper writes would change this.",
           "- **The claims on the HAWQ-V3 plans hold** (above): EDP falls monotonically "
           "from uniform8 to uniform4 through the three latency plans, as bit fluidity "
           "makes every cycle count proportional to the bits.",
           "- **Weights are synthetic**, so no accuracy is measured; cycle counts depend on "
           "the weights' canonical signed digits (and zeros, which cost nothing), whose "
           "distribution for seeded He-normal weights may differ from a trained "
           "network's.", ""]
    return out


def check_claims(r18, techs, top1) -> list[dict]:
    """BF-IMNA on ResNet18's HAWQ-V3 plans: (1) the high-latency mixed plan (latency_0.75)
    is closest to INT8 (uniform8) in accuracy, with an EDP worse than INT4 (uniform4); (2)
    the low-latency plan (latency_0.25) is closest to INT4 in EDP, with more accuracy
    lost. Accuracy is HAWQ's published top-1; EDP is ours, per technology."""
    mixed = ("latency_0.75", "latency_0.5", "latency_0.25")
    out = []
    for tech in techs:
        edp = {p: r18[(p, tech)]["edp_js"] for p in HAWQ}
        closest_acc = min(mixed, key=lambda p: abs(top1[p] - top1["uniform8"]))
        c1 = closest_acc == "latency_0.75" and edp["latency_0.75"] > edp["uniform4"]
        out.append({"tech": tech, "claim": 1, "holds": c1,
                    "text": f"{tech}: the high-latency plan is closest to INT8 in accuracy "
                            "with an EDP worse than INT4",
                    "detail": f"closest in accuracy: {closest_acc}; EDP latency_0.75 / "
                              f"uniform4 = {edp['latency_0.75'] / edp['uniform4']:.3f}"})
        closest_edp = min(mixed, key=lambda p: abs(edp[p] - edp["uniform4"]))
        most_lost = min(mixed, key=lambda p: top1[p])
        c2 = closest_edp == "latency_0.25" and most_lost == "latency_0.25"
        out.append({"tech": tech, "claim": 2, "holds": c2,
                    "text": f"{tech}: the low-latency plan is closest to INT4 in EDP with "
                            "more accuracy lost",
                    "detail": f"closest in EDP: {closest_edp} (EDP latency_0.25 / uniform4 = "
                              f"{edp['latency_0.25'] / edp['uniform4']:.3f}); most accuracy "
                              f"lost among the mixed plans: {most_lost}"})
    return out


def plots(rows, figs: Path, top1, techs) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nominal = [r for r in rows if r["nominal"]]
    r18 = [r for r in nominal if r["model"] == "resnet18" and r["batch"] == 1]
    if r18:
        fig, ax = plt.subplots(figsize=(6, 4))
        for tech in techs:
            pts = sorted((r["edp_js"], top1[r["plan"]], r["plan"]) for r in r18
                         if r["tech"] == tech)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=tech)
            for e, a, name in pts:
                ax.annotate(name, (e, a), fontsize=6, xytext=(3, 3),
                            textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("EDP per image (J*s, this model, synthetic weights)")
        ax.set_ylabel("top-1 (%), HAWQ-V3 published")
        ax.set_title("ResNet18 under HAWQ-V3's plans", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(figs / "edp_accuracy.png", dpi=110)
        plt.close(fig)

    big = [r for r in nominal if r["model"] in BIG and r["batch"] == 1]
    if big:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels = [f"{r['model']}\n{r['plan']}\n{r['tech'].split('_')[0]}\n"
                  f"{r['energy_per_frame_j'] * 1e3:.3g} mJ" for r in big]
        bottom = [0.0] * len(big)
        for k in KINDS:        # shares (a log scale would hide the small kinds' bars)
            vals = [100 * r[f"energy_{k}_j"] / r["energy_j"] for r in big]
            ax.bar(range(len(big)), vals, bottom=bottom, label=k)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_xticks(range(len(big)), labels, fontsize=6)
        ax.set_ylabel("share of the energy per frame (%)")
        ax.legend(fontsize=7, loc="lower right")
        ax.set_title("energy by kind, nominal voltage, batch 1 (total under each bar)",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(figs / "energy_breakdown.png", dpi=110)
        plt.close(fig)

        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for tech in techs:
            for model in BIG:
                pts = sorted((r["vdd"], r["tops_per_w"], r["frames_per_s"]) for r in rows
                             if r["model"] == model and r["plan"] == "int8"
                             and r["tech"] == tech and r["batch"] == 1)
                if not pts:
                    continue
                lab = f"{model} {tech.split('_')[0]}"
                axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=lab)
                axes[1].plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=lab)
        axes[0].set_ylabel("TOPS/W")
        axes[1].set_ylabel("frames/s")
        for a in axes:
            a.set_xlabel("VDD (V)")
            a.set_yscale("log")
        axes[1].legend(fontsize=6)
        fig.suptitle("int8, batch 1: efficiency and throughput against supply voltage",
                     fontsize=9)
        fig.tight_layout()
        fig.savefig(figs / "voltage.png", dpi=110)
        plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "results.md")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=ROOT / "build" / "paper")
    ap.add_argument("--models", nargs="+", default=list(BIG) + ["resnet18"],
                    choices=list(BIG) + ["resnet18"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    t0 = time.perf_counter()
    todo = jobs(args.models, args.batches)
    preds, walls = predictions(todo, args.cache, args.jobs)
    cfg = load_config(CONFIG)
    rows = evaluations(preds, cfg)
    pub_path = ROOT / "docs" / "data" / "published.yaml"
    published = yaml.safe_load(pub_path.read_text()) if pub_path.exists() else None
    claims = write_report(rows, args.out, args.out.parent / "results", published,
                          _zoo_script().HAWQ_TOP1, walls)
    for c in claims or []:
        print(f"claim {c['claim']}, {c['text']}: {'holds' if c['holds'] else 'DOES NOT HOLD'}"
              f" ({c['detail']})")
    print(f"wrote {args.out} and {args.out.parent / 'results'}/ in "
          f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
