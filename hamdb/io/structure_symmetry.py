"""The symmetry search of ingest (space group and primitive cell), never left to hang.

`search(cell, method)` runs moyopy (symprec 0.1 Å, angle tolerance 5°; a fast Rust port of
spglib's algorithm) or, as the fallback, spglib itself at the same tolerances.

moyopy 0.21 can loop forever, growing to many GB, on some cells: e.g. Bi2Se3's rhombohedral
primitive cell strained by (-28 %, -28 %, +20 %) along its lattice vectors
(tests/io/test_structure_symmetry.py builds it). Rust code cannot be interrupted from
Python, so a search runs in a process that can be killed, under an alarm (SIGALRM with its
default action: the kernel ends the process after `SYMMETRY_TIMEOUT_S`, whatever it runs):

* in ingest's worker processes (structure_workers), which call `arm(seconds)` at start;
  ingest sees the death, restarts the worker and reruns that structure with spglib, and
  reports it as a bad structure if that dies too;
* everywhere else (the ingest process itself: `ingest(workers=1)`, `find_or_add_structure`,
  stored rows analysed while matching), in one helper process started on first use and
  kept: moyopy first, spglib after a timeout, InputError after a second one. A call costs
  a round trip to the helper besides the search; `symmetries_of` sends many in one.

The fallback can put a structure in another block than moyopy would have (they disagree
on ~1 in 3,000 of the bench's crystals); that only happens to cells moyopy cannot do.
"""

from __future__ import annotations

import atexit
import functools
import logging
import math
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from hamdb.errors import InputError
from hamdb.io.structure_cells import Cell

SYMPREC = 0.1
ANGLE_TOLERANCE_DEG = 5.0
#: Seconds a symmetry search may run before the process running it is killed (moyopy takes
#: well under 0.1 s on cells of a few hundred atoms).
SYMMETRY_TIMEOUT_S = 10.0
#: The search methods, in the order they are tried.
METHODS = ("moyopy", "spglib")


@dataclass(frozen=True)
class Symmetry:
    """What one search tells: space-group number, primitive size, and `linear`, the matrix
    whose columns are a primitive basis in the input basis (moyopy's prim_std_linear, before
    idealisation)."""

    number: int
    n_primitive: int
    linear: np.ndarray

    def primitive_lattice(self, lattice: np.ndarray) -> np.ndarray:
        """Rows: the primitive cell vectors (Å) of a structure with these `lattice` rows."""
        return self.linear.T @ lattice


@functools.cache
def _quiet_moyopy() -> None:
    # moyopy logs a warning per non-primitive input about operations it leaves out of the
    # input-cell basis; hamdb uses only the space-group number and the primitive cell.
    # (Once: each setLevel clears the logging module's caches.)
    logging.getLogger("moyo").setLevel(logging.ERROR)


def _moyopy(lattice: np.ndarray, frac: np.ndarray, numbers: list[int]) -> Symmetry:
    import moyopy

    _quiet_moyopy()
    cell = moyopy.Cell(lattice, frac, numbers)
    data = moyopy.MoyoDataset(
        cell, symprec=SYMPREC, angle_tolerance=math.radians(ANGLE_TOLERANCE_DEG)
    )
    linear = np.asarray(data.prim_std_linear, dtype=float)
    return Symmetry(int(data.number), len(data.prim_std_cell.numbers), linear)


def _spglib(lattice: np.ndarray, frac: np.ndarray, numbers: list[int]) -> Symmetry:
    import spglib

    cell = (np.asarray(lattice, dtype=float), np.asarray(frac, dtype=float), numbers)
    options = {"symprec": SYMPREC, "angle_tolerance": ANGLE_TOLERANCE_DEG}
    with warnings.catch_warnings():  # spglib 2.5+ asks callers to opt into its exceptions
        warnings.simplefilter("ignore", DeprecationWarning)
        dataset = spglib.get_symmetry_dataset(cell, **options)
        primitive = spglib.standardize_cell(cell, to_primitive=True, no_idealize=True, **options)
    if dataset is None or primitive is None:
        raise ValueError("spglib found no symmetry dataset")
    # The un-idealised primitive lattice is an integer combination's inverse of the input's:
    # the input basis in primitive coordinates is integer.
    inverse = np.linalg.inv(primitive[0] @ np.linalg.inv(cell[0]))
    integer = np.rint(inverse)
    if not np.allclose(inverse, integer, atol=1e-6):
        raise ValueError("spglib's primitive cell is not a sublattice of the input")
    return Symmetry(int(dataset.number), len(primitive[2]), np.linalg.inv(integer).T)


