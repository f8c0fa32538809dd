"""Orthonormalised H(k) of a non-orthogonal basis, optionally filtering near-dependent directions.

H c = E S c becomes H' y = E y with H' = X H X. With s_min = 0, X = S^{-1/2} (Löwdin): the
exact problem, every direction of S(k) kept. Löwdin orbitals stay centred on their atoms, so
eigenvectors y keep the atomic positions' meaning (needed by the Wilson-loop gauge).

Why filter: a basis that is nearly linearly dependent (GPAW's dzp: smallest eigenvalue of S(k)
~3e-5 for Si at Γ) has directions v of S(k) with tiny eigenvalues w; X scales H along them by
1/w, so an H with meV errors (a predicted one, with the exact S) gets eV-sized spurious bands
inside the gap. Canonical orthogonalisation (Löwdin, Adv. Quantum Chem. 5, 185 (1970)) solves
in the subspace of directions with w > s_min · max(w) only: the threshold is *relative* to the
largest eigenvalue of S at the same k (scale-free; for normalised orbitals max(w) is of order
the number of overlapping neighbours, so s_min = 1e-3 drops directions a thousand times weaker
than the strongest). To keep fixed matrix sizes (batched LAPACK) and eigenvectors in the Löwdin
frame, the dropped directions are not removed but pushed above every band:

    H' = X_f H X_f + E_drop · (1 − P),   X_f = V diag(w^{-1/2} kept, 0 dropped) V†,
    P = V_keep V_keep†,                  E_drop(k) = 1 eV + 2 ‖X_f H X_f‖_F.

‖·‖_F bounds the spectral radius, so E_drop lies strictly above every kept eigenvalue: the
kept eigenvectors are the lowest N − n_dropped ones, V_keep-spanned and orthonormal; the last
n_dropped eigenvalues at that k belong to dropped directions and must not be reported as bands
(occupied counts are unaffected). S is spinless: X_f and P are built on the n×n S(k) and applied
as X_f ⊗ σ0 on interleaved spinor indices (2·orbital + spin), an eighth of the spinor cost.
"""

from __future__ import annotations

import numpy as np

from hamdb.errors import HamiltonianError

#: With s_min = 0, an S(k) whose smallest eigenvalue is below this fraction of its largest is
#: refused as singular (or not positive definite) instead of amplifying round-off by 1/√w.
SINGULAR_RATIO = 1e-8

#: The overlap filter hamdb screens *predicted* Hamiltonians with by default (`hamdb predict
#: --screen`, `hamdb screen --kind predicted`) and evaluates models at (the *_filtered metrics of
#: hamdb.ml.evaluate). In GPAW's dzp basis λ_min(S(k)) ~ 1e-4·λ_max, so a meV of model error on H
#: closes DFT gaps with exact eigenvalues; at 1e-2 white noise of 3 meV moves gaps by ~0.05 eV and
#: the filter itself moves DFT gaps by ~0.08 eV (bench/ml_band_noise.py). DFT and tight-binding
#: Hamiltonians keep the exact solve (s_min = 0) unless asked.
PREDICTED_S_MIN = 1e-2


class SingularOverlapError(HamiltonianError):
    """S(k) is singular or not positive definite; `index` is the k-point, `smallest` its λ_min."""

    def __init__(self, message: str, index: int, smallest: float):
        super().__init__(message)
        self.index = index
        self.smallest = smallest


def spinless_overlap(sk: np.ndarray, n_states: int, n_spin: int) -> np.ndarray:
    """The n×n spinless S(k) of `sk`: already spinless, or the spinor S ⊗ σ0 (interleaved).

    A spinor overlap must be S ⊗ σ0 (no spin mixing, equal spin blocks) to 1e-10 of its size.
    """
    if sk.shape[-1] * n_spin == n_states:
        return sk
    if n_spin != 2 or sk.shape[-1] != n_states:
        raise HamiltonianError(
            f"S(k) of size {sk.shape[-1]} does not match {n_states} states with n_spin = {n_spin}"
        )
    up = sk[..., 0::2, 0::2]
    scale = max(1.0, float(np.abs(up).max(initial=0.0)))
    if (
        np.abs(sk[..., 1::2, 1::2] - up).max(initial=0.0) > 1e-10 * scale
        or np.abs(sk[..., 0::2, 1::2]).max(initial=0.0) > 1e-10 * scale
    ):
        raise HamiltonianError("the spinor overlap S(k) is not S ⊗ σ0 (spin-dependent overlap)")
    return up


