#!/usr/bin/env bash
# The whole hamdb loop on the embedded default (SQLite + a local HDF5 store), in ./demo:
#   init -> ingest real crystal structures -> reference DFT (GPAW) for a handful -> the model
#   (shipped in models/, else a tiny one trained here) -> predict --pending with the Z2 screen
#   -> a candidates query -> DFT check of the top candidate -> the screen's report.
# Run after scripts/setup.sh:  bash scripts/setup.sh && bash scripts/demo.sh
# Every step is printed; any failure stops the demo with a non-zero exit (set -e).
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 # 2 cores: one per process, no oversubscription
DEMO_DIR=${HAMDB_DEMO_DIR:-$PWD/demo}
START=$(date +%s)
step() { printf '\n== demo [%4ss] %s\n' "$(($(date +%s) - START))" "$*"; }
run() {
    printf '$ %s\n' "$*"
    "$@"
}

step "1/10 a fresh project in $DEMO_DIR (SQLite database + HDF5 store)"
rm -rf "$DEMO_DIR"
unset HAMDB_DATABASE_URL
run hamdb init "$DEMO_DIR"
export HAMDB_PROJECT=$DEMO_DIR

step "2/10 ingest a few dozen real crystals (experimental lattices; Bi2Se3, Bi2Te3, Sb2Te3 among them)"
python3 - "$DEMO_DIR/crystals" <<'PY'
import sys
from pathlib import Path

from hamdb.io.structure_samples import prototype_structures

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
for name, structure in prototype_structures().items():
    structure.to(filename=str(out / f"{name}.cif"))
print(f"wrote {len(list(out.glob('*.cif')))} CIF files to {out}")
PY
run hamdb ingest structures "$DEMO_DIR/crystals"
run hamdb structures list --max-sites 2

step "3/10 reference DFT (GPAW LCAO + SOC) for a handful of small crystals"
MODEL_DIR=""
for d in models/*/; do
    if [ -f "$d/model.pt" ]; then
        MODEL_DIR=$d
        break
    fi
done
DFT_IDS=$(python3 - "$MODEL_DIR" <<'PY'
import sys

from hamdb.config import load_project
from hamdb.db.engine import make_engine, session_scope
from hamdb.db.models import StructureRow

from pymatgen.core import Structure

from hamdb.errors import HamdbError


# Crystals the shipped model accepts, if there is one (its predictions can then be compared
# with DFT); otherwise light sp elements a tiny model can learn from a handful of runs.
def accepted(structure: Structure) -> bool:
    return {site.specie.symbol for site in structure} <= {"Si", "C", "Ge"}


if sys.argv[1]:
    from hamdb.ml.inference import Predictor

    predictor = Predictor.from_path(sys.argv[1])

    def accepted(structure: Structure) -> bool:
        try:
            predictor.check(structure)
        except HamdbError:
            return False
        return True


project = load_project()
with session_scope(make_engine(project.database_url)) as s:
    rows = s.query(StructureRow).order_by(StructureRow.n_sites, StructureRow.id).all()
    picked = [
        str(r.id)
        for r in rows
        if r.n_sites <= 2 and accepted(Structure.from_dict(r.structure_json))
    ]
print(" ".join(picked[:3]))
PY
)
if [ -z "$DFT_IDS" ]; then
    echo "demo: no small crystal made of the model's elements among the structures" >&2
    exit 1
fi
# shellcheck disable=SC2086
run hamdb dft run $DFT_IDS

step "4/10 the model: the small one shipped in models/, else a tiny one trained on step 3's data"
if [ -n "$MODEL_DIR" ]; then
    run hamdb models import "$MODEL_DIR" --alias production
else
    echo "(no models/<name>/model.pt: training a tiny model on the DFT data of step 3: a few epochs, only to show the loop)"
    run hamdb train nonsoc --epochs 3 --seed 0 --threads 2
    run hamdb train soc --epochs 3 --seed 0 --threads 2
    VERSION=$(hamdb models list --json | python3 -c \
        "import json, sys; print(max(v['version'] for v in json.load(sys.stdin)))")
    run hamdb models alias hamdb "$VERSION" production
fi
run hamdb models list

step "5/10 predict SOC Hamiltonians for every structure without one, screening each batch"
echo "(structures with elements the model never saw fail alone, with the reason; the screen drops"
echo " overlap directions below 1e-2 of the largest, as the model card says for the dzp basis)"
run hamdb predict --pending --screen --s-min 1e-2 --workers 2 --batch 4
run hamdb jobs status

step "6/10 screen the DFT Hamiltonians too (the reference 'hamdb report' compares with)"
run hamdb screen --kind dft

step "7/10 the candidates view: every screened prediction, by SQL"
run hamdb sql "SELECT structure_id, formula, spacegroup_number AS sg, z2_class,
       nu0, nu1, nu2, nu3, round(gap_ev, 3) AS gap_ev, round(uncertainty_ev, 3) AS unc_ev,
       dft_z2_class, dft_agrees
FROM candidates ORDER BY is_candidate DESC, gap_ev DESC LIMIT 15"

step "8/10 topological-insulator candidates (a gap and a non-trivial Z2)"
run hamdb candidates --format table

step "9/10 verify the most promising unverified candidate with DFT"
run hamdb verify --top 1

step "10/10 how far the screen can be believed (structures with predicted and DFT results)"
run hamdb report

step "done in $(($(date +%s) - START)) s; explore: HAMDB_PROJECT=$DEMO_DIR hamdb candidates --all"
