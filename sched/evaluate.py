"""Energy, latency, throughput, power, area and EDP of a network run (docs/energy.md).

The cost model multiplies the exact activity of every layer (golden/spec/costs.py
ACTIVITY_KEYS, from the schedule; equal to what the golden tiles count when executed) by
the per-action energies of a technology at a supply voltage (configs/tech/*.yaml, loaded
by golden/spec/tech.py), in the convention of Accelergy's energy tables:

    compare     cmp_cells x cam.search + match_rows x cam.match x C / C_ref (a match
                line spans the CAP's C columns; the table's figure is for C_ref cells)
    write       wr_cells x share x cam.write (share: the tagged share of the enabled rows
                a write programs; 1, the default, is the exact upper bound)
    transfers   col_cells x cam.column + row_bits x cam.row
    host        host words x host.word
    controller  active tile cycles (with write stalls) x controller.cycle
    leakage     (every bit-cell x cam.leakage + tiles x controller.leakage) x latency

Time: a layer's latency is its busiest tile's cycles plus its host words (the host
stream moves one 32-bit word per cycle and this model does not overlap streaming with
compute: an upper bound of that part), at the clock the voltage allows; layers run one
after another. A technology whose cell write outlasts a clock period (ReRAM: a RESET
and a SET phase, timing.write) stalls the sequencer for write_cycles per WR micro-op, so
a tile's cycles grow by (write_cycles - 1) x its WR micro-ops (the controller's energy
counts those cycles too). Area: bit-cells, row and column peripheries of every AP,
controllers.
Operations count 2 per multiply-accumulate of conv and fc layers (the usual convention
of TOPS figures).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bfimna.golden.spec.config import Config
from bfimna.sched.run import LayerResult, RunReport

KINDS = ("compare", "write", "transfers", "host", "controller", "leakage")
HOST_WORD_BITS = 32


def bit_cells(cfg: Config) -> int:
    """Bit-cells of every AP of every tile (they all leak)."""
    per_tile = cfg.ap.rows * cfg.ap.cols + cfg.tile.maps * cfg.map_ap.rows * cfg.map_ap.cols
    return cfg.system.tiles * per_tile


def area_m2(cfg: Config, point) -> dict[str, float]:
    """Area by part (m^2): cells, row peripheries, column peripheries, controllers."""
    t, a, m, k = cfg.system.tiles, cfg.ap, cfg.map_ap, cfg.tile.maps
    rows = t * (a.rows + k * m.rows)
    cols = t * (a.cols + k * m.cols)
    ar = point.area
    return {"cells": bit_cells(cfg) * ar["cam.cell"],
            "row_periphery": rows * ar["cam.row_periphery"],
            "column_periphery": cols * ar["cam.column_periphery"],
            "controllers": t * ar["controller.tile"]}


def static_power_w(cfg: Config, point) -> float:
    return (bit_cells(cfg) * point.leakage["cam.leakage"]
            + cfg.system.tiles * point.leakage["controller.leakage"])


def dynamic_energy_j(activity: dict[str, int], host_words: int, point,
                     cap_cols: int, tagged_share: float = 1.0,
                     copy_bits: int = 0) -> dict[str, float]:
    """Energy by kind (J) of the activity of some tiles, the host words they got and the
    row bits copied between them (COPY packets: each word read from one AP's row port
    and written to another's)."""
    e = point.energy
    return {"compare": activity["cmp_cells"] * e["cam.search"]
            + activity["match_rows"] * e["cam.match"] * cap_cols / point.match_cols,
            "write": activity["wr_cells"] * tagged_share * e["cam.write"],
            "transfers": activity["col_cells"] * e["cam.column"]
            + (activity["row_bits"] + copy_bits) * e["cam.row"],
            "host": host_words * e["host.word"],
            "controller": (activity["cycles"] + (point.write_cycles - 1) * activity["wr_ops"])
            * e["controller.cycle"]}


def latency_cycles(layer: LayerResult, write_cycles: int = 1) -> int:
    """A layer's cycles from first host word to last result: its busiest tile (each WR
    micro-op taking `write_cycles`) plus its host words (one per cycle, not overlapped
    with compute) plus the bus cycles of its tile-to-tile copies (a COPY waits until both
    tiles are idle; on-chip residency)."""
    busiest = layer.busiest_tile
    if write_cycles > 1 and layer.tile_cycles:
        busiest = max(c + (write_cycles - 1) * w
                      for c, w in zip(layer.tile_cycles, layer.tile_wr_ops, strict=True))
    return busiest + layer.host_words + layer.copy_cycles


@dataclass
class Evaluation:
    network: str
    plan: str
    config: str
    tech: str
    vdd: float
    clock_hz: float
    write_cycles: int
    tagged_share: float
    batch: int
    source: str                        # "predicted" (the schedule) or "executed" (golden)
    layers: list[dict] = field(default_factory=list)
    total: dict = field(default_factory=dict)
    area_m2: dict = field(default_factory=dict)
    tech_sources: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def evaluate(report: RunReport, cfg: Config, point, batch: int, *, network: str = "",
             plan: str = "", executed: bool = False, tagged_share: float = 1.0) -> Evaluation:
    """The cost model over a run report (predict_network, or run_network on golden with
    `executed`: then the activity the tiles counted is used). `tagged_share` scales the
    written cells (docs/energy.md: 1 charges every enabled row, the exact upper bound)."""
    if not 0 < tagged_share <= 1:
        raise ValueError(f"tagged share must be in (0, 1], got {tagged_share}")
    f = point.clock_hz
    p_static = static_power_w(cfg, point)
    ev = Evaluation(network, plan, cfg.name, point.tech, point.vdd, f, point.write_cycles,
                    tagged_share, batch,
                    "executed" if executed else "predicted",
                    area_m2=area_m2(cfg, point), tech_sources=dict(point.sources))
    tot = dict.fromkeys(KINDS, 0.0)
    tot_cycles = tot_active = tot_idle = tot_words = tot_macs = 0
    for layer in report.layers:
        act = layer.activity
        if executed and layer.passes:
            if layer.activity_counted is None:
                raise ValueError(f"{layer.name}: the run did not count activity (only the "
                                 "golden backend does)")
            act = layer.activity_counted
        cyc = latency_cycles(layer, point.write_cycles)
        stall = (point.write_cycles - 1) * act["wr_ops"]
        idle = cfg.system.tiles * cyc - act["cycles"] - stall   # tile cycles with no work
        t = cyc / f
        en = dynamic_energy_j(act, layer.host_words, point, cfg.ap.cols, tagged_share,
                              layer.copy_bits)
        en["leakage"] = p_static * t
        e_tot = sum(en.values())
        ev.layers.append({"name": layer.name, "type": layer.type, "dataflow": layer.dataflow,
                          "latency_cycles": cyc, "busiest_tile_cycles": layer.busiest_tile,
                          "tile_cycles": act["cycles"], "stall_cycles": stall,
                          "idle_tile_cycles": idle, "host_words": layer.host_words,
                          "host_out": layer.host_out, "acts": layer.residency,
                          "copy_words": layer.copy_words, "copy_cycles": layer.copy_cycles,
                          "latency_s": t, "energy_j": e_tot,
                          **{f"energy_{k}_j": v for k, v in en.items()},
                          "macs": layer.macs, **{f"act_{k}": v for k, v in act.items()}})
        for k in KINDS:
            tot[k] += en[k]
        tot_cycles += cyc
        tot_active += act["cycles"]
        tot_idle += idle
        tot_words += layer.host_words
        tot_macs += layer.macs
    latency = tot_cycles / f
    energy = sum(tot.values())
    ops = 2 * tot_macs
    area = sum(ev.area_m2.values())
    ev.total = {
        "latency_cycles": tot_cycles, "latency_s": latency, "tile_cycles": tot_active,
        "idle_tile_cycles": tot_idle,
        "host_words": tot_words, "macs": tot_macs, "ops": ops,
        "energy_j": energy, **{f"energy_{k}_j": v for k, v in tot.items()},
        "energy_per_frame_j": energy / batch,
        "power_w": energy / latency if latency else 0.0,
        "frames_per_s": batch / latency if latency else 0.0,
        "gops": ops / latency / 1e9 if latency else 0.0,
        "tops_per_w": ops / energy / 1e12 if energy else 0.0,
        "edp_js": energy * latency,
        "area_mm2": area * 1e6,
        "gops_per_mm2": ops / latency / 1e9 / (area * 1e6) if latency and area else 0.0,
    }
    return ev


def write_outputs(ev: Evaluation, out: Path) -> list[Path]:
    """evaluation.json, layers.csv and three plots (per-layer energy, per-layer latency,
    the energy breakdown) in `out`; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "evaluation.json", out / "layers.csv"]
    paths[0].write_text(ev.to_json() + "\n")
    with paths[1].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ev.layers[0]))
        w.writeheader()
        w.writerows(ev.layers)
    paths += plot(ev, out)
    return paths


def plot(ev: Evaluation, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    title = (f"{ev.network} {ev.plan} on {ev.config}, {ev.tech} at {ev.vdd} V, batch "
             f"{ev.batch} ({ev.source})")
    names = [lay["name"] for lay in ev.layers]
    x = range(len(names))
    paths = []
    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(names)), 4))
    bottom = [0.0] * len(names)
    for k in KINDS:
        vals = [lay[f"energy_{k}_j"] * 1e6 for lay in ev.layers]
        ax.bar(x, vals, bottom=bottom, label=k)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(list(x), names, rotation=90, fontsize=7)
    ax.set_ylabel("energy (uJ)")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "energy_by_layer.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.28 * len(names)), 4))
    ax.bar(x, [lay["latency_s"] * 1e3 for lay in ev.layers])
    ax.set_xticks(list(x), names, rotation=90, fontsize=7)
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    paths.append(out / "latency_by_layer.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    vals = [ev.total[f"energy_{k}_j"] for k in KINDS]
    ax.pie(vals, labels=[f"{k} {v / ev.total['energy_j']:.1%}" for k, v in
                         zip(KINDS, vals, strict=True)], textprops={"fontsize": 7})
    ax.set_title(title, fontsize=7)
    fig.tight_layout()
    paths.append(out / "energy_breakdown.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def table(ev: Evaluation) -> str:
    """The per-layer table and the totals, as a person reads them on a terminal."""
    lines = [f"evaluate: {ev.network} plan {ev.plan} on {ev.config}, {ev.tech} at "
             f"{ev.vdd} V ({ev.clock_hz / 1e6:g} MHz), batch {ev.batch}, from the "
             f"{'schedule (predicted)' if ev.source == 'predicted' else 'golden run'}"
             + (f"; writes charged for {ev.tagged_share:g} of the enabled rows"
                if ev.tagged_share != 1 else ""),
             f"{'layer':10s} {'type':8s} {'latency':>12s} {'energy':>11s} "
             + " ".join(f"{k:>10s}" for k in KINDS)]
    for lay in ev.layers:
        lines.append(f"{lay['name']:10s} {lay['type']:8s} {_t(lay['latency_s']):>12s} "
                     f"{_e(lay['energy_j']):>11s} "
                     + " ".join(f"{_e(lay[f'energy_{k}_j']):>10s}" for k in KINDS))
    t = ev.total
    lines += [
        f"total: latency {_t(t['latency_s'])} ({t['latency_cycles']:,} cycles), energy "
        f"{_e(t['energy_j'])} ({_e(t['energy_per_frame_j'])} per frame), power "
        f"{t['power_w']:.3g} W",
        "energy by kind: " + ", ".join(f"{k} {t[f'energy_{k}_j'] / t['energy_j']:.1%}"
                                       for k in KINDS),
        f"throughput {t['frames_per_s']:.4g} frames/s, {t['gops']:.4g} GOPS; "
        f"{t['tops_per_w']:.4g} TOPS/W; EDP {t['edp_js']:.4g} J*s; area "
        f"{t['area_mm2']:.4g} mm2 ({t['gops_per_mm2']:.4g} GOPS/mm2)"]
    return "\n".join(lines)


def _e(j: float) -> str:
    for unit, s in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(j) >= s:
            return f"{j / s:.3g} {unit}"
    return f"{j / 1e-15:.3g} fJ"


def _t(s: float) -> str:
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(s) >= f:
            return f"{s / f:.4g} {unit}"
    return f"{s / 1e-9:.4g} ns"
