"""The GPU check: captured updates tested against eager ones, then the GPU speed and memory figures, in one command.

On a machine with one GPU (sized for an H100 or H200 with 16 cores, at most 9 minutes), from the repository root:
    python benchmarks/gpu_check.py --wheels WHEEL_DIR      # install the wheels the machine lacks, then test and measure
    python benchmarks/gpu_check.py                         # the same where everything is installed
Anywhere, on the CPU, every code path at toy sizes in a few minutes (under 3 on a loaded 2-core machine):
    python benchmarks/gpu_check.py --cpu --quick

It runs, in order, each part in its own time budget (a part that fails prints its error; the others still run):
  tests       tests/test_capture.py: on CUDA the captured-equals-eager tests (CUDA graphs), on the CPU the compiled one
  update      TD3's update alone (the batch draw and the gradient step), S seeds, seed-updates/s: eager | captured
  end to end  TD3, S seeds (one HalfCheetah-v5 each), act -> env step -> observe (one update per step), seed-steps/s,
              interleaved in one process: eager batched | captured batched | a loop of S single-seed eager agents
  NE          the same for NE (`method=ne`): eager | captured
  concurrent  k = 1, 4, 8 processes, each a captured S-seed TD3 run sharing the GPU and the cores, started together
              after their warm-up: aggregate seed-steps/s
  memory      peak GPU memory of an S-seed TD3 with 1M-transition buffers, through a few captured training steps
and prints the table for BENCHMARKS.md against the goals. On the CPU, "captured" is `torch.compile(fullgraph=True)` of
the same update (inductor by default; --cpu-backend aot_eager traces without generating code).

The wheels (Python 3.12, manylinux x86-64) are those of the packages the training path imports beyond torch, numpy
and tqdm: gymnasium, farama-notifications, mujoco, glfw, pyopengl, hydra-core, omegaconf, antlr4-python3-runtime
(BENCHMARKS.md, "30 seeds at GPU speed", lists the download command). They and this repository are installed with
pip into a folder of their own (no index, no dependencies resolved), the repository's package is linked there, and
the check runs again with that folder first on the import path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from functools import partial
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve()
REPO = SCRIPT.parent.parent
GOALS = {"td3": 20_000, "ratio": 100, "ne": 10_000, "aggregate": 60_000, "memory_GB": 8.0}
WHEEL_MODULES = ("gymnasium", "mujoco", "hydra", "omegaconf")  # imported by the training path; absent on a bare GPU machine


# ---- setup ------------------------------------------------------------------------------------------------
def install_and_rerun(wheels: Path, argv: list[str]) -> int:
    """pip-install the wheels into a fresh folder, link this repository's package there, and run this script again
    with the folder first on the import path."""
    site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))
    found = sorted(wheels.glob("*.whl"))
    if not found:
        print(f"--wheels {wheels}: no .whl files there", file=sys.stderr)
        return 2
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir", "--target", str(site)]
    subprocess.run([*pip, *map(str, found)], check=True)
    link_package(site)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    print(f"installed {len(found)} wheels into {site}", flush=True)
    try:
        return subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, cwd=REPO).returncode
    finally:
        shutil.rmtree(site, ignore_errors=True)


def link_package(site: Path) -> None:
    """This repository's package as installed (methods/ and protocols/ inside cyclic_bench), made of links: no build."""
    package = site / "cyclic_bench"
    package.mkdir()
    for entry in (REPO / "cyclic_bench").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in ("methods", "protocols"):
        (package / name).symlink_to(REPO / name)


def missing_modules() -> list[str]:
    import importlib.util

    return [name for name in WHEEL_MODULES if importlib.util.find_spec(name) is None]


