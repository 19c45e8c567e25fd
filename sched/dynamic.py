"""Dynamic mixed precision: one network, several precision plans, and a plan chosen per
image (or per batch of images) at run time, on one hardware instance (docs/dynamic.md).

BF-IMNA's precision lives only in the instruction stream: the bits of a weight decide
which MAC immediates and bit loops the scheduler emits, not what the hardware is. So a
run may change plan from one image to the next with nothing rebuilt, reset or
reprogrammed beyond the instructions themselves. This module makes such runs:

- `load_plans` reads the plans (each validated against the network: a plan for another
  network fails naming its file and field) and quantises the network under each;
- a policy decides, before anything runs, the plan of every *step* (a batch of `batch`
  consecutive images; one image by default):
    `BudgetPolicy`: a cycle budget per step (one value, a repeating pattern or a file of
        one value per step); the first plan in the given order (most precise first) whose
        predicted cycles fit, or, when none fits, the cheapest, marked over budget;
    `ListPolicy`: the plan named for each step (a repeating pattern or a file);
- predicted cycles come from `sched/run.py: predict_network` (the tile cycles the
  hardware's counters count: exact, and independent of the image's values);
- `run_dynamic` runs every step with `sched/run.py: run_network` on one backend object,
  which checks every layer bit-exactly against the golden reference and the counted
  cycles against the schedule; here each step's final output is also compared with the
  golden CNN reference of its plan (`golden/nn/network.py: reference`) and its counted
  cycles with the prediction the choice was made on. A wrapper around the backend notes
  which simulator binary ran every simulation (RTL backends), so the report can show
  that one build served every plan.

Budget and plan files are text: one entry per line, `#` starts a comment, blank lines
are skipped; entry i is step i's. A file must hold an entry for every step.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bfimna.golden.nn.network import (
    Network,
    NetworkError,
    QNet,
    load_plan,
    quantize,
    reference,
)
from bfimna.golden.spec.config import Config
from bfimna.golden.spec.schema import SchemaError
from bfimna.sched.run import Mismatch, predict_network, run_network


class DynamicError(SchemaError):
    """A bad plan list, budget or per-step file (`FILE: line N: expected ..., got ...`)."""


# -- plans -----------------------------------------------------------------------------------
@dataclass
class PlanEntry:
    name: str
    path: Path
    qnet: QNet
    layer_cycles: dict[int, list[int]] = field(default_factory=dict)  # images -> per layer

    def cycles(self, n: int) -> int:
        """Predicted tile cycles of n images (predict() must have been called for n)."""
        return sum(self.layer_cycles[n])


def load_plans(paths: list[Path], net: Network) -> list[PlanEntry]:
    """Each plan validated against `net` and the network quantised under it, in the given
    order (the order of preference of a budget: most precise first)."""
    if not paths:
        raise DynamicError("plans: expected at least one plan file, got none", path="plans",
                           reason="expected at least one plan file")
    out: list[PlanEntry] = []
    for p in paths:
        try:
            plan = load_plan(p, net)       # NetworkError: FILE: field: expected..., got ...
        except NetworkError as exc:
            if exc.path is None or not str(exc.path).startswith("layers."):
                raise
            raise NetworkError(f"{exc} (every plan of a run must be one for {net.name}, "
                               f"{net.path})", file=exc.file, path=exc.path,
                               reason=exc.reason) from None
        for e in out:
            if e.name == plan.name:
                raise DynamicError(f"{p}: name: expected a plan name not used by another "
                                   f"plan of the run ({e.path} is also {plan.name!r})",
                                   file=str(p), path="name",
                                   reason="a plan name used twice")
        out.append(PlanEntry(plan.name, Path(p), quantize(net, plan)))
    return out


def predict(entries: list[PlanEntry], sizes: set[int], cfg: Config) -> None:
    """Fill every plan's predicted per-layer cycles for each batch size in `sizes`
    (sched/run.py: predict_network; the schedule does not depend on the images' values)."""
    for e in entries:
        for n in sorted(sizes - set(e.layer_cycles)):
            rep = predict_network(e.qnet, n, cfg)
            e.layer_cycles[n] = [layer.predicted for layer in rep.layers]


# -- policies --------------------------------------------------------------------------------
def read_entries(path: Path, what: str) -> list[tuple[int, str]]:
    """(line number, text) of every entry of a per-step file."""
    p = Path(path)
    if not p.is_file():
        raise DynamicError(f"{p}: {what} file not found", file=str(p), reason="file not found")
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DynamicError(f"{p}: not a readable text file ({exc})", file=str(p),
                           reason="not a readable text file") from None
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if s:
            out.append((i, s))
    if not out:
        raise DynamicError(f"{p}: {what}: expected one entry per line, got none", file=str(p),
                           path=what, reason="no entries")
    return out


def _cycles(text: str, where: str, file: str | None) -> int:
    try:
        v = int(text.replace("_", ""))
    except ValueError:
        v = 0
        ok = False
    else:
        ok = v > 0
    if not ok:
        head = f"{file}: " if file else ""
        hint = " (and no file of that name)" if file is None and any(
            ch in text for ch in "./") else ""
        raise DynamicError(f"{head}{where}: expected a positive integer (tile cycles), got "
                           f"{text!r}{hint}", file=file, path=where,
                           reason="expected a positive integer (tile cycles)")
    return v


def _per_step(spec: str, what: str) -> tuple[list[tuple[str, str]], str | None, bool]:
    """A per-step value: an existing file (one entry per step) or a comma-separated pattern
    repeated over the steps. Returns ([(where, text)], the file or None, repeat)."""
    p = Path(spec)
    if p.is_file():
        return [(f"line {i}", s) for i, s in read_entries(p, what)], str(p), False
    parts = [s.strip() for s in spec.split(",")]
    if not spec.strip() or any(not s for s in parts):
        raise DynamicError(f"{what}: expected a file or a comma-separated list, got {spec!r}",
                           path=what, reason="expected a file or a comma-separated list")
    return [(f"{what}[{i}]", s) for i, s in enumerate(parts)], None, True


@dataclass
class Choice:
    plan: str
    budget: int | None        # the step's budget (BudgetPolicy), None otherwise
    over_budget: bool = False  # no plan fits the budget: the cheapest ran


class BudgetPolicy:
    """Per step, the first plan (in the given order: most precise first) whose predicted
    cycles fit the step's budget; none fits: the cheapest, marked over budget."""
    kind = "budget"

    def __init__(self, budgets: list[int], repeat: bool, source: str):
        self.budgets, self.repeat, self.source = budgets, repeat, source

    @classmethod
    def parse(cls, spec: str) -> BudgetPolicy:
        """`C` (every step), `C1,C2,...` (a pattern repeated over the steps) or a file of
        one budget per line."""
        items, file, repeat = _per_step(spec, "budget-cycles")
        return cls([_cycles(s, w, file) for w, s in items], repeat,
                   file or ",".join(s for _, s in items))

    def check(self, n_steps: int, names: list[str]) -> None:
        if not self.repeat and len(self.budgets) < n_steps:
            raise DynamicError(f"{self.source}: budget-cycles: expected one budget per step "
                               f"({n_steps}), got {len(self.budgets)}", file=self.source,
                               path="budget-cycles", reason="too few entries")

    def choose(self, step: int, costs: dict[str, int]) -> Choice:
        budget = self.budgets[step % len(self.budgets)]
        for name, c in costs.items():
            if c <= budget:
                return Choice(name, budget)
        cheapest = min(costs, key=lambda k: costs[k])
        return Choice(cheapest, budget, over_budget=True)


class ListPolicy:
    """Per step, the plan its entry names."""
    kind = "list"

    def __init__(self, names: list[str], where: list[str], repeat: bool, source: str):
        self.names, self.where, self.repeat, self.source = names, where, repeat, source

    @classmethod
    def parse(cls, spec: str) -> ListPolicy:
        """`A,B,...` (plan names, a pattern repeated over the steps) or a file of one plan
        name per line."""
        items, file, repeat = _per_step(spec, "plan-per-image")
        return cls([s for _, s in items], [w for w, _ in items], repeat,
                   file or ",".join(s for _, s in items))

    def check(self, n_steps: int, names: list[str]) -> None:
        file = None if self.repeat else self.source
        head = f"{file}: " if file else ""
        for where, name in zip(self.where, self.names, strict=True):
            if name not in names:
                hint = " (and no file of that name)" if file is None and any(
                    ch in name for ch in "./") else ""
                raise DynamicError(f"{head}{where}: expected the name of one of the run's plans "
                                   f"({', '.join(names)}), got {name!r}{hint}", file=file,
                                   path=where, reason="unknown plan name")
        if not self.repeat and len(self.names) < n_steps:
            raise DynamicError(f"{self.source}: plan-per-image: expected one plan per step "
                               f"({n_steps}), got {len(self.names)}", file=self.source,
                               path="plan-per-image", reason="too few entries")

    def choose(self, step: int, costs: dict[str, int]) -> Choice:
        return Choice(self.names[step % len(self.names)], None)


Policy = BudgetPolicy | ListPolicy


def steps_of(n_images: int, batch: int) -> list[range]:
    """Consecutive batches of `batch` images (the last may be shorter)."""
    return [range(i, min(i + batch, n_images)) for i in range(0, n_images, batch)]


def decide(entries: list[PlanEntry], policy: Policy, n_images: int, batch: int,
           cfg: Config) -> list[tuple[range, Choice]]:
    """Every step's plan, decided from the predictions alone (nothing runs)."""
    if n_images < 1:
        raise DynamicError("images: expected at least one image, got 0", path="images",
                           reason="no images")
    steps = steps_of(n_images, batch)
    policy.check(len(steps), [e.name for e in entries])
    predict(entries, {len(s) for s in steps}, cfg)
    return [(s, policy.choose(i, {e.name: e.cycles(len(s)) for e in entries}))
            for i, s in enumerate(steps)]


# -- running ---------------------------------------------------------------------------------
class Recorder:
    """A backend seen through: every run goes to `backend`; after each, the simulator
    binary that ran it (RTL replay runs: the first word of the backend's rerun command)
    and the hardware's ID register are noted, with the binary's size and modification
    time, so a report can show that one build ran every simulation."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.simulations = 0
        self.binaries: dict[str, set[tuple[int, int]]] = {}   # path -> {(size, mtime_ns)}
        self.ids: set[int] = set()

    def __getattr__(self, name: str):
        return getattr(self.backend, name)

    def run(self, prog):
        res = self.backend.run(prog)
        self.simulations += 1
        command = getattr(self.backend, "command", None)
        if command:
            words = shlex.split(command)
            exe = Path(words[2] if words[0] == "vvp" and len(words) > 2 else words[0])
            st = exe.stat()
            self.binaries.setdefault(str(exe), set()).add((st.st_size, st.st_mtime_ns))
        if res.extra.get("id") is not None:
            self.ids.add(int(res.extra["id"]))
        return res

    def summary(self) -> dict[str, Any]:
        """Simulations, and per binary its sha256 now and whether it changed during the
        run (several (size, mtime) seen: it was rebuilt between two simulations)."""
        bins = []
        for path, seen in self.binaries.items():
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            bins.append({"path": path, "sha256": digest, "rebuilt_during_run": len(seen) > 1})
        return {"backend": getattr(self.backend, "name", "golden"),
                "simulations": self.simulations, "binaries": bins,
                "id_registers": sorted(self.ids)}


@dataclass
class StepResult:
    step: int
    first: int                 # first image
    images: int
    plan: str
    budget: int | None
    over_budget: bool
    predicted: int             # tile cycles, predict_network
    counted: int               # tile cycles the backend's counters reported
    bit_exact: bool            # every layer and the final output equal the plan's reference
    labels: list[int] | None
    predictions: list[int]
    wall_s: float
    sim_cycles: int | None = None   # RTL: clock cycles simulated, over its layers

    @property
    def correct(self) -> int | None:
        if self.labels is None:
            return None
        return sum(int(a == b) for a, b in zip(self.labels, self.predictions, strict=True))


@dataclass
class StaticResult:
    """One plan for every image (from the predictions and the golden integer reference,
    not executed): the baseline the dynamic run is compared with."""
    plan: str
    predicted: int
    over_budget: int | None    # steps whose budget it exceeds (budget policy)
    correct: int | None


@dataclass
class DynamicReport:
    network: str
    config: str
    policy: str
    policy_source: str
    batch: int
    plans: list[dict]          # name, path, predicted cycles per step size
    steps: list[StepResult]
    static: list[StaticResult]
    hardware: dict
    wall_s: float

    @property
    def n_images(self) -> int:
        return sum(s.images for s in self.steps)

    @property
    def correct(self) -> int | None:
        c = [s.correct for s in self.steps]
        return None if any(v is None for v in c) else sum(v for v in c if v is not None)

    @property
    def switches(self) -> int:
        return sum(a.plan != b.plan for a, b in zip(self.steps, self.steps[1:], strict=False))

    def totals(self) -> dict[str, Any]:
        per_plan: dict[str, int] = {}
        for s in self.steps:
            per_plan[s.plan] = per_plan.get(s.plan, 0) + s.images
        correct = self.correct
        return {"images": self.n_images, "steps": len(self.steps),
                "predicted": sum(s.predicted for s in self.steps),
                "counted": sum(s.counted for s in self.steps),
                "over_budget": sum(s.over_budget for s in self.steps),
                "plan_switches": self.switches,
                "images_per_plan": per_plan,
                "correct": correct,
                "accuracy": None if correct is None else correct / self.n_images,
                "all_bit_exact": all(s.bit_exact for s in self.steps),
                "sim_cycles": sum(s.sim_cycles or 0 for s in self.steps) or None}

    def to_json(self) -> str:
        return json.dumps({"network": self.network, "config": self.config,
                           "policy": self.policy, "policy_source": self.policy_source,
                           "batch": self.batch, "plans": self.plans,
                           "totals": self.totals(),
                           "static": [asdict(s) for s in self.static],
                           "hardware": self.hardware, "wall_s": self.wall_s,
                           "steps": [{**asdict(s), "correct": s.correct}
                                     for s in self.steps]}, indent=1)


def run_dynamic(entries: list[PlanEntry], choices: list[tuple[range, Choice]],
                x: np.ndarray, y: np.ndarray | None, cfg: Config, backend, *,
                network: str = "", policy: Policy | None = None,
                progress: bool = False) -> DynamicReport:
    """Run every step under its chosen plan on `backend` (one object for the whole run).
    Raises sched/run.py's Mismatch when a layer or a step's output differs from the golden
    reference of its plan, or its counted cycles from the prediction."""
    by_name = {e.name: e for e in entries}
    rec = Recorder(backend)
    results: list[StepResult] = []
    t0 = time.perf_counter()
    bar = tqdm(total=choices[-1][0].stop if choices else 0, unit="image",
               file=sys.stderr, disable=None if progress else True, leave=False,
               dynamic_ncols=True, bar_format="  {desc:<40} {bar:20} {n_fmt}/{total_fmt} "
                                               "[{elapsed}<{remaining}]")
    said = time.perf_counter()
    try:
        for i, (rng, ch) in enumerate(choices):
            e = by_name[ch.plan]
            if not bar.disable:
                bar.set_description_str(f"step {i + 1}/{len(choices)}: {ch.plan}")
            elif progress and time.perf_counter() - said > 10:
                said = time.perf_counter()
                print(f"  dynamic: step {i + 1}/{len(choices)} ({ch.plan})", file=sys.stderr,
                      flush=True)
            xq = e.qnet.quantize_input(x[rng.start:rng.stop])
            ts = time.perf_counter()
            rep = run_network(e.qnet, xq, cfg, rec, check=True)
            wall = time.perf_counter() - ts
            want = reference(e.qnet, xq)[-1].reshape(len(xq), -1)
            got = rep.outputs[-1].reshape(len(xq), -1)
            exact = bool(np.array_equal(got, want)) and all(la.bit_exact for la in rep.layers)
            if not exact:
                raise Mismatch(f"step {i} (images {rng.start}..{rng.stop - 1}, plan {e.name}): "
                               f"the output differs from the plan's golden CNN reference")
            layer_pred = [la.predicted for la in rep.layers]
            if layer_pred != e.layer_cycles[len(rng)]:
                raise Mismatch(f"step {i} (plan {e.name}): the executed schedule's cycles "
                               f"{layer_pred} differ from the prediction "
                               f"{e.layer_cycles[len(rng)]} the choice was made on")
            counted = sum(la.counted or 0 for la in rep.layers)
            mod = 1 << cfg.ap.counter_bits        # each tile's counter wraps (run.py)
            if counted != sum(c % mod for la in rep.layers for c in la.tile_cycles):
                raise Mismatch(f"step {i} (plan {e.name}): the tiles counted {counted} cycles, "
                               f"{sum(layer_pred)} predicted")
            results.append(StepResult(
                i, rng.start, len(rng), e.name, ch.budget, ch.over_budget, sum(layer_pred),
                counted, exact, None if y is None else [int(v) for v in y[rng.start:rng.stop]],
                [int(v) for v in rep.predictions], wall,
                sum(la.sim_cycles for la in rep.layers if la.sim_cycles) or None))
            bar.update(len(rng))
    finally:
        bar.close()
    return DynamicReport(network, cfg.name, policy.kind if policy else "",
                         policy.source if policy else "", len(choices[0][0]) if choices else 0,
                         [{"name": e.name, "path": str(e.path),
                           "predicted": {str(n): e.cycles(n) for n in sorted(e.layer_cycles)}}
                          for e in entries],
                         results, static(entries, choices, x, y),
                         rec.summary(), time.perf_counter() - t0)


def static(entries: list[PlanEntry], choices: list[tuple[range, Choice]], x: np.ndarray,
           y: np.ndarray | None) -> list[StaticResult]:
    """Each plan alone over the same steps: its predicted cycles, the budgets it would miss
    and its correct images by the golden integer reference (numpy; what the hardware
    computes, as every executed step checks)."""
    out = []
    n = choices[-1][0].stop if choices else 0
    for e in entries:
        cyc = [e.cycles(len(r)) for r, _ in choices]
        over = None if not choices or choices[0][1].budget is None else sum(
            c > (ch.budget or 0) for c, (_, ch) in zip(cyc, choices, strict=True))
        correct = None
        if y is not None:
            pred = reference(e.qnet, e.qnet.quantize_input(x[:n]))[-1].reshape(n, -1)
            correct = int(np.sum(pred.argmax(axis=1) == y[:n]))
        out.append(StaticResult(e.name, sum(cyc), over, correct))
    return out


# -- tables ----------------------------------------------------------------------------------
COLUMNS = ("step", "images", "plan", "budget", "predicted", "counted", "bit_exact", "label",
           "prediction", "correct")


def rows(rep: DynamicReport) -> list[dict[str, Any]]:
    """One row per step (per image at batch 1)."""
    out = []
    for s in rep.steps:
        imgs = str(s.first) if s.images == 1 else f"{s.first}-{s.first + s.images - 1}"
        one = s.images == 1
        out.append({"step": s.step, "images": imgs, "plan": s.plan,
                    "budget": "" if s.budget is None else s.budget
                    if not s.over_budget else f"{s.budget} (over)",
                    "predicted": s.predicted, "counted": s.counted,
                    "bit_exact": "yes" if s.bit_exact else "NO",
                    "label": "" if s.labels is None else (s.labels[0] if one else ""),
                    "prediction": s.predictions[0] if one else "",
                    "correct": "" if s.correct is None else (
                        ("yes" if s.correct else "no") if one else f"{s.correct}/{s.images}")})
    return out


def markdown(rep: DynamicReport) -> str:
    """The per-step table, the totals and the static plans beside them, as Markdown."""
    t = rep.totals()
    lines = [f"# Dynamic precision: {rep.network} on {rep.config}", "",
             f"Policy: {rep.policy} ({rep.policy_source}); {t['images']} image(s) in "
             f"{t['steps']} step(s) of {rep.batch}; plans in order of preference: "
             + ", ".join(f"{p['name']} ({p['path']})" for p in rep.plans), "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows(rep):
        lines.append("| " + " | ".join(str(r[c]) for c in COLUMNS) + " |")
    lines += ["", summary_text(rep, markdown=True)]
    return "\n".join(lines) + "\n"


def summary_text(rep: DynamicReport, markdown: bool = False) -> str:
    """Totals, the static plans over the same images and what ran the simulations."""
    t = rep.totals()
    acc = "-" if t["accuracy"] is None else f"{t['correct']}/{t['images']} ({t['accuracy']:.4f})"
    use = ", ".join(f"{k} {v}" for k, v in t["images_per_plan"].items())
    head = ("| run | predicted tile cycles | counted | steps over budget | correct |",
            "|---|---|---|---|---|")
    body = [f"| dynamic ({use}) | {t['predicted']:,} | {t['counted']:,} | "
            f"{t['over_budget'] if rep.policy == 'budget' else '-'} | {acc} |"]
    for s in rep.static:
        sacc = "-" if s.correct is None else f"{s.correct}/{t['images']} " \
                                             f"({s.correct / t['images']:.4f})"
        body.append(f"| static {s.plan} (not executed) | {s.predicted:,} | - | "
                    f"{'-' if s.over_budget is None else s.over_budget} | {sacc} |")
    hw = rep.hardware
    bins = hw["binaries"]
    if bins:
        b = "; ".join(f"{x['path']} (sha256 {x['sha256'][:12]}, "
                      f"{'REBUILT during the run' if x['rebuilt_during_run'] else 'unchanged'})"
                      for x in bins)
        ids = ", ".join(f"{v:#x}" for v in hw["id_registers"])
        sim = f" ({t['sim_cycles']:,} clock cycles)" if t["sim_cycles"] else ""
        hw_text = (f"{hw['simulations']} simulations{sim} on {len(bins)} simulator "
                   f"binar{'ies' if len(bins) > 1 else 'y'}: {b}; ID register {ids}")
    else:
        hw_text = f"{hw['simulations']} runs on the {hw['backend']} backend"
    lines = [f"Totals: {t['images']} image(s), {t['plan_switches']} plan switch(es), "
             f"predicted = counted = {t['counted']:,} tile cycles, every step bit-exact "
             f"against its plan's golden CNN reference: {'yes' if t['all_bit_exact'] else 'NO'}",
             "", *head, *body, "", f"Hardware: {hw_text}."]
    if not markdown:
        lines = [ln for ln in lines if ln != ""]
    return "\n".join(lines)


def write_outputs(rep: DynamicReport, out: Path) -> list[Path]:
    """dynamic.csv (per step), dynamic.md (table and totals), dynamic.json and
    dynamic.png (per step: budget and the chosen plan's cycles) in `out`; each file is
    written to a temporary name and renamed, so none is left half-written."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "dynamic.csv", out / "dynamic.md", out / "dynamic.json", out / "dynamic.png"]
    tmp = [p.with_name(p.name + ".part") for p in paths]
    with tmp[0].open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows(rep))
    tmp[1].write_text(markdown(rep))
    tmp[2].write_text(rep.to_json() + "\n")
    plot(rep, tmp[3])
    for a, b in zip(tmp, paths, strict=True):
        a.replace(b)
    return paths


def plot(rep: DynamicReport, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, min(14.0, 0.05 * len(rep.steps) + 5)), 3.6))
    names = [p["name"] for p in rep.plans]
    for k, name in enumerate(names):
        xs = [s.step for s in rep.steps if s.plan == name]
        if xs:
            ax.scatter(xs, [s.predicted for s in rep.steps if s.plan == name], s=12,
                       color=f"C{k}", label=f"ran {name}", zorder=3)
    if rep.policy == "budget":
        ax.step([s.step for s in rep.steps], [s.budget or 0 for s in rep.steps], where="mid",
                color="0.4", lw=1, label="budget")
    ax.set_xlabel("step" + (" (image)" if rep.batch == 1 else f" ({rep.batch} images)"))
    ax.set_ylabel("tile cycles")
    ax.set_title(f"{rep.network} on {rep.config}: plan per step ({rep.policy})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


__all__ = ["BudgetPolicy", "Choice", "DynamicError", "DynamicReport", "ListPolicy",
           "PlanEntry", "Recorder", "StaticResult", "StepResult", "decide",
           "load_plans", "markdown", "predict", "run_dynamic", "steps_of", "summary_text",
           "write_outputs"]
