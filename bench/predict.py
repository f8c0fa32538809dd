"""`hamdb predict --pending` throughput: structures/s on 1 and 2 worker processes, on SQLite
and PostgreSQL, for 2-20-atom cells, and where the time goes.

Each case runs in a fresh project (a temporary SQLite file, or a PostgreSQL schema dropped
afterwards) holding the same N random crystals made of elements the model knows, with the
model imported from models/<name>. The workers report claim / model / check / store / db
seconds; the model stage is then split in this process over the same crystals into exact
overlap, graph build, network forward and assembly, with the model's size. Targets (issue 8):
>= 5 structures/s per core with the shipped model, database + store <= 10% of the time.
Printed, never asserted.

    OMP_NUM_THREADS=1 python bench/predict.py [--n 60] [--batch 8] [--model-dir models/hamdb-small]
        [--workers 1,2] [--no-postgres]
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


STAGES = ("overlap", "graph", "forward", "assemble", "check", "form", "write")


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


def model_stages(model_dir: Path, crystals: list, precision: str, edge_set: str) -> dict:
    """Seconds of the model stage's parts over `crystals`, one structure at a time, as
    `Predictor.predict` runs them: exact overlap (GPAW's tables, cached per element set),
    graph build (edges, layouts), network forward (all parts of the model), assembly of H;
    then the worker's check, store form and file write (temp file, fsync, rename into a
    temporary store) of the result (what the workers time apart)."""
    import torch

    from hamdb.io.catalog import stored_form
    from hamdb.ml.inference import Predictor
    from hamdb.physics.checks import check_hamiltonian
    from hamdb.store.store import HamiltonianStore

    torch.set_num_threads(1)
    scratch = tempfile.TemporaryDirectory(prefix="hamdb-bench-store-")
    store = HamiltonianStore(scratch.name)
    predictor = Predictor.from_path(model_dir)
    predictor.precision, predictor.edge_set = precision, edge_set
    nets = predictor.bundle.nets
    exact = predictor.use_exact_overlap()
    names = [n for n in nets if n != "overlap" or not exact]
    out = dict.fromkeys(STAGES, 0.0)
    edges = elements = net_edges = 0
    cpu0 = time.process_time()
    for s in crystals:
        t0 = time.perf_counter()
        ref = predictor.reference_overlap(s) if exact else None
        t1 = time.perf_counter()
        prepared = predictor.prepare(s, exact, names, ref)
        t2 = time.perf_counter()
        outputs = predictor.run_networks([prepared.graph], names)
        t3 = time.perf_counter()
        ham = predictor.assemble(0, s, prepared, outputs)
        t4 = time.perf_counter()
        check_hamiltonian(ham)
        t5 = time.perf_counter()
        form = stored_form(ham, "predicted", check=False)
        t6 = time.perf_counter()
        store.put(form.arrays, form.attrs, sha256=form.sha256, compression=form.compression)
        t7 = time.perf_counter()
        times = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)
        for key, dt in zip(STAGES, times, strict=True):
            out[key] += dt
        edges += ham.n_edges
        net_edges += prepared.graph.edge_index.shape[1]
        elements += ham.h.size
    out["cpu_s"] = time.process_time() - cpu0  # the machine may be shared: CPU time too
    out["file_mb_per_structure"] = sum(
        store.path(uri).stat().st_size for uri in store.iter_files()
    ) / (1e6 * len(crystals))
    scratch.cleanup()
    out["edges_per_structure"] = edges / len(crystals)
    out["network_edges_per_structure"] = net_edges / len(crystals)
    out["h_elements_per_structure"] = elements / len(crystals)
    return out


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
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument(
        "--precision", default="single", choices=("single", "double"),
        help="of the in-process stage split (the workers predict in single precision)",
    )  # fmt: skip
    parser.add_argument(
        "--edge-set", default="direct", choices=("dft", "direct"),
        help="of the in-process stage split (the workers use Predictor's default, direct)",
    )  # fmt: skip
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
    import hashlib

    sha = hashlib.sha256((model_dir / "model.pt").read_bytes()).hexdigest()[:12]
    params = {
        n: sum(p.numel() for p in net.parameters()) for n, net in predictor.bundle.nets.items()
    }
    print(
        f"model.pt sha256 {sha}…, parameters " + ", ".join(f"{n} {k:,}" for n, k in params.items())
    )
    backends = ["sqlite"] + ([] if args.no_postgres else ["postgresql"])
    results = []
    for backend in backends:
        for workers in (int(w) for w in args.workers.split(",")):
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
            print(
                f"{backend:10} {workers} worker(s): {r['done']:>4} done {r['failed']:>3} failed "
                f"{r['structures_per_s']:6.3f} structures/s ({per_core:.3f}/core)  "
                f"load {100 * frac.get('load', 0):.1f}% "
                f"model {100 * frac['model']:.1f}% check {100 * frac.get('check', 0):.1f}% "
                f"store {100 * frac['store']:.1f}% "
                f"db+claim {100 * (frac['db'] + frac['claim']):.1f}%",
                flush=True,
            )
    stages = model_stages(model_dir, crystals, args.precision, args.edge_set)
    total = sum(stages[k] for k in STAGES)
    print(
        f"one structure at a time in this process ({args.precision} precision, edges "
        f"{args.edge_set}): {total / args.n:.3f} s/structure "
        f"({stages['cpu_s'] / args.n:.3f} CPU s) "
        + ", ".join(
            f"{k} {stages[k] / args.n:.3f} s ({100 * stages[k] / total:.0f}%)" for k in STAGES
        )
        + f"; {stages['edges_per_structure']:.0f} edges "
        f"({stages['network_edges_per_structure']:.0f} through the networks), "
        f"{stages['h_elements_per_structure'] / 1e6:.2f} M elements of h per structure, "
        f"{stages['file_mb_per_structure']:.2f} MB stored per structure"
    )
    print("target: >= 5 structures/s per core; store + db <= 10%")
    if os.environ.get("BENCH_JSON"):
        print(json.dumps(results))


if __name__ == "__main__":
    main()
