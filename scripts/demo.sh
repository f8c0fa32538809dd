#!/usr/bin/env bash
# The whole hamdb loop on the embedded default (SQLite + a local HDF5 store), in ./demo:
#   init -> ingest real crystal structures -> reference DFT (GPAW) for a handful -> the shipped
#   model -> predict --pending -> Z2 screen -> a candidates query -> DFT check of the top
#   candidate -> the screen's report.
# Run after scripts/setup.sh:  bash scripts/setup.sh && bash scripts/demo.sh
# Every step is printed; any failure stops the demo with a non-zero exit (set -e).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1   # 2 cores: one per process, no oversubscription
DEMO_DIR=${HAMDB_DEMO_DIR:-$PWD/demo}
START=$(date +%s)
step() { printf '\n== demo [%3ss] %s\n' "$(($(date +%s) - START))" "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "1/10 a fresh project in $DEMO_DIR (SQLite database + HDF5 store)"
rm -rf "$DEMO_DIR"
run hamdb init "$DEMO_DIR"
export HAMDB_PROJECT=$DEMO_DIR
unset HAMDB_DATABASE_URL

step "2/10 ingest a few dozen real crystals (experimental lattices; Bi2Se3, Bi2Te3, Sb2Te3 among them)"
python3 - "$DEMO_DIR/crystals" <<'EOF'
import sys
from pathlib import Path

from hamdb.io.structure_samples import prototype_structures

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name, structure in prototype_structures().items():
    structure.to(filename=str(out / f"{name}.cif"))
print(f"wrote {len(list(out.glob('*.cif')))} CIF files to {out}")
EOF
run hamdb ingest structures "$DEMO_DIR/crystals"
run hamdb structures list --max-sites 5

step "3/10 the model: the small one shipped in models/ (registered as 'production')"
MODEL_DIR=$(ls -d models/*/ 2>/dev/null | head -1 || true)
if [ -z "$MODEL_DIR" ]; then
    echo "demo: no model folder in models/ (expected models/<name>/model.pt)" >&2
    exit 1
fi
run hamdb models import "$MODEL_DIR"
run hamdb models list

step "4/10 reference DFT (GPAW LCAO + SOC) for a handful of small crystals the model covers"
DFT_IDS=$(python3 - <<'EOF'
from hamdb.config import load_project
from hamdb.db.engine import make_engine, session_scope
from hamdb.db.models import StructureRow
from hamdb.ml.inference import Predictor
from hamdb.store.store import HamiltonianStore
from pymatgen.core import Structure

project = load_project()
with session_scope(make_engine(project.database_url)) as s:
    predictor = Predictor.load(s, HamiltonianStore(project.store_path), "production")
    rows = s.query(StructureRow).order_by(StructureRow.n_sites, StructureRow.id).all()
    picked = []
    for row in rows:
        try:
            predictor.check(Structure.from_dict(row.structure_json))
        except Exception:
            continue
        if row.n_sites <= 2:
            picked.append(str(row.id))
    print(" ".join(picked[:3]))
EOF
)
if [ -n "$DFT_IDS" ]; then
    # shellcheck disable=SC2086
    run hamdb dft run $DFT_IDS --workers 2
else
    echo "demo: (no structure of <= 2 sites the model covers: skipping)"
fi

step "5/10 predict SOC Hamiltonians for every structure without one, screening each batch"
run hamdb predict --pending --screen --workers 2 --batch 8
run hamdb jobs status

step "6/10 screen the DFT Hamiltonians too (the reference the report compares with)"
run hamdb screen --kind dft

step "7/10 the candidates view: every screened prediction, as SQL"
run hamdb sql "SELECT structure_id, formula, spacegroup_number AS sg, z2_class, nu0, nu1, nu2, nu3,
       round(gap_ev, 3) AS gap_ev, round(uncertainty_ev, 3) AS unc_ev, dft_z2_class
FROM candidates ORDER BY is_candidate DESC, gap_ev DESC LIMIT 15"

step "8/10 topological-insulator candidates (gap and non-trivial Z2)"
run hamdb candidates --format table

step "9/10 verify the most promising unverified candidate with DFT"
run hamdb verify --top 1

step "10/10 how far the screen can be believed (every structure with predicted and DFT results)"
run hamdb report

step "done in $(($(date +%s) - START)) s; explore with: HAMDB_PROJECT=$DEMO_DIR hamdb candidates --all"
