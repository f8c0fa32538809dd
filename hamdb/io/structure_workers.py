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
import pickle
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from hamdb.io import structure_symmetry as symmetry
from hamdb.io.structure_prepare import Unit, UnitResult, prepare_unit
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


def serve(tasks_fd: str, results_fd: str, progress_fd: str, analyse: str, seconds: str) -> None:
    """A worker's loop (run by structure_symmetry.Child): (seq, units, plans) in,
    (seq, [prepare_unit result per unit]) out, until the task pipe closes."""
    tasks, results, progress = connect(tasks_fd, results_fd, progress_fd)
    arm(float(seconds))
    sys.setswitchinterval(0.001)  # the pipe threads wait less for the preparing one
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
    raw_bytes: int = 0

    def __post_init__(self) -> None:
        self.raw_bytes = sum(len(u[0].data) for u in self.units if isinstance(u[0], RawFile))


class _Worker:
    """A worker process, the chunks sent to it and not yet answered, and a thread that
    writes to its task pipe (a full pipe then blocks that thread, not the matching)."""

    def __init__(self, child: Child) -> None:
        self.chunks: deque[_Chunk] = deque()
        self.queued = 0
        self.queued_bytes = 0
        self._start(child)

    def _start(self, child: Child) -> None:
        self.child = child
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._write, args=(child, self._outbox), daemon=True)
        self._writer.start()

    @staticmethod
    def _write(child: Child, outbox: queue.SimpleQueue[bytes | None]) -> None:
        while (data := outbox.get()) is not None:
            try:
                child.tasks.send_bytes(data)
            except OSError:  # the worker died: the ingest process restarts it
                return

    def _post(self, chunk: _Chunk) -> None:
        self._outbox.put(pickle.dumps((chunk.seq, chunk.units, chunk.plans), protocol=5))

    def send(self, chunk: _Chunk) -> None:
        self.chunks.append(chunk)
        self.queued += len(chunk.units)
        self.queued_bytes += chunk.raw_bytes
        self._post(chunk)

    def pop(self) -> _Chunk:
        chunk = self.chunks.popleft()
        self.queued -= len(chunk.units)
        self.queued_bytes -= chunk.raw_bytes
        return chunk

    def restart(self, child: Child) -> None:
        """After a death: a new process, sent every chunk still unanswered."""
        self.close()
        self._start(child)
        for chunk in self.chunks:
            self._post(chunk)

    def close(self, kill: bool = False) -> None:
        """End the writer and the process (`kill`: at once, its work unwanted)."""
        if kill:
            self.child.process.kill()
        self._outbox.put(None)
        self._writer.join()
        self.child.close()


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
        #: (wall, CPU) seconds `map` spent waiting for results and unpickling them.
        self.waited = [0.0, 0.0]

    def _start(self) -> Child:
        return Child(
            "hamdb.io.structure_workers:serve", "1" if self.analyse else "0", str(self.seconds)
        )

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        self.close(kill=kind is not None)

    def close(self, kill: bool = False) -> None:
        for worker in self.workers:
            worker.close(kill)

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
                worker.send(_Chunk(next(seqs), batch, [{} for _ in batch]))
            while next_out in done:
                yield from done.pop(next_out)
                next_out += 1
            busy = [w for w in self.workers if w.chunks]
            if not busy:
                if exhausted:
                    return
                continue
            since = time.perf_counter(), time.process_time()
            ready = wait([w.child.results for w in busy])
            for worker in busy:
                if worker.child.results not in ready:
                    continue
                try:
                    seq, results = worker.child.results.recv()
                except (EOFError, OSError):
                    self._recover(worker, done)
                    continue
                finally:
                    self.waited[0] += time.perf_counter() - since[0]
                    self.waited[1] += time.process_time() - since[1]
                    since = time.perf_counter(), time.process_time()
                chunk = worker.pop()
                assert chunk.seq == seq
                done[seq] = results

    def _recover(self, worker: _Worker, done: dict[int, list[UnitResult]]) -> None:
        """A worker died: blame the structure it was on, start another, resend its chunks."""
        seq, position, index, _ = worker.child.read_progress()
        code = worker.child.death()
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
                worker.pop()
                reason = f"worker processes kept dying on it ({_describe(code)})"
                done[head.seq] = [([_failure(unit, reason)], 0, {}) for unit in head.units]
        worker.restart(self._start())


def _failure(unit: Unit, reason: str) -> ReadFailure:
    payload, _ = unit
    if isinstance(payload, RawFile):
        return ReadFailure(payload.source, payload.name, reason)
    return ReadFailure(payload[1], payload[2], reason)
