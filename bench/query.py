"""Candidates queries on 1M synthetic screened predictions in PostgreSQL (target < 50 ms each).

Builds, in a schema of its own (dropped afterwards), the real migrated schema (view and
indexes included) holding N structures, each with one predicted SOC Hamiltonian and one
topology result, and DFT checks for 1% of them. The mix is what a screen of a GNoME-sized set
would look like: ~30% metals, ~2% strong and ~1% weak topological insulators, gaps from an
exponential distribution. The rows are written at revision 0003 (plain SQL, fast) and the
schema is then upgraded to 0004 and on to head, so the backfills of 0004 (structure copies,
current flag) and 0005 (DFT-check pointers) run on them and each step is timed; then VACUUM
ANALYZE, the state autovacuum leaves a table in.

Then it times (median of 5 runs after one warm-up) the README's example SQL (read from the
README, so the two never drift apart), the screening aggregates, `hamdb candidates`' query and
`hamdb structures list --elements`' two queries, with the pre-0004 LIKE scan of the latter as
a reference measured in the same run. --explain prints the key lines of each EXPLAIN ANALYZE
plan (nodes, index conditions, heap fetches, execution time); the slowest query's always.

    OMP_NUM_THREADS=1 python bench/query.py [--rows 1000000] [--explain] [--url URL]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

README = Path(__file__).resolve().parents[1] / "README.md"
README_SECTION = "## Screening results: the `candidates` view"
#: Revision the synthetic rows are written at (populate's SQL is that schema's).
POPULATE_AT = "0003"
#: Revisions upgraded to (and timed) one by one on the way to head.
UPGRADE_STEPS = ("0004",)

Query = str | sa.Select | tuple[sa.Select, ...]
#: Queries beside the README's: screening aggregates, one row, the commands' own queries.
OTHER_QUERIES: dict[str, str | Callable[[], Query]] = {
    "strong TIs, gap > 50 meV, count": """
        SELECT count(*) FROM candidates
        WHERE is_candidate AND dimension = 3 AND nu0 = 1 AND gap_ev > 0.05""",
    "candidates per Z2 class": """
        SELECT z2_class, count(*) AS n, avg(gap_ev) AS mean_gap_ev
        FROM candidates WHERE is_candidate
        GROUP BY z2_class ORDER BY n DESC""",
    "candidates per space group, 2D excluded, with 3-20 sites": """
        SELECT spacegroup_number, count(*) AS n
        FROM candidates WHERE is_candidate AND dimension = 3 AND n_sites BETWEEN 3 AND 20
        GROUP BY spacegroup_number ORDER BY n DESC""",
    "candidates without a DFT check, count": """
        SELECT count(*) FROM candidates WHERE is_candidate AND dft_topology_result_id IS NULL""",
    "hamdb candidates --min-gap 0.05 --z2 strong --elements Bi": lambda: _candidates_cli(),
    "one structure's row": "SELECT * FROM candidates WHERE structure_id = 123457",
    "hamdb structures list --elements Bi (rows + count)": lambda: _structures_list("Bi"),
    "hamdb structures list --elements Bi,Se (rows + count)": lambda: _structures_list("Bi", "Se"),
    "reference: --elements Bi,Se as the pre-0004 LIKE scan (rows + count)": lambda: _like_scan(
        "Bi", "Se"
    ),
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


def readme_queries() -> dict[str, str]:
    """The example SQL of the README's candidates section, named by the line before each."""
    text = README.read_text()
    if README_SECTION not in text:
        raise SystemExit(f"{README}: no section {README_SECTION!r} to take the example SQL from")
    section = text.split(README_SECTION, 1)[1].split("\n## ", 1)[0]
    queries = {}
    for number, match in enumerate(
        re.finditer(r"\n([^\n]+)\n\n```sql\n(.*?)```", section, re.S), 1
    ):
        title, sql = match.groups()
        name = title.split(" (")[0].rstrip(":")  # "...yet (the ones ...):" -> "...yet"
        queries[f"README {number}: {name}"] = sql.strip().rstrip(";")
    if not queries:
        raise SystemExit(f"{README}: no ```sql blocks in {README_SECTION!r}")
    return queries


def _candidates_cli() -> sa.Select:
    from hamdb.pipeline.candidates import candidates_query

    return candidates_query(min_gap_ev=0.05, z2="strong", elements=["Bi"])


def _structures_list(*elements: str) -> tuple[sa.Select, ...]:
    from hamdb.db.queries import StructureFilter, structures_count, structures_query

    where = StructureFilter(elements=elements)
    return structures_query(where, limit=50), structures_count(where)


def _like_scan(*elements: str) -> tuple[sa.Select, ...]:
    """`structures list`'s queries as they were before 0004: LIKE on elements_key."""
    from hamdb.db.models import StructureRow

    likes = [StructureRow.elements_key.like(f"%-{el}-%") for el in elements]
    rows = sa.select(StructureRow.id, StructureRow.reduced_formula).where(*likes)
    count = sa.select(sa.func.count()).select_from(StructureRow).where(*likes)
    return rows.order_by(StructureRow.id).limit(50), count


