"""Ingest's worker processes: each structure is prepared (validated, its symmetry found, its
reduced cells computed, its JSON written: structure_prepare) in a worker while the ingest
process matches and writes the ones before it, so two cores both work (pipeline
parallelism).

A worker keeps reading tasks and sending results from threads of its own, so neither side
ever waits on a full pipe while the other has work: up to `AHEAD` units are queued per
worker, enough to cover a batch being matched and written.

A worker whose symmetry search hangs is killed by its alarm (structure_symmetry); so is
one that crashes. The worker writes where it is (chunk, unit, structure) into a shared
progress file before each structure, so the ingest process knows which structure killed
it: it starts a new worker, sends it the unfinished chunks again, and has that structure
searched with spglib instead of moyopy; if it kills the worker again, the structure is a
ReadFailure with a one-line reason and the ingest goes on.
"""

from __future__ import annotations

import itertools
import queue
import signal
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from hamdb.io import structure_symmetry as symmetry
from hamdb.io.structure_prepare import Prepared, Unit, prepare_unit
from hamdb.io.structure_symmetry import METHODS, Child, arm, connect, timeout_reason
from hamdb.io.structures import RawFile, ReadFailure

#: Units per message.
CHUNK = 16
#: Units queued per worker (a batch of 500 matched and written meanwhile keeps it busy).
AHEAD = 1024
#: Bytes of raw files queued per worker at most.
AHEAD_BYTES = 64 * 2**20
#: Deaths of one chunk with no structure to blame before its units are given up.
_MAX_BLIND_DEATHS = 2

UnitResult = tuple[list[Prepared | ReadFailure], int, dict[str, float]]


def serve(tasks_fd: str, results_fd: str, progress_fd: str, analyse: str, seconds: str) -> None:
    """A worker's loop (run by structure_symmetry.Child): (seq, units, plans) in,
    (seq, [prepare_unit result per unit]) out, until the task pipe closes."""
    tasks, results, progress = connect(tasks_fd, results_fd, progress_fd)
    arm(float(seconds))
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def read() -> None:
        while True:
            try:
                inbox.put(tasks.recv())
            except (EOFError, OSError):
                inbox.put(None)
                return

    def write() -> None:
        while (message := outbox.get()) is not None:
            results.send(message)

    threading.Thread(target=read, daemon=True).start()
    writer = threading.Thread(target=write)
    writer.start()

    def mark(index: int) -> None:
        progress[2] = index

    work = analyse == "1"
    while (task := inbox.get()) is not None:
        seq, units, plans = task
        progress[0] = seq
        out = []
        for position, (unit, plan) in enumerate(zip(units, plans, strict=True)):
            progress[1] = position
            out.append(prepare_unit(unit, work, plan, mark))
        progress[0] = -1
        outbox.put((seq, out))
    outbox.put(None)
    writer.join()


@dataclass
class _Chunk:
    seq: int
    units: list[Unit]
    #: Per unit: {structure index: symmetry method or failure reason} (prepare_unit's plan).
    plans: list[dict[int, str]]
    blind_deaths: int = 0

    @property
    def size(self) -> int:
        return len(self.units)

    @property
    def raw_bytes(self) -> int:
        return sum(len(u[0].data) for u in self.units if isinstance(u[0], RawFile))


@dataclass
class _Worker:
    child: Child
    chunks: deque[_Chunk] = field(default_factory=deque)

    @property
    def queued(self) -> int:
        return sum(chunk.size for chunk in self.chunks)

    @property
    def queued_bytes(self) -> int:
        return sum(chunk.raw_bytes for chunk in self.chunks)


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Pipeline:
    """`workers` worker processes preparing units; `map` gives their results in order.

    Use as a context manager (the workers end with it).
    """

    def __init__(self, workers: int, analyse: bool, seconds: float | None = None) -> None:
        self.analyse = analyse
        #: The symmetry searches' timeout (default structure_symmetry.SYMMETRY_TIMEOUT_S).
        self.seconds = symmetry.SYMMETRY_TIMEOUT_S if seconds is None else seconds
        self.workers = [_Worker(self._start()) for _ in range(workers)]
        #: Worker deaths handled (for reports and tests).
        self.restarts = 0

    def _start(self) -> Child:
        return Child(
            "hamdb.io.structure_workers:serve", "1" if self.analyse else "0", str(self.seconds)
        )

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for worker in self.workers:
            worker.child.close()

    def _send(self, worker: _Worker, chunk: _Chunk) -> None:
        worker.child.tasks.send((chunk.seq, chunk.units, chunk.plans))

    def map(self, units: Iterable[Unit]) -> Iterator[UnitResult]:
        """prepare_unit's result for every unit, in order."""
        source = iter(units)
        exhausted = False
        seqs = itertools.count()
        done: dict[int, list[UnitResult]] = {}
        next_out = 0
        while True:
            while not exhausted:
                worker = min(self.workers, key=lambda w: w.queued)
                if worker.queued + CHUNK > AHEAD or worker.queued_bytes > AHEAD_BYTES:
                    break
                batch = list(itertools.islice(source, CHUNK))
                if not batch:
                    exhausted = True
                    break
                chunk = _Chunk(next(seqs), batch, [{} for _ in batch])
                worker.chunks.append(chunk)
                self._send(worker, chunk)
            while next_out in done:
                yield from done.pop(next_out)
                next_out += 1
            busy = [w for w in self.workers if w.chunks]
            if not busy:
                if exhausted:
                    return
                continue
            ready = wait([w.child.results for w in busy])
            for worker in busy:
                if worker.child.results not in ready:
                    continue
                try:
                    seq, results = worker.child.results.recv()
                except (EOFError, OSError):
                    self._recover(worker, done)
                    continue
                chunk = worker.chunks.popleft()
                assert chunk.seq == seq
                done[seq] = results

    def _recover(self, worker: _Worker, done: dict[int, list[UnitResult]]) -> None:
        """A worker died: blame the structure it was on, start another, resend its chunks."""
        seq, position, index, _ = worker.child.read_progress()
        code = worker.child.death()
        worker.child.close()
        self.restarts += 1
        culprit = next((c for c in worker.chunks if c.seq == seq), None)
        if culprit is not None:
            plan = culprit.plans[position]
            tried = plan.get(index, METHODS[0])
            if tried in METHODS and tried != METHODS[-1]:
                plan[index] = METHODS[METHODS.index(tried) + 1]
            elif code == -signal.SIGALRM:
                plan[index] = timeout_reason(self.seconds)
            else:
                plan[index] = f"the worker process preparing it died ({_describe(code)})"
        else:
            head = worker.chunks[0]
            head.blind_deaths += 1
            if head.blind_deaths > _MAX_BLIND_DEATHS:
                worker.chunks.popleft()
                reason = f"worker processes kept dying on it ({_describe(code)})"
                done[head.seq] = [([_failure(unit, reason)], 0, {}) for unit in head.units]
        worker.child = self._start()
        for chunk in worker.chunks:
            self._send(worker, chunk)


def _failure(unit: Unit, reason: str) -> ReadFailure:
    payload, _ = unit
    if isinstance(payload, RawFile):
        return ReadFailure(payload.source, payload.name, reason)
    return ReadFailure(payload[1], payload[2], reason)