# ---- building and driving agents --------------------------------------------------------------------------
def build(method: str, seed_groups, args, capture: bool, buffer: int | None = None):
    """One agent per seed group, HalfCheetah-sized, with the replay holding the whole measurement (or `buffer`)."""
    from seed_batching import ACTION_DIM, OBS_DIM

    from cyclic_bench.method import MethodSpec
    from cyclic_bench.registry import get_method

    method_cls, config_cls = get_method(method)
    total = buffer or (args.prefill + 4 * args.warmup + args.steps + 10)
    config = config_cls(actor_hidden=list(args.hidden), critic_hidden=list(args.hidden), batch_size=args.batch, buffer_size=total)
    agents = []
    for seeds in seed_groups:
        spec = MethodSpec(
            OBS_DIM, ACTION_DIM, "continuous", tuple(seeds), n_tasks=1, total_steps=total, device=args.device, capture=capture
        )
        agent = method_cls(config, spec)
        if capture and args.device.type == "cpu":
            agent.runner = torch.compile(agent.update_step, fullgraph=True, backend=args.cpu_backend)
        agents.append(agent)
    return agents


def compiling(args):
    """On the CPU, let dynamo trace loss.backward() into the compiled update (on CUDA the graphs need no dynamo)."""
    if args.device.type != "cpu":
        return nullcontext()
    return torch._dynamo.config.patch(trace_autograd_ops=True)


def players_for(setups: dict, args) -> dict:
    from cyclic_bench.protocols.cyclic_mujoco import make_task
    from seed_batching import make_players, prefill

    task = make_task("HalfCheetah", 1000)
    players = {}
    for name, agents in setups.items():
        prefill(agents, args.seeds, args.prefill)
        players[name] = make_players(agents, task)
    return players


def end_to_end(players: dict, args) -> dict[str, float]:
    """seed-steps/s of each setup, the setups' steps interleaved (the first WARMUP steps untimed: graph capture)."""
    from cyclic_bench.protocols.cyclic_mujoco import make_task
    from seed_batching import env_step_all, time_alternating

    from cyclic_bench.stream import ActionAdapter

    adapter = ActionAdapter(make_task("HalfCheetah", 1000))
    fns = {name: partial(env_step_all, group, adapter) for name, group in players.items()}
    with compiling(args):
        for _ in range(args.warmup):  # beyond time_alternating's own warm-up: each graph's eager calls and its capture
            for fn in fns.values():
                fn()
        seconds = time_alternating(fns, args.steps, args.device)
    for group in players.values():
        for p in group:
            p.pool.close()
    return {name: args.seeds * args.steps / s for name, s in seconds.items()}


