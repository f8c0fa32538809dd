"""A real worker process for the reliability tests: `run_worker` with the model's test double.

Usage: python worker_proc.py DATABASE_URL STORE_PATH MODEL_VERSION_ID [key=value ...]
(batch, lease_s, max_attempts, limit, delay_s). Prints the worker's stats as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stub_model import factory

from hamdb.config import Project
from hamdb.pipeline.claims import writer_lock
from hamdb.pipeline.workers import WorkerOptions, run_worker


def main() -> None:
    url, store, mv = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    extra = dict(arg.split("=", 1) for arg in sys.argv[4:])
    if "delay_s" in extra:
        os.environ["HAMDB_STUB_DELAY_S"] = extra.pop("delay_s")
    options = WorkerOptions(
        model=mv,
        batch=int(extra.get("batch", 16)),
        lease_s=float(extra.get("lease_s", 30)),
        max_attempts=int(extra.get("max_attempts", 3)),
        limit=int(extra["limit"]) if "limit" in extra else None,
    )
    project = Project(root=store.parent, database_url=url, store_path=store)
    with writer_lock(url, "test worker"):
        stats = run_worker(project, options, factory)
    print(json.dumps(stats.as_dict()), flush=True)


if __name__ == "__main__":
    main()