def search(lattice: np.ndarray, frac: np.ndarray, numbers: list[int], method: str) -> Symmetry:
    """One symmetry search by `method` ('moyopy' | 'spglib') on the arrays of a cell
    (lattice rows in Å); InputError if it fails. Unguarded: see the module doc."""
    try:
        return (_moyopy if method == "moyopy" else _spglib)(lattice, frac, numbers)
    except BaseException as exc:  # moyopy raises a Rust panic type not derived from Exception
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        raise InputError(f"symmetry search failed ({exc})") from None


# -- the alarm (in processes that may be killed) ------------------------------------------

_alarm_s: float | None = None


def arm(seconds: float) -> None:
    """Make this process (a worker) run searches itself, killed by SIGALRM after `seconds`."""
    global _alarm_s
    import moyopy  # noqa: F401 (imported outside the alarm's window)
    import spglib  # noqa: F401

    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    _alarm_s = seconds


def _guarded(lattice: np.ndarray, frac: np.ndarray, numbers: list[int], method: str) -> Symmetry:
    assert _alarm_s is not None
    signal.setitimer(signal.ITIMER_REAL, _alarm_s)
    try:
        return search(lattice, frac, numbers, method)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def timeout_reason(seconds: float) -> str:
    """The one-line reason given for a structure whose every search timed out."""
    return (
        f"symmetry search did not finish within {seconds:g} s (moyopy, then spglib); not ingested"
    )


# -- child processes ---------------------------------------------------------------------


