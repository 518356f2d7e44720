"""Training throughput on a shared CPU: alone vs beside a competing training, per thread policy.

Each measurement is a fresh process training ``cifar10-seed`` (batch 32) for a fixed number of
steps on the real CIFAR-10 batches; "contended" runs it while a second, identical training runs
beside it. Policies compared in one run, rounds alternating:

  * ``spin``    - libgomp's default wait policy (idle OpenMP threads spin 300,000 times before
                  sleeping, ``GOMP_SPINCOUNT=300000``): what vqkit did before;
  * ``passive`` - ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep at once), vqkit's default now;
  * ``1thread`` - one thread (``train.num_threads=1``), the passive policy.

Fair share with one equal competitor on N cores is 1/2 of the alone speed; the issue measured
about 1/4 with spinning threads.

    python benchmarks/threads.py --data ../shared/data --json benchmarks/results/threads.json

Run it on an otherwise idle machine: it makes its own competition.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# name -> (environment, train.num_threads); vqkit sets OMP_WAIT_POLICY=PASSIVE unless one of
# these variables is set already (vqkit/__init__.py)
POLICIES = {"spin": ({"GOMP_SPINCOUNT": "300000"}, 0),
            "passive": ({"OMP_WAIT_POLICY": "PASSIVE"}, 0),
            "1thread": ({"OMP_WAIT_POLICY": "PASSIVE"}, 1)}


def worker(data: str, steps: int, threads: int) -> None:
    """Train ``steps`` steps in this process and print ``{"images_per_s": ...}``."""
    from vqkit.config import get_preset
    from vqkit.data.loaders import load_image_split
    from vqkit.training.train import train

    cfg = get_preset("cifar10-seed")
    cfg.train.max_steps, cfg.train.num_threads = steps, threads
    cfg.train.log_every_steps, cfg.train.checkpoint_every_minutes = 10**9, 0.0
    train_data = load_image_split(data, "train")
    val = load_image_split(data, "val")
    val.images = val.images[:32]
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        train(cfg, Path(tmp) / "run", progress=False, data=(train_data, val))
        seconds = time.perf_counter() - t
    print(json.dumps({"images_per_s": steps * cfg.train.batch_size / seconds}))


def start(policy: str, data: str, steps: int) -> subprocess.Popen:
    extra, threads = POLICIES[policy]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(extra)
    return subprocess.Popen([sys.executable, __file__, "--worker", "--data", data,
                             "--steps", str(steps), "--threads", str(threads)],
                            env=env, stdout=subprocess.PIPE, text=True)


def measure(policy: str, data: str, steps: int, contended: bool, head_start: float) -> float:
    rival = start(policy, data, steps * 3) if contended else None
    try:
        if rival is not None:
            time.sleep(head_start)  # the rival is past its start-up and training
        me = start(policy, data, steps)
        out, _ = me.communicate()
        return float(json.loads(out.strip().splitlines()[-1])["images_per_s"])
    finally:
        if rival is not None:
            rival.kill()
            rival.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--json", default="benchmarks/results/threads.json")
    p.add_argument("--head-start", type=float, default=8.0,
                   help="seconds the competing training runs before the measured one starts")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args.data, args.steps, args.threads)
        return 0
    policies = args.policies.split(",")
    speeds: dict[str, dict[str, list[float]]] = {k: {"alone": [], "contended": []}
                                                 for k in policies}
    for r in range(args.rounds):
        for policy in policies:
            for mode in ("alone", "contended"):
                s = measure(policy, args.data, args.steps, mode == "contended",
                            args.head_start)
                speeds[policy][mode].append(s)
                print(f"round {r + 1}: {policy:8s} {mode:9s} {s:7.1f} img/s", flush=True)
    result = {"steps": args.steps, "cpus": os.cpu_count(), "policies": {}}
    for policy, s in speeds.items():
        alone, contended = max(s["alone"]), max(s["contended"])
        result["policies"][policy] = {"alone": alone, "contended": contended,
                                      "contended_over_alone": contended / alone,
                                      "rounds": s}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'policy':8s} {'alone':>8s} {'beside 1':>9s} {'ratio':>6s}  (best of "
          f"{args.rounds}; fair share 0.5)")
    for policy, m in result["policies"].items():
        print(f"{policy:8s} {m['alone']:8.1f} {m['contended']:9.1f} "
              f"{m['contended_over_alone']:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
