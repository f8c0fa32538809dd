"""Candidates queries on 1M synthetic screened predictions in PostgreSQL (target < 50 ms each).

Builds, in a schema of its own (dropped afterwards), the real migrated schema (view and
indexes included) holding N structures, each with one predicted SOC Hamiltonian and one
topology result, and DFT checks for 1% of them. The mix is what a screen of a GNoME-sized set
would look like: ~30% metals, ~2% strong and ~1% weak topological insulators, gaps from an
exponential distribution. Then it times the README's example queries and `hamdb candidates`'
query (median of 5 runs after one warm-up) and prints EXPLAIN's plan for the slowest.

    python bench/query.py [--rows 1000000] [--url postgresql+psycopg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import uuid

import sqlalchemy as sa

QUERIES = {
    "strong TIs, gap > 50 meV, top 50 (README 1)": """
        SELECT structure_id, formula, spacegroup_number, gap_ev, uncertainty_ev
        FROM candidates
        WHERE is_candidate AND dimension = 3 AND nu0 = 1 AND gap_ev > 0.05
        ORDER BY gap_ev DESC LIMIT 50""",
    "strong TIs, gap > 50 meV, count": """
        SELECT count(*) FROM candidates
        WHERE is_candidate AND dimension = 3 AND nu0 = 1 AND gap_ev > 0.05""",
    "candidates per space group (README 2)": """
        SELECT spacegroup_number, count(*) AS n
        FROM candidates WHERE is_candidate
        GROUP BY spacegroup_number ORDER BY n DESC""",
    "largest-gap candidates without a DFT check (README 3)": """
        SELECT structure_id, formula, gap_ev, uncertainty_ev
        FROM candidates
        WHERE is_candidate AND dft_topology_result_id IS NULL
        ORDER BY gap_ev DESC LIMIT 20""",
    "hamdb candidates --min-gap 0.05 --z2 strong --elements Bi": "CLI",
    "one structure's row": "SELECT * FROM candidates WHERE structure_id = 123457",
}

ELEMENTS = ["Bi", "Sb", "Se", "Te", "Sn", "Pb", "Ge", "Si", "In", "Tl", "Hg", "Cd", "Zn", "As",
            "P", "S", "O", "N", "C", "B", "Al", "Ga", "Mg", "Ca", "Sr", "Ba", "Na", "K", "Li",
            "Cu", "Ag", "Au", "Pt", "Pd", "Ni", "Co", "Fe", "Mn", "Cr", "W"]  # fmt: skip


def populate(engine: sa.Engine, n: int) -> None:
    """Fill the schema with generate_series (server-side: seconds, not minutes)."""
    elements = "ARRAY[" + ",".join(f"'{e}'" for e in ELEMENTS) + "]"
    k = len(ELEMENTS)
    with engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO basis_sets (id, name, shells, valence, sha256, created_at) "
                "VALUES (1, 'bench', '{}', '{}', '', now())"
            )
        )
        c.execute(sa.text("INSERT INTO models (id, name, created_at) VALUES (1, 'bench', now())"))
        c.execute(
            sa.text(
                "INSERT INTO model_versions (id, model_id, version, weights_uri, weights_sha256, "
                "config, created_at) VALUES (1, 1, 1, 'none', '', '{}', now())"
            )
        )
        c.execute(
            sa.text(f"""
            INSERT INTO structures (id, reduced_formula, spacegroup_number, n_sites, elements,
                                    elements_key, structure_json, material_id, created_at)
            SELECT g, e1 || e2, 1 + (g::bigint * 7919) % 230, 2 + g % 19,
                   jsonb_build_array(e1, e2), '-' || e1 || '-' || e2 || '-', '{{}}', g, now()
            FROM (SELECT g, ({elements})[1 + g % {k}] AS e1,
                            ({elements})[1 + (g / {k}) % {k}] AS e2
                  FROM generate_series(1, :n) g) x""").bindparams(n=n)
        )
        c.execute(
            sa.text("""
            INSERT INTO hamiltonians (id, structure_id, basis_set_id, kind, spin, method,
                model_version_id, uri, sha256, n_orbitals, n_edges, n_electrons, uncertainty_ev,
                created_at)
            SELECT g, g, 1, 'predicted', 'soc', 'model:bench@1', 1, 'x', '', 8, 20, 8,
                   0.02 * random(), now()
            FROM generate_series(1, :n) g""").bindparams(n=n)
        )
        # u decides the class: < 0.30 metal, < 0.32 strong, < 0.33 weak, else trivial.
        c.execute(
            sa.text("""
            INSERT INTO topology_results (hamiltonian_id, method, settings_hash, dimension, z2,
                nu0, nu1, nu2, nu3, gap_ev, direct_gap_ev, n_occupied, converged, is_metal,
                error, created_at)
            SELECT g, 'wcc', 'bench', 3,
                   CASE WHEN u < 0.30 THEN NULL WHEN u < 0.32 THEN '[1,0,0,0]'::jsonb
                        WHEN u < 0.33 THEN '[0,0,0,1]'::jsonb ELSE '[0,0,0,0]'::jsonb END,
                   CASE WHEN u < 0.30 THEN NULL WHEN u < 0.32 THEN 1 ELSE 0 END,
                   CASE WHEN u < 0.30 THEN NULL ELSE 0 END,
                   CASE WHEN u < 0.30 THEN NULL ELSE 0 END,
                   CASE WHEN u < 0.30 THEN NULL WHEN u >= 0.32 AND u < 0.33 THEN 1 ELSE 0 END,
                   CASE WHEN u < 0.30 THEN 0 ELSE -0.3 * ln(1 - random()) END,
                   0.5, 8, u >= 0.30, u < 0.30,
                   CASE WHEN u < 0.30 THEN 'metal' END, now()
            FROM (SELECT g, random() AS u FROM generate_series(1, :n) g) x""").bindparams(n=n)
        )
        c.execute(
            sa.text("""
            INSERT INTO hamiltonians (id, structure_id, basis_set_id, kind, spin, method,
                model_version_id, uri, sha256, n_orbitals, n_edges, n_electrons, created_at)
            SELECT :n + g, g * 100, 1, 'dft', 'soc', 'gpaw-lcao-pbe-dzp', NULL, 'x', '', 8, 20,
                   8, now()
            FROM generate_series(1, :n / 100) g""").bindparams(n=n)
        )
        c.execute(
            sa.text("""
            INSERT INTO topology_results (hamiltonian_id, method, settings_hash, dimension, z2,
                nu0, nu1, nu2, nu3, gap_ev, direct_gap_ev, n_occupied, converged, is_metal,
                created_at)
            SELECT :n + g, 'wcc', 'bench', 3, '[0,0,0,0]', 0, 0, 0, 0, 0.4, 0.5, 8, true,
                   false, now()
            FROM generate_series(1, :n / 100) g""").bindparams(n=n)
        )
        c.execute(sa.text("ANALYZE"))


def cli_query() -> sa.Select:
    from hamdb.pipeline.candidates import candidates_query

    return candidates_query(min_gap_ev=0.05, z2="strong", elements=["Bi"])


def timed(engine: sa.Engine, query: str | sa.Select, repeats: int = 5) -> tuple[float, int]:
    stmt = sa.text(query) if isinstance(query, str) else query
    with engine.connect() as c:
        n = len(c.execute(stmt).all())  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            c.execute(stmt).all()
            times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "HAMDB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--explain", action="store_true", help="print every query's plan")
    args = parser.parse_args()
    from hamdb.db.migrate import upgrade

    admin = sa.create_engine(args.url)
    schema = f"bench_query_{uuid.uuid4().hex[:8]}"
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    engine = sa.create_engine(url_text)
    try:
        upgrade(url_text)
        t0 = time.perf_counter()
        populate(engine, args.rows)
        print(
            f"{args.rows:,} screened predictions (+{args.rows // 100:,} DFT checks) "
            f"built in {time.perf_counter() - t0:.1f} s in schema {schema}"
        )
        worst = (0.0, "")
        for name, query in QUERIES.items():
            q = cli_query() if query == "CLI" else query
            seconds, n = timed(engine, q)
            flag = "ok" if seconds < 0.05 else "SLOW (target < 50 ms)"
            print(f"{seconds * 1000:8.1f} ms  {n:>7} rows  {name}  [{flag}]")
            if seconds > worst[0]:
                worst = (seconds, name)
            if args.explain:
                _explain(engine, q)
        print(f"slowest: {worst[1]} ({worst[0] * 1000:.1f} ms)")
        _explain(engine, cli_query() if QUERIES[worst[1]] == "CLI" else QUERIES[worst[1]])
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _explain(engine: sa.Engine, query: str | sa.Select) -> None:
    if not isinstance(query, str):
        query = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
    with engine.connect() as c:
        plan = c.execute(sa.text("EXPLAIN ANALYZE " + query)).scalars().all()
    print("\n".join("    " + line for line in plan))


if __name__ == "__main__":
    main()
