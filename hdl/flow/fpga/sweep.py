"""`bfimna fpga-sweep`: synthesis (and optionally place and route) of the board top over a
grid of array sizes, tabulated in sweep.csv and plotted in sweep.png."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bfimna.golden.spec.config import Config, config_from_dict
from bfimna.hdl.flow.fpga import flow
from bfimna.hdl.flow.fpga.estimate import CALIBRATION_FILE, cam_bits, estimate
from bfimna.hdl.flow.fpga.report import resources_from_cells
from bfimna.hdl.flow.fpga.targets import TARGETS, FpgaError, Target


def sweep(base: Config, target: str, rows: list[int], cols: list[int], tiles: list[int],
          out_dir: str | Path, pnr: bool = False,
          progress: Callable[[str], object] = print) -> list[dict[str, Any]]:
    """Synthesis (and with `pnr` place and route, for Fmax) over a grid of CAP rows x
    columns x tiles (MAPs as in `base`, sized like the CAP); writes sweep.csv and
    sweep.png into out_dir and returns the rows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    grid = [(r, c, t) for t in tiles for r in rows for c in cols]
    for i, (r, c, t) in enumerate(grid):
        d = base.as_dict()
        d["name"] = f"{base.name}_r{r}_c{c}_t{t}"
        d["ap"].update(rows=r, cols=c)
        d["tile"].update(map_rows=r, map_cols=c)
        d["system"]["tiles"] = t
        cfg = config_from_dict(d)
        row: dict[str, Any] = {"rows": r, "cols": c, "tiles": t, "maps": cfg.tile.maps,
                               "counter_bits": cfg.ap.counter_bits,
                               "port_register": cfg.tile.port_register,
                               "cam_bits": cam_bits(cfg)}
        # flow.run_flow, flow.synthesis_only: looked up at each call (tests replace them)
        if pnr:
            rep: dict[str, Any] | None
            try:
                rep = flow.run_flow(cfg, target, out / cfg.name, force=True)
            except FpgaError as exc:
                rep = json.loads((out / cfg.name / "report.json").read_text()) if (
                    out / cfg.name / "report.json").exists() else None
                if rep is None or rep.get("fits") is not False:
                    raise
                progress(f"  {exc}")
            used = resources_from_cells(TARGETS[target].family, rep["synthesis_cells"])
            fmax = [f["achieved"] for f in rep.get("fmax_mhz", {}).values()]
            row.update(used, fits=rep["fits"], synth_s=rep["wall_s"]["synthesis"],
                       pnr_luts=rep["utilisation"]["luts"]["used"] if rep["fits"] else "",
                       fmax_mhz=min(fmax) if fmax else "",
                       pnr_s=rep["wall_s"].get("place_and_route", ""))
        else:
            res = flow.synthesis_only(cfg, target, out / cfg.name)
            row.update(res["used"], fits=res["fits"], synth_s=res["wall_s"])
        row["est_luts"] = (estimate(cfg, TARGETS[target].family)["luts"]
                           if CALIBRATION_FILE.exists() else "")
        results.append(row)
        extra = (f", Fmax {row['fmax_mhz']} MHz" if pnr and row["fmax_mhz"] != "" else "")
        est = f" (estimate {row['est_luts']:,})" if row["est_luts"] != "" else ""
        progress(f"[{i + 1}/{len(grid)}] rows {r} cols {c} tiles {t}: {row['luts']:,} LUTs"
                 f"{est}, {row['ffs']:,} FFs{extra}, "
                 f"{'fits' if row['fits'] else 'does not fit'}")
    keys = list(results[0])
    (out / "sweep.csv").write_text(",".join(keys) + "\n" + "".join(
        ",".join(str(r[k]) for k in keys) + "\n" for r in results))
    _plot(results, TARGETS[target], out / "sweep.png")
    return results


def _plot(results: list[dict[str, Any]], t: Target, path: Path) -> None:
    """Cells against CAM bits (the estimate dotted, the part's LUTs as a line) and, when
    the sweep placed and routed, Fmax against CAM bits with the board's clock."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with_fmax = any(r.get("fmax_mhz") not in (None, "") for r in results)
    fig, axes = plt.subplots(1, 2 if with_fmax else 1, figsize=(12 if with_fmax else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    for tiles in sorted({r["tiles"] for r in results}):
        pts = sorted((r["cam_bits"], r["luts"], r["ffs"]) for r in results if r["tiles"] == tiles)
        x = [p[0] for p in pts]
        ax.plot(x, [p[1] for p in pts], "o-", label=f"LUTs, {tiles} tile(s)")
        ax.plot(x, [p[2] for p in pts], "s--", label=f"FFs, {tiles} tile(s)")
        est = sorted((r["cam_bits"], r["est_luts"]) for r in results
                     if r["tiles"] == tiles and r["est_luts"] != "")
        ax.plot([p[0] for p in est], [p[1] for p in est], ":", color="gray",
                label="LUT estimate (hdl/flow/fpga/estimate.py)"
                if tiles == min(r["tiles"] for r in results) else None)
    ax.axhline(t.capacity["luts"], color="red", lw=1, label=f"{t.part} LUTs")
    ax.set_xlabel("CAM bits (all APs of all tiles)")
    ax.set_ylabel("cells after synthesis")
    ax.set_title(f"bfimna board top on {t.part}: utilisation")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if with_fmax:
        ax = axes[0][1]
        for tiles in sorted({r["tiles"] for r in results}):
            fmax = sorted((r["cam_bits"], r["fmax_mhz"]) for r in results
                          if r["tiles"] == tiles and r.get("fmax_mhz") not in (None, ""))
            ax.plot([p[0] for p in fmax], [p[1] for p in fmax], "o-", label=f"{tiles} tile(s)")
        ax.axhline(t.clk_hz / 1e6, color="red", lw=1, label=f"board clock {t.clk_hz / 1e6:g} MHz")
        ax.set_xlabel("CAM bits (all APs of all tiles)")
        ax.set_ylabel("Fmax after place and route (MHz)")
        ax.set_title("achieved Fmax (nextpnr)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
