"""`hamdb predict --pending` throughput: structures/s on 1 and 2 worker processes, on SQLite
and PostgreSQL, for 2-20-atom cells, and where the time goes (graph, model, store, DB).

Each case runs in a fresh project (a temporary SQLite file, or a PostgreSQL schema dropped
afterwards) holding the same N random crystals made of elements the model knows, with the
model imported from models/<name>. Targets (issue 8): >= 5 structures/s per core with the
shipped model, database + store <= 10% of the time. Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/predict.py [--n 60] [--model-dir models/hamdb-small]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
PG_URL = os.environ.get(
    "HAMDB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def structures(n: int, elements: list[str], seed: int = 0) -> list:
    """n random crystals of 2-20 atoms from `elements` (nearest distance >= 1.6 Å)."""
    from hamdb.io.structure_samples import random_crystal

    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        n_sites = 2 + k % 19
        picked = list(rng.choice(elements, size=min(len(elements), 2), replace=False))
        out.append(random_crystal(rng, n_sites, picked))
    return out


def known_elements(predictor: object) -> list[str]:
    """Elements every part of the model accepts (Predictor.check on a one-atom cell)."""
    from pymatgen.core import Lattice, Structure

    from hamdb.errors import HamdbError

    known = []
    for el in sorted(predictor.basis.shells):
        try:
            predictor.check(Structure(Lattice.cubic(3.0), [el], [[0, 0, 0]]))
        except HamdbError:
            continue
        known.append(el)
    if not known:
        sys.exit("bench/predict.py: the model accepts no element")
    return known


def make_project(root: Path, url: str, model_dir: Path, crystals: list) -> object:
    from hamdb.config import load_project, write_default_config
    from hamdb.db.migrate import upgrade

    write_default_config(root)
    project = load_project(root, url)
    upgrade(project.database_url)
    env = {**os.environ, "HAMDB_PROJECT": str(root), "HAMDB_DATABASE_URL": project.database_url}
    subprocess.run(
        ["hamdb", "models", "import", str(model_dir), "--alias", "production"],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    folder = root / "crystals"
    folder.mkdir()
    for i, s in enumerate(crystals):
        s.to(filename=str(folder / f"c{i:04d}.json"))
    subprocess.run(
        ["hamdb", "ingest", "structures", "--no-dedup", str(folder)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    return project


def graph_seconds(model_dir: Path, crystals: list) -> float:
    """Time of the graph build alone (neighbour lists + torch-geometric Data) for `crystals`."""
    from hamdb.ml.data import make_graph
    from hamdb.ml.inference import Predictor

    predictor = Predictor.from_path(model_dir)
    l_pairs = predictor.bundle.nets["nonsoc"].cfg.l_pairs
    start = time.perf_counter()
    for s in crystals:
        make_graph(s, predictor.basis, predictor.edges_for(s), l_pairs)
    return time.perf_counter() - start


def run_case(project: object, workers: int, batch: int) -> dict:
    from hamdb.db.engine import dispose_all
    from hamdb.pipeline.workers import WorkerOptions, run

    dispose_all()
    stats = run(project, WorkerOptions(model="production", batch=batch), workers=workers)
    return stats.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="structures per case")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    model_dir = args.model_dir or next(
        (p for p in sorted((REPO / "models").iterdir()) if (p / "model.pt").is_file()), None
    )
    if model_dir is None:
        sys.exit("bench/predict.py: no models/<name>/model.pt; pass --model-dir")
    from hamdb.ml.inference import Predictor

    predictor = Predictor.from_path(model_dir)
    elements = known_elements(predictor)
    crystals = structures(args.n, elements)
    n_atoms = [len(s) for s in crystals]
    print(
        f"model {model_dir.name} (elements {', '.join(elements)}); {args.n} crystals of "
        f"{min(n_atoms)}-{max(n_atoms)} atoms (mean {np.mean(n_atoms):.1f}); "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {os.cpu_count()} cores"
    )
    graph_s = graph_seconds(model_dir, crystals)
    print(f"graph build alone: {graph_s / args.n * 1000:.1f} ms/structure")
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    results = []
    for backend in backends:
        for workers in (1, 2):
            with tempfile.TemporaryDirectory(prefix="hamdb-bench-") as tmp:
                schema = None
                if backend == "sqlite":
                    url = f"sqlite:///{tmp}/hamdb.sqlite"
                else:
                    schema = f"bench_predict_{uuid.uuid4().hex[:8]}"
                    admin = sa.create_engine(PG_URL)
                    with admin.begin() as c:
                        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
                    url = (
                        sa.make_url(PG_URL)
                        .update_query_dict({"options": f"-csearch_path={schema}"})
                        .render_as_string(hide_password=False)
                    )
                try:
                    project = make_project(Path(tmp) / "p", url, model_dir, crystals)
                    r = run_case(project, workers, args.batch)
                finally:
                    if schema:
                        from hamdb.db.engine import dispose_all

                        dispose_all()
                        with admin.begin() as c:
                            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
                        admin.dispose()
            r.update(backend=backend, workers=workers)
            results.append(r)
            frac = r["fraction"]
            per_core = r["structures_per_s"] / workers
            graph_share = graph_s / max(sum(r["seconds"].values()), 1e-9)
            print(
                f"{backend:10} {workers} worker(s): {r['done']:>4} done {r['failed']:>3} failed "
                f"{r['structures_per_s']:6.2f} structures/s ({per_core:.2f}/core)  "
                f"model {100 * frac['model']:.0f}% (graph ~{100 * graph_share:.0f}% of all) "
                f"store {100 * frac['store']:.1f}% "
                f"db+claim {100 * (frac['db'] + frac['claim']):.1f}%"
            )
    print("target: >= 5 structures/s per core; store + db <= 10%")
    if os.environ.get("BENCH_JSON"):
        print(json.dumps(results))


if __name__ == "__main__":
    main()