# ---- the parts ----------------------------------------------------------------------------------------------
def part_tests(args) -> dict:
    selection = "cuda-graphs or addresses" if args.device.type == "cuda" else ("compiled and td3-td3" if args.quick else "compiled")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_capture.py", "-k", selection]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=args.part_seconds)
    print(done.stdout[-3000:], done.stderr[-2000:], flush=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "no output"
    return {"tests": f"{'passed' if done.returncode == 0 else 'FAILED'}: {summary}"}


def part_update(args) -> dict:
    """seed-updates/s of TD3's update alone (sample + gradient step, as `observe` runs it), eager against captured."""
    from seed_batching import prefill, time_alternating, update_all

    setups = {name: build("td3", [range(args.seeds)], args, capture=name == "captured") for name in ("eager", "captured")}
    for agents in setups.values():
        prefill(agents, args.seeds, args.prefill)
    fns = {name: partial(update_all, agents) for name, agents in setups.items()}
    with compiling(args):
        for _ in range(args.warmup):
            for fn in fns.values():
                fn()
        seconds = time_alternating(fns, args.steps, args.device)
    return {f"update {name}": args.seeds * args.steps / s for name, s in seconds.items()}


def part_td3(args) -> dict:
    S = args.seeds
    setups = {
        "eager": build("td3", [range(S)], args, capture=False),
        "captured": build("td3", [range(S)], args, capture=True),
        "loop": build("td3", [(k,) for k in range(S)], args, capture=False),
    }
    rates = end_to_end(players_for(setups, args), args)
    graphs = setups["captured"][0].graphs
    if graphs is not None:
        rates["graphs captured"] = graphs.captures
    return {f"td3 {name}": rate for name, rate in rates.items()}


def part_ne(args) -> dict:
    S = args.seeds
    setups = {"eager": build("ne", [range(S)], args, capture=False), "captured": build("ne", [range(S)], args, capture=True)}
    return {f"ne {name}": rate for name, rate in end_to_end(players_for(setups, args), args).items()}


def part_memory(args) -> dict:
    from cyclic_bench.protocols.cyclic_mujoco import make_task
    from seed_batching import env_step_all, make_players, prefill

    from cyclic_bench.stream import ActionAdapter

    if args.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(args.device)
    agent = build("td3", [range(args.seeds)], args, capture=True, buffer=args.buffer)[0]
    prefill([agent], args.seeds, args.prefill)
    task = make_task("HalfCheetah", 1000)
    players = make_players([agent], task)
    with compiling(args):
        for _ in range(args.warmup + 6):  # through the graphs' warm-up and capture
            env_step_all(players, ActionAdapter(task))
    players[0].pool.close()
    tensors = [t for m in agent.modules().values() for t in m.state_dict().values()] + list(agent.learner.replay.data.values())
    held = sum(t.numel() * t.element_size() for t in tensors) / 1e9
    out = {"memory: tensors held GB": held, "memory: buffer": args.buffer}
    if args.device.type == "cuda":
        out["memory: GPU peak allocated GB"] = torch.cuda.max_memory_allocated(args.device) / 1e9
        out["memory: GPU peak reserved GB"] = torch.cuda.max_memory_reserved(args.device) / 1e9
    return out


def part_concurrent(args) -> dict:
    out, rounds = {}, {}
    for k in args.concurrent:
        with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as folder:
            folder = Path(folder)
            threads = 1 if args.device.type == "cpu" else max(1, min(4, (os.cpu_count() or 1) // k))  # a CPU run: 1, as every benchmark
            env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
            child = [sys.executable, str(SCRIPT), *child_args(args), "--child", str(folder)]
            procs = [subprocess.Popen([*child, str(i)], cwd=REPO, env=env) for i in range(k)]
            deadline = time.monotonic() + args.part_seconds
            while len(list(folder.glob("*.ready"))) < k and time.monotonic() < deadline and all(p.poll() is None for p in procs):
                time.sleep(0.05)
            (folder / "go").touch()
            for p in procs:
                p.wait(timeout=max(1.0, deadline - time.monotonic()))
            results = [json.loads(f.read_text()) for f in sorted(folder.glob("*.json"))]
            if len(results) != k:
                raise RuntimeError(f"k={k}: {len(results)} of {k} runs reported (exit codes {[p.returncode for p in procs]})")
            rounds.setdefault(k, []).append(k * args.seeds * args.steps / max(r["seconds"] for r in results))
    for k, rates in rounds.items():  # a k listed more than once (--concurrent 1 2 1 2): the median of its rounds
        out[f"concurrent k={k} aggregate"] = float(statistics.median(rates))
        out[f"rounds k={k}"] = [round(rate, 1) for rate in rates]
    return out


def child_args(args) -> list[str]:
    values = ["--device", args.device.type, "--seeds", str(args.seeds), "--steps", str(args.steps), "--prefill", str(args.prefill)]
    values += [
        "--warmup",
        str(args.warmup),
        "--batch",
        str(args.batch),
        "--cpu-backend",
        args.cpu_backend,
        "--hidden",
        *map(str, args.hidden),
    ]
    return values


def run_child(args) -> None:
    """One of the concurrent runs: warm up (graph capture included), say ready, wait for go, time `steps` steps."""
    from cyclic_bench.protocols.cyclic_mujoco import make_task
    from seed_batching import env_step_all, sync

    from cyclic_bench.stream import ActionAdapter

    folder, index = Path(args.child[0]), args.child[1]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    agent = build("td3", [range(args.seeds)], args, capture=True)[0]
    players = players_for({"captured": [agent]}, args)["captured"]
    adapter = ActionAdapter(make_task("HalfCheetah", 1000))
    with compiling(args):
        for _ in range(args.warmup + 6):
            env_step_all(players, adapter)
        sync(args.device)
        (folder / f"{index}.ready").touch()
        while not (folder / "go").exists():
            time.sleep(0.01)
        start = time.perf_counter()
        for _ in range(args.steps):
            env_step_all(players, adapter)
        sync(args.device)
        seconds = time.perf_counter() - start
    players[0].pool.close()
    (folder / f"{index}.json").write_text(json.dumps({"seconds": seconds}))


# ---- the report ---------------------------------------------------------------------------------------------
def table(figures: dict, args) -> str:
    def rate(key: str) -> str:
        value = figures.get(key)
        return f"{value:,.0f}" if isinstance(value, float) else "not measured"

    def ratio_of(top: str, bottom: str) -> str:
        a, b = figures.get(top), figures.get(bottom)
        return f"{a / b:.2f}x" if isinstance(a, float) and isinstance(b, float) else "not measured"

    td3, loop = figures.get("td3 captured"), figures.get("td3 loop")
    ratio = td3 / loop if isinstance(td3, float) and isinstance(loop, float) else None
    aggregate = [v for k, v in figures.items() if k.startswith("concurrent k=")]
    memory = figures.get("memory: GPU peak allocated GB")
    held = f"{figures['memory: tensors held GB']:.2f} GB" if "memory: tensors held GB" in figures else "not measured"
    rows = [
        ("TD3 update alone, captured (seed-updates/s)", rate("update captured"), "", None),
        ("TD3 update alone, eager (seed-updates/s)", rate("update eager"), "", None),
        ("TD3 update alone, captured / eager", ratio_of("update captured", "update eager"), "", None),
        ("TD3 end to end, captured", rate("td3 captured"), f">= {GOALS['td3']:,}", td3),
        ("TD3 end to end, eager", rate("td3 eager"), "", None),
        (f"TD3, loop of {args.seeds} single-seed eager agents", rate("td3 loop"), "", None),
        ("TD3 end to end, captured / eager", ratio_of("td3 captured", "td3 eager"), "", None),
        ("captured / loop", f"{ratio:,.1f}x" if ratio else "not measured", f">= {GOALS['ratio']}x", ratio),
        ("NE end to end, captured", rate("ne captured"), f">= {GOALS['ne']:,}", figures.get("ne captured")),
        ("NE end to end, eager", rate("ne eager"), "", None),
        ("NE end to end, captured / eager", ratio_of("ne captured", "ne eager"), "", None),
        *[
            (f"{k.split(' ')[1]} concurrent runs, aggregate", rate(k), f">= {GOALS['aggregate']:,}", figures[k])
            for k in figures
            if k.startswith("concurrent k=")
        ],
        ("GPU peak memory, 1M-transition buffers", f"{memory:.2f} GB" if memory else "not measured", f"<= {GOALS['memory_GB']} GB", memory),
        (f"tensors held (networks, replay of {args.buffer:,} per seed)", held, "", None),
    ]
    meets = {
        "TD3 end to end, captured": lambda v: v >= GOALS["td3"],
        "captured / loop": lambda v: v >= GOALS["ratio"],
        "NE end to end, captured": lambda v: v >= GOALS["ne"],
        "GPU peak memory, 1M-transition buffers": lambda v: v <= GOALS["memory_GB"],
    }
    lines = [f"| S = {args.seeds}, seed-steps/s unless noted | figure | goal on a GPU | met |", "|---|---:|---:|---|"]
    for name, shown, goal, value in rows:
        check = meets.get(
            name, (lambda v: v >= GOALS["aggregate"]) if "concurrent" in name and aggregate and value == max(aggregate) else None
        )
        met = "" if check is None or value is None or not goal or args.device.type != "cuda" else ("yes" if check(value) else "no")
        lines.append(f"| {name} | {shown} | {goal} | {met} |")
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheels", type=Path, help="a folder of .whl files to install first (a GPU machine without gymnasium/mujoco)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (captured = torch.compile of the same update)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: every code path in a few minutes")
    parser.add_argument("--device", choices=["cpu", "cuda"], help=argparse.SUPPRESS)
    parser.add_argument("--seeds", type=int, default=30, help="seeds per run (default 30)")
    parser.add_argument("--steps", type=int, default=300, help="timed environment steps per setup")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="actor and critic hidden sizes")
    parser.add_argument("--batch", type=int, default=256, help="transitions per seed per update")
    parser.add_argument("--prefill", type=int, default=1000, help="random transitions in each replay before timing")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps per setup (the graphs' warm-up and capture)")
    parser.add_argument("--buffer", type=int, default=1_000_000, help="replay capacity per seed of the memory part")
    parser.add_argument("--concurrent", type=int, nargs="+", default=[1, 4, 8], help="numbers of concurrent runs")
    parser.add_argument("--parts", nargs="+", default=["tests", "update", "td3", "ne", "concurrent", "memory"], help="which parts to run")
    parser.add_argument("--part-seconds", type=float, default=150.0, help="time limit of the tests part and of each concurrent k")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds after which no further part starts")
    parser.add_argument("--cpu-backend", default="inductor", help="torch.compile backend of the CPU's 'captured' update")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        quick = dict(
            seeds=4, steps=5, hidden=[32, 32], batch=16, prefill=64, warmup=5, buffer=10_000, concurrent=[1, 2], cpu_backend="aot_eager"
        )
        for key, value in quick.items():
            if parser.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    args.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.cpu else "cpu"))
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.wheels:
        rest = [a for i, a in enumerate(argv) if a != "--wheels" and (i == 0 or argv[i - 1] != "--wheels")]
        return install_and_rerun(args.wheels, rest)
    sys.path.insert(0, str(REPO / "benchmarks"))
    if args.child:
        run_child(args)
        return 0
    missing = missing_modules()
    if missing:
        print(f"missing packages: {', '.join(missing)}; give their wheels with --wheels DIR", file=sys.stderr)
        return 2
    from seed_batching import device_name

    from cyclic_bench.registry import load_all

    load_all()
    started = time.perf_counter()
    print(f"device: {device_name(args.device)} | torch {torch.__version__} | command: python {shlex.join(sys.argv)}", flush=True)
    parts = {
        "tests": part_tests,
        "update": part_update,
        "td3": part_td3,
        "ne": part_ne,
        "concurrent": part_concurrent,
        "memory": part_memory,
    }
    figures: dict = {}
    for name in args.parts:
        begun = time.perf_counter()
        if begun - started > args.budget:
            figures[f"{name} error"] = f"skipped: the check passed its {args.budget:.0f} s budget"
            continue
        try:
            found = parts[name](args)
        except Exception:  # one broken part must not cost the others' figures
            found = {f"{name} error": traceback.format_exc(limit=3).strip().splitlines()[-1]}
            traceback.print_exc()
        figures |= found
        print(f"[{name}: {time.perf_counter() - begun:.0f} s] " + json.dumps(found, default=str), flush=True)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; peak host RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB\n"
    )
    print(table(figures, args))
    for key in [k for k in figures if k.endswith("error")] + ["tests"]:
        if key in figures:
            print(f"{key}: {figures[key]}")
    if args.json:
        args.json.write_text(
            json.dumps({"command": sys.argv, "device": device_name(args.device), "figures": figures}, indent=2, default=str)
        )
    return 0 if not any(k.endswith("error") for k in figures) and str(figures.get("tests", "passed")).startswith("passed") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
