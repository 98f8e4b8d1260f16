#!/usr/bin/env python3
"""Monte Carlo tolerance analysis of a series RLC circuit's step response.

Each iteration is one manufactured board: R, L and C are drawn uniformly
within their tolerances around the design values, the step response is
integrated with fixed-step RK4 (a transient analysis), and the board passes
when its overshoot and 2% settling time meet the spec. The fraction of
boards that pass is the design's yield.

    python3 rlc_tolerance.py --seed 7 --start 0 --end 50

prints one JSON line per board in [start, end), and {"zp_progress": f}
lines, which the exec runner reads as progress. Parameters come from the
campaign's params (ZP_PARAMS, set by the runner); any not given keep the
defaults below. Standard library only.

Deterministic: random.Random(seed) is Mersenne Twister on every platform, and
the arithmetic is + - * / only, which IEEE 754 rounds the same everywhere.

SIGTERM (cancel, timeout) is left at its default action, which ends the
process at once; a handler that ignored or delayed it would only earn a
SIGKILL a grace period later.
"""
import argparse
import json
import os
import random
import sys

DEFAULTS = {
    "resistance": 100.0,  # ohms
    "inductance": 4.7e-3,  # henries
    "capacitance": 470e-9,  # farads
    "tolerance": {"resistance": 0.05, "inductance": 0.10, "capacitance": 0.10},
    "spec": {"maxOvershootPercent": 18.0, "maxSettlingTime": 400e-6},
    "settlingBand": 0.02,
    "stepsPerTimeConstant": 20,
}
PROGRESS_STEPS = 10


def params():
    given = json.loads(os.environ.get("ZP_PARAMS") or "{}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        sys.exit(f"unknown params: {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    return {**DEFAULTS, **given}


def step_response(r, l, c, band, steps_per_tau):
    """Overshoot (%) and settling time (s) of v_C for a 1 V step, from rest."""
    # time scales: 1/w0 = sqrt(LC) for the ringing, 2L/R for its decay
    dt = min((l * c) ** 0.5, l / r) / steps_per_tau
    horizon = 10 * max(2 * l / r, r * c)
    v = i = peak = last_outside = 0.0
    n = 0
    while n * dt < horizon:
        k1v, k1i = i / c, (1 - v - r * i) / l
        k2v, k2i = (i + dt / 2 * k1i) / c, (1 - (v + dt / 2 * k1v) - r * (i + dt / 2 * k1i)) / l
        k3v, k3i = (i + dt / 2 * k2i) / c, (1 - (v + dt / 2 * k2v) - r * (i + dt / 2 * k2i)) / l
        k4v, k4i = (i + dt * k3i) / c, (1 - (v + dt * k3v) - r * (i + dt * k3i)) / l
        v += dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        i += dt / 6 * (k1i + 2 * k2i + 2 * k3i + k4i)
        n += 1
        peak = max(peak, v)
        if abs(v - 1) > band:
            last_outside = n * dt
    return max(0.0, (peak - 1) * 100), last_outside


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--start", type=int, required=True)
    parser.add_argument("--end", type=int, required=True)
    args = parser.parse_args()
    if not 0 <= args.start <= args.end:
        sys.exit(f"need 0 <= --start <= --end, got {args.start}, {args.end}")
    p = params()
    tol, spec = p["tolerance"], p["spec"]
    rng = random.Random(args.seed)
    boards = args.end - args.start
    every = max(1, -(-boards // PROGRESS_STEPS))
    for k in range(boards):
        r = p["resistance"] * (1 + tol["resistance"] * (2 * rng.random() - 1))
        l = p["inductance"] * (1 + tol["inductance"] * (2 * rng.random() - 1))
        c = p["capacitance"] * (1 + tol["capacitance"] * (2 * rng.random() - 1))
        overshoot, settling = step_response(r, l, c, p["settlingBand"], p["stepsPerTimeConstant"])
        ok = overshoot <= spec["maxOvershootPercent"] and settling <= spec["maxSettlingTime"]
        print(json.dumps({"board": args.start + k, "resistance": r, "inductance": l, "capacitance": c,
                          "overshootPercent": overshoot, "settlingTime": settling, "pass": ok}))
        if (k + 1) % every == 0 or k + 1 == boards:
            print(json.dumps({"zp_progress": (k + 1) / boards}), flush=True)


if __name__ == "__main__":
    main()