def lowdin_transform(
    sk: np.ndarray, s_min: float = 0.0
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(X_f, 1 − P or None, dropped directions per k) of spinless overlaps sk (nk, n, n).

    s_min = 0: X = S^{-1/2}, nothing dropped (None), and a singular S raises
    SingularOverlapError. s_min > 0: directions with w ≤ s_min · max(w) are dropped; an S with
    an eigenvalue below −s_min · max(w) is broken, not just near-dependent, and raises.
    """
    if s_min < 0:
        raise HamiltonianError(f"s_min must be >= 0, got {s_min}")
    w, v = np.linalg.eigh(sk)
    top = np.maximum(w[:, -1], 1e-300)
    vh = v.conj().transpose(0, 2, 1)
    if s_min == 0:
        bad = w[:, 0] <= SINGULAR_RATIO * top
        if np.any(bad):
            index = int(np.argmin(w[:, 0] / top))
            raise SingularOverlapError(
                f"the overlap S(k) is singular or not positive definite (smallest eigenvalue "
                f"{w[index, 0]:.3g}); s_min > 0 drops its near-dependent directions",
                index,
                float(w[index, 0]),
            )
        x = (v * w[:, None, :] ** -0.5) @ vh
        return x, None, np.zeros(len(sk), dtype=np.int64)
    if np.any(w[:, 0] < -s_min * top):
        index = int(np.argmin(w[:, 0] / top))
        raise SingularOverlapError(
            f"the overlap S(k) is not positive definite (eigenvalue {w[index, 0]:.3g} < "
            f"−s_min·max = {-s_min * top[index]:.3g}): a broken overlap, not a near-dependent "
            f"basis",
            index,
            float(w[index, 0]),
        )
    keep = w > s_min * top[:, None]
    inv_sqrt = np.where(keep, np.where(keep, w, 1.0) ** -0.5, 0.0)
    x = (v * inv_sqrt[:, None, :]) @ vh
    dropped = (v * (~keep)[:, None, :]) @ vh
    return x, dropped, (~keep).sum(axis=1).astype(np.int64)


def apply_transform(x: np.ndarray, hk: np.ndarray, n_spin: int) -> np.ndarray:
    """(X ⊗ σ0) H (X ⊗ σ0) for stacks (nk, n, n) and (nk, N, N), N = n·n_spin."""
    if n_spin == 1:
        return x @ hk @ x
    nk, n = len(hk), hk.shape[-1]
    m = n // 2
    # on the four spin blocks: half the work of 2m×2m products
    blocks = hk.reshape(nk, m, 2, m, 2).transpose(0, 2, 4, 1, 3)
    blocks = x[:, None, None] @ blocks @ x[:, None, None]
    return blocks.transpose(0, 3, 1, 4, 2).reshape(nk, n, n)


def spin_block_product(x: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """(X ⊗ σ0) H (X ⊗ σ0)† (nk, 2m, 2m), interleaved, from H's three independent spin blocks.

    x: (nk, m, m) spinless transform; blocks: (nk, 3, m, m) = (H↑↑, H↑↓, H↓↓) of a Hermitian
    spinor H (H↓↑ = H↑↓†, so its product is not computed: three quarters of the work of all
    four blocks). The lower-left block is exactly the adjoint of the upper-right one; the
    diagonal blocks are Hermitian to round-off (LAPACK's Hermitian solvers read one triangle).
    """
    nk, m = len(x), x.shape[-1]
    t = x[:, None] @ blocks @ x.conj().transpose(0, 2, 1)[:, None]
    out = np.empty((nk, 2 * m, 2 * m), dtype=t.dtype)
    out[:, 0::2, 0::2] = t[:, 0]
    out[:, 0::2, 1::2] = t[:, 1]
    np.conjugate(t[:, 1].transpose(0, 2, 1), out=out[:, 1::2, 0::2])
    out[:, 1::2, 1::2] = t[:, 2]
    return out


def cholesky_spin_blocks(sk: np.ndarray, blocks: np.ndarray) -> np.ndarray | None:
    """L⁻¹ H L⁻† (S = L L†, Cholesky) of a spinor H with overlap S ⊗ σ0, for energies only.

    sk: (nk, m, m) spinless S(k); blocks: (nk, 3, m, m) = (H↑↑, H↑↓, H↓↓). Returns (nk, 2m, 2m)
    in spin-block order (the m ↑ states, then the m ↓ ones) with only its lower triangle right
    (the upper-right block is 0), which is what LAPACK's Hermitian solvers read with UPLO='L'
    (numpy's eigvalsh by default): its eigenvalues are those of H c = E S c, but its
    eigenvectors are in a frame that mixes atoms. Per k-point zhegst on the diagonal blocks and
    two triangular products on the off-diagonal one: half the flops of full products, and no
    eigen-decomposition of S (Bi2Se3 dzp, m = 85: 0.68 vs 1.24 ms per k-point for L⁻¹ and
    products; Löwdin's S^{-1/2} costs 0.8 ms more).

    Refuses the same overlaps as `lowdin_transform` with s_min = 0: λ_max/λ_min ≤ tr S ·
    tr S⁻¹ (tr S⁻¹ = ‖L⁻¹‖_F²), so only where that bound reaches 1/SINGULAR_RATIO are S's
    eigenvalues computed to decide (raising SingularOverlapError). None when Cholesky fails
    although S passes that test (round-off at the limit): use Löwdin then.
    """
    from scipy.linalg.blas import ztrmm
    from scipy.linalg.lapack import zhegst, ztrtri

    try:
        chol = np.linalg.cholesky(sk)
    except np.linalg.LinAlgError:
        lowdin_transform(sk)  # raises for the offending k-point
        return None
    nk, m = sk.shape[0], sk.shape[-1]
    out = np.zeros((nk, 2 * m, 2 * m), dtype=complex)  # the unread upper block stays 0
    trace_inv = np.empty(nk)
    for i in range(nk):
        inv, _ = ztrtri(chol[i], lower=1)
        trace_inv[i] = np.vdot(inv, inv).real
        out[i, :m, :m] = zhegst(blocks[i, 0], chol[i], itype=1, lower=1)[0]
        out[i, m:, m:] = zhegst(blocks[i, 2], chol[i], itype=1, lower=1)[0]
        off = ztrmm(1.0, inv, ztrmm(1.0, inv, blocks[i, 1], lower=1), side=1, lower=1, trans_a=2)
        out[i, m:, :m] = off.conj().T
    bound = np.trace(sk, axis1=1, axis2=2).real * trace_inv
    suspect = np.flatnonzero(bound * SINGULAR_RATIO >= 1.0)
    if len(suspect):
        try:
            lowdin_transform(sk[suspect])
        except SingularOverlapError as exc:
            exc.index = int(suspect[exc.index])
            raise
    return out


def orthonormal_hamiltonian(
    hk: np.ndarray, sk: np.ndarray, n_spin: int, s_min: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(H'(k) (nk, N, N), n_dropped (nk,) int): H in an orthonormal basis, Hermitian.

    hk: (nk, N, N) or (N, N) H(k) in eV; sk: the spinless S(k) (nk, n, n), n = N / n_spin (the
    spinor S ⊗ σ0 is accepted too); n_spin: 1 or 2 (interleaved spinor order); s_min: relative
    threshold of the kept overlap directions (see the module docstring), 0 = exact Löwdin.
    n_dropped counts dropped *states* (directions × n_spin) at each k: the highest n_dropped
    eigenvalues of H' there sit at E_drop and are not bands. Eigenvectors y of H' are in the
    Löwdin frame (`orthonormal_system` also gives X_f, to map them to the original basis).
    Raises SingularOverlapError (a HamiltonianError) for a singular S with s_min = 0.
    """
    hp, _, n_dropped = orthonormal_system(hk, sk, n_spin, s_min)
    return hp, n_dropped


def orthonormal_system(
    hk: np.ndarray, sk: np.ndarray, n_spin: int, s_min: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H'(k), X_f (spinless, (nk, n, n)), n_dropped): `orthonormal_hamiltonian` plus X_f.

    (X_f ⊗ σ0) y are the S-orthonormal coefficients in the original basis of an eigenvector y
    of H' (`to_original_basis`).
    """
    single = np.ndim(hk) == 2
    h = np.asarray(hk)[None] if single else np.asarray(hk)
    s = np.asarray(sk)[None] if single else np.asarray(sk)
    if len(h) != len(s):
        raise HamiltonianError(f"H(k) {h.shape} and S(k) {s.shape}: different k-point counts")
    s = spinless_overlap(s, h.shape[-1], n_spin)
    x, dropped, n_drop = lowdin_transform(s, s_min)
    hp = apply_transform(x, h, n_spin)
    if dropped is not None:
        e_drop = 1.0 + 2.0 * np.sqrt((np.abs(hp) ** 2).sum(axis=(1, 2)))
        shift = e_drop[:, None, None] * dropped
        if n_spin == 1:
            hp = hp + shift
        else:
            hp[:, 0::2, 0::2] += shift
            hp[:, 1::2, 1::2] += shift
    hp = 0.5 * (hp + hp.conj().transpose(0, 2, 1))
    n_states = n_drop * n_spin
    return (hp[0], x[0], n_states[0]) if single else (hp, x, n_states)


def to_original_basis(x: np.ndarray, y: np.ndarray, n_spin: int) -> np.ndarray:
    """(X ⊗ σ0) y: eigenvectors (nk, N, m) of H' as coefficients in the original basis."""
    if n_spin == 1:
        return x @ y
    out = np.empty_like(y)
    out[:, 0::2] = x @ y[:, 0::2]
    out[:, 1::2] = x @ y[:, 1::2]
    return out