class Child:
    """A Python process running `target` ("module:function") with a task pipe in, a result
    pipe out and a small shared progress file, started with subprocess (not multiprocessing:
    nothing of the parent's `__main__` is imported again, so any script may use it).

    The child calls `function(tasks_fd, results_fd, progress_fd, *args)`; see `connect`.
    It dies with its parent's pipes: a read on `results` raises EOFError once it is gone.
    """

    def __init__(self, target: str, *args: str) -> None:
        import hamdb

        module, function = target.split(":")
        theirs_in, self_out = os.pipe()
        self_in, theirs_out = os.pipe()
        self.progress = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.progress.write(bytes(8 * PROGRESS_SLOTS))
        self.progress.flush()
        fds = (theirs_in, theirs_out, self.progress.fileno())
        code = f"import sys; from {module} import {function} as f; f(*sys.argv[1:])"
        env = dict(os.environ)
        root = str(Path(hamdb.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        env.setdefault("OMP_NUM_THREADS", "1")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, *map(str, fds), *args],
            pass_fds=fds,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        os.close(theirs_in)
        os.close(theirs_out)
        self.tasks = Connection(self_out, readable=False)
        self.results = Connection(self_in, writable=False)

    def read_progress(self) -> list[int]:
        """The PROGRESS_SLOTS integers the child last wrote."""
        self.progress.seek(0)
        return [int(x) for x in np.frombuffer(self.progress.read(8 * PROGRESS_SLOTS), np.int64)]

    def death(self) -> int:
        """Wait for the (dying) child; its exit code (-signal if killed)."""
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def close(self) -> None:
        """End the child (politely: its task pipe closes) and free the pipes."""
        self.tasks.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()
        self.progress.close()


#: Integers in a child's progress file.
PROGRESS_SLOTS = 4


def connect(tasks_fd: str, results_fd: str, progress_fd: str) -> tuple:
    """In a child: (tasks Connection, results Connection, progress array (int64, writable,
    shared with the parent))."""
    tasks = Connection(int(tasks_fd), writable=False)
    results = Connection(int(results_fd), readable=False)
    shared = mmap.mmap(int(progress_fd), 8 * PROGRESS_SLOTS)
    return tasks, results, np.frombuffer(shared, dtype=np.int64)


def serve_symmetry(tasks_fd: str, results_fd: str, progress_fd: str, seconds: str) -> None:
    """The helper's loop: a list of (lattice, frac, numbers, method) in, the list of
    Symmetry or InputError out; the index being searched is kept in the progress file."""
    tasks, results, progress = connect(tasks_fd, results_fd, progress_fd)
    arm(float(seconds))
    while True:
        try:
            batch = tasks.recv()
        except EOFError:
            return
        answers: list[Any] = []
        for index, task in enumerate(batch):
            progress[0] = index
            try:
                answers.append(_guarded(*task))
            except InputError as exc:
                answers.append(exc)
        results.send(answers)


class _Helper:
    """A child running searches for this process; replaced after it is killed."""

    def __init__(self, seconds: float) -> None:
        self.child = Child("hamdb.io.structure_symmetry:serve_symmetry", str(seconds))

    def alive(self) -> bool:
        return self.child.process.poll() is None

    def call(self, batch: list[tuple[Any, ...]]) -> list[Symmetry | InputError] | int:
        """The answers, or the index of the search that killed the helper meanwhile."""
        try:
            self.child.tasks.send(batch)
            return self.child.results.recv()
        except (EOFError, OSError):
            index = int(self.child.read_progress()[0])
            self.child.death()
            self.child.close()
            return index


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def stop_helper() -> None:
    """End the helper process if one runs (the next search starts another)."""
    global _helper
    with _helper_lock:
        if _helper is not None:
            _helper.child.close()
            _helper = None


atexit.register(stop_helper)


def _arrays(crystal: Any) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(lattice rows, fractional coordinates, atomic numbers) of a Cell or a Structure."""
    if isinstance(crystal, Cell):
        return crystal.lattice, crystal.frac, crystal.numbers.tolist()
    return crystal.lattice.matrix, crystal.frac_coords, [sp.Z for sp in crystal.species]


def symmetries_of(crystals: list[Any], method: str = "moyopy") -> list[Symmetry | InputError]:
    """`symmetry_of` for many Cells or Structures, each answer a Symmetry or the InputError
    it would raise; in the helper process, in one round trip (what ingest in one process
    uses: a round trip per structure would cost about as much as the search)."""
    tasks = [(*_arrays(crystal), method) for crystal in crystals]
    if _alarm_s is not None:
        out: list[Symmetry | InputError] = []
        for task in tasks:
            try:
                out.append(_guarded(*task))
            except InputError as exc:
                out.append(exc)
        return out
    global _helper
    answers: list[Symmetry | InputError | None] = [None] * len(tasks)
    todo = list(range(len(tasks)))  # indices still to search, in order
    with _helper_lock:
        while todo:
            if _helper is None or not _helper.alive():
                _helper = _Helper(SYMMETRY_TIMEOUT_S)
            found = _helper.call([tasks[i] for i in todo])
            if not isinstance(found, int):
                for i, answer in zip(todo, found, strict=True):
                    answers[i] = answer
                break
            _helper = None
            culprit = todo[found]  # the searches before it are redone (deaths are rare)
            tried = tasks[culprit][3]
            if tried != METHODS[-1]:
                tasks[culprit] = (*tasks[culprit][:3], METHODS[METHODS.index(tried) + 1])
            else:
                answers[culprit] = InputError(timeout_reason(SYMMETRY_TIMEOUT_S))
                todo.remove(culprit)
    assert all(answer is not None for answer in answers)
    return answers  # type: ignore[return-value]


def symmetry_of(crystal: Any, method: str = "moyopy") -> Symmetry:
    """Symmetry of a Cell or a pymatgen Structure at symprec 0.1 Å, angle tolerance 5°,
    never hanging (see the module doc); InputError if the search fails or times out.

    `method` 'spglib' skips moyopy (a worker's second try on a structure).
    """
    if _alarm_s is not None:
        return _guarded(*_arrays(crystal), method)
    (answer,) = symmetries_of([crystal], method)
    if isinstance(answer, InputError):
        raise answer
    return answer