def _statements(query: Query) -> tuple[sa.Executable, ...]:
    if isinstance(query, str):
        return (sa.text(query),)
    return query if isinstance(query, tuple) else (query,)


def timed(engine: sa.Engine, query: Query, repeats: int = 5) -> tuple[float, int]:
    """Median wall time (s) of running every statement of `query`; rows of the first."""
    statements = _statements(query)
    with engine.connect() as c:
        n = len(c.execute(statements[0]).all())  # warm-up
        for stmt in statements[1:]:
            c.execute(stmt).all()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for stmt in statements:
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
    from hamdb.db.migrate import head, upgrade

    queries: dict[str, str | Callable[[], Query]] = {**readme_queries(), **OTHER_QUERIES}
    admin = sa.create_engine(args.url)
    schema = f"bench_query_{uuid.uuid4().hex[:8]}"
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
    url_text = url.render_as_string(hide_password=False)
    engine = sa.create_engine(url_text)
    try:
        upgrade(url_text, POPULATE_AT)
        t0 = time.perf_counter()
        populate(engine, args.rows)
        print(
            f"{args.rows:,} screened predictions (+{args.rows // 100:,} DFT checks) "
            f"built in {time.perf_counter() - t0:.1f} s at revision {POPULATE_AT} "
            f"in schema {schema}"
        )
        steps = []
        for target in (*UPGRADE_STEPS, head()):
            t0 = time.perf_counter()
            reached = upgrade(url_text, target)
            steps.append(f"-> {reached} {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE"))
        print(
            f"upgrade {POPULATE_AT} {' '.join(steps)} (backfills included), "
            f"then VACUUM ANALYZE {time.perf_counter() - t0:.1f} s"
        )
        _warn_if_not_all_visible(engine)
        worst = (0.0, "")
        for name, query in queries.items():
            q = query() if callable(query) else query
            seconds, n = timed(engine, q)
            reference = name.startswith("reference:")
            flag = "reference" if reference else "ok" if seconds < 0.05 else "SLOW (target < 50 ms)"
            print(f"{seconds * 1000:8.1f} ms  {n:>7} rows  {name}  [{flag}]")
            if seconds > worst[0] and not reference:
                worst = (seconds, name)
            if args.explain:
                _explain(engine, q)
        print(f"slowest: {worst[1]} ({worst[0] * 1000:.1f} ms)")
        if not args.explain:
            query = queries[worst[1]]
            _explain(engine, query() if callable(query) else query)
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _warn_if_not_all_visible(engine: sa.Engine) -> None:
    """Say so when VACUUM could not mark topology_results all-visible.

    Another session's open transaction older than the rows (e.g. one left "idle in
    transaction") holds VACUUM back: index-only scans then read the table for every row and
    the aggregates measure that, not the steady state autovacuum reaches once it ends.
    """
    with engine.connect() as c:
        pages, visible = c.execute(
            sa.text(
                "SELECT relpages, relallvisible FROM pg_class"
                " WHERE oid = 'topology_results'::regclass"
            )
        ).one()
        if visible >= 0.95 * pages:
            return
        holders = c.execute(
            sa.text(
                "SELECT pid, state, xact_start FROM pg_stat_activity"
                " WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()"
                " ORDER BY xact_start LIMIT 3"
            )
        ).all()
    print(
        f"WARNING: only {visible} of {pages} topology_results pages all-visible after VACUUM;"
        " index-only scans will read the table. Oldest open transactions: "
        + "; ".join(f"pid {pid} {state} since {start:%H:%M:%S}" for pid, state, start in holders)
    )


#: EXPLAIN (ANALYZE, BUFFERS) lines worth reading: plan nodes, what an index was asked, what
#: a node filtered, heap fetches of index-only scans, the buffers the whole plan touched (a
#: measure of work that load does not change), the total time.
_KEY_LINE = re.compile(
    r"^\S|->|Index Cond|Recheck Cond|Filter:|Heap Fetches|^  Buffers|Execution Time"
)
_COST = re.compile(r"  \(cost=[^)]*\)")


def _explain(engine: sa.Engine, query: Query) -> None:
    """Print the key lines of each statement's EXPLAIN ANALYZE plan, estimated costs cut."""
    for stmt in _statements(query):
        if isinstance(stmt, sa.TextClause):
            sql = stmt.text
        else:
            sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as c:
            plan = c.execute(sa.text("EXPLAIN (ANALYZE, BUFFERS) " + sql)).scalars().all()
        for line in plan:
            if _KEY_LINE.search(line) and "Rows Removed" not in line:
                print("    " + _COST.sub("", line))


if __name__ == "__main__":
    main()
