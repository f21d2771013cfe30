"""Observed order of accuracy of every solver against exact or manufactured solutions.

Prints two markdown tables (the solver tables of docs/solvers.md) and writes JSON. Elliptic solvers:
max-norm errors on four grids whose spacing halves and the observed orders log2(e_h / e_h/2).
Wave, fluid and reaction-diffusion solvers: the studies of
:func:`neuralhss.solvers.verification.more_studies` (grid or time-step refinement).

Run: ``python examples/convergence_orders.py [--out examples/results/convergence]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuralhss.solvers.verification import convergence_study, more_studies

CASES = [("poisson", "dirichlet", d) for d in (1, 2, 3)] + \
        [("poisson", "periodic", d) for d in (1, 2, 3)] + \
        [("darcy", "dirichlet", d) for d in (1, 2, 3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="examples/results/convergence")
    args = ap.parse_args()
    rows = []
    print("| solver | bc | dim | grids (nodes per axis) | max-norm errors | observed orders |")
    print("|---|---|---|---|---|---|")
    for solver, bc, dim in CASES:
        s = convergence_study(solver, dim, bc)
        rows.append({"solver": solver, "bc": bc, "dim": dim, "sizes": s.sizes, "errors": s.errors,
                     "orders": s.orders.tolist()})
        print(f"| {solver} | {bc} | {dim} | {', '.join(map(str, s.sizes))} | "
              f"{', '.join(f'{e:.2e}' for e in s.errors)} | "
              f"{', '.join(f'{o:.3f}' for o in s.orders)} |")
    print()
    print("| solver | study | refined | sizes | errors | observed orders |")
    print("|---|---|---|---|---|---|")
    for st in more_studies():
        rows.append({"solver": st.name, "study": st.what, "refinement": st.refinement,
                     "sizes": st.sizes, "errors": st.errors, "orders": st.orders.tolist()})
        print(f"| {st.name} | {st.what} | {st.refinement} | {', '.join(f'{s:g}' for s in st.sizes)} | "
              f"{', '.join(f'{e:.2e}' for e in st.errors)} | "
              f"{', '.join(f'{o:.3f}' for o in st.orders)} |", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "convergence.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"results: {out / 'convergence.json'}")


if __name__ == "__main__":
    main()
