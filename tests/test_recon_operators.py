"""Centred FFT, SENSE operator, CG solvers and MEL gradients (qmriprep.recon.fft/sense/mel/unrolled)."""

import pytest
import torch

from qmriprep.recon.mel import checkpointed, dc_layer
from qmriprep.recon.fft import centred_fft
from qmriprep.recon.sense import SenseOp, cg, cg_sense, dc_solve, zero_filled
from qmriprep.recon.unrolled import ResidualCNN, UnrolledNet


def _crandn(*shape, gen, dtype=torch.complex64):
    return torch.randn(*shape, generator=gen, dtype=dtype)


def _problem(B=2, C=3, N=4, H=10, W=12, dtype=torch.complex64, seed=0, normalise=False):
    """Random maps, 0/1 mask (B, C, H, W), image and k-space."""
    gen = torch.Generator().manual_seed(seed)
    maps = _crandn(B, N, H, W, gen=gen, dtype=dtype)
    if normalise:
        maps = maps / (maps.abs() ** 2).sum(dim=1, keepdim=True).sqrt()
    mask = (torch.rand(B, C, H, W, generator=gen) < 0.5).to(maps.real.dtype)
    x = _crandn(B, C, H, W, gen=gen, dtype=dtype)
    y = _crandn(B, C, N, H, W, gen=gen, dtype=dtype)
    return maps, mask, x, y


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_centred_fft_is_unitary_and_inverted():
    gen = torch.Generator().manual_seed(1)
    x = _crandn(2, 3, 9, 8, gen=gen, dtype=torch.complex128)
    k = centred_fft(x)
    assert torch.allclose(k.norm(), x.norm(), rtol=1e-12)  # Parseval
    assert torch.allclose(centred_fft(k, inverse=True), x, atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (9, 7)])
def test_centred_fft_of_centred_delta_is_flat(shape):
    h, w = shape
    x = torch.zeros(h, w, dtype=torch.complex128)
    x[h // 2, w // 2] = 1.0
    k = centred_fft(x)
    assert torch.allclose(k, torch.full_like(k, 1.0 / (h * w) ** 0.5), atol=1e-12)


def test_sense_adjoint_identity():
    maps, mask, x, y = _problem()
    op = SenseOp(maps, mask)
    lhs = (op.forward(x).conj() * y).sum()
    rhs = (x.conj() * op.adjoint(y)).sum()
    assert abs(lhs - rhs) / abs(lhs) < 1e-5
    assert op.forward(x).shape == (2, 3, 4, 10, 12)
    assert (op.forward(x).abs() * (1 - mask[:, :, None])).max() == 0  # unsampled k-space is 0


def test_sense_with_mask_and_broadcast_mask():
    maps, mask, x, _ = _problem()
    full = SenseOp(maps, mask).with_mask(torch.ones(10, 12))
    assert torch.allclose(full.forward(x), centred_fft(maps[:, None] * x[:, :, None]))
    assert torch.equal(zero_filled(full.forward(x), maps, mask[:1]), SenseOp(maps, mask[:1]).normal(x))


@pytest.mark.parametrize("shape", [(10, 12), (9, 7), (8, 11)])
def test_shift_free_sense_equals_centred_fft_definition(shape):
    """E, E^H and E^H E without fftshift copies equal their definitions with centred_fft."""
    h, w = shape
    maps, mask, x, y = _problem(H=h, W=w, dtype=torch.complex128)
    op, m = SenseOp(maps, mask), mask[:, :, None]
    fwd = m * centred_fft(maps[:, None] * x[:, :, None])
    adj = (maps[:, None].conj() * centred_fft(m * y, inverse=True)).sum(2)
    assert _rel(op.forward(x), fwd) < 1e-12
    assert _rel(op.adjoint(y), adj) < 1e-12
    assert _rel(op.normal(x), (maps[:, None].conj() * centred_fft(fwd, inverse=True)).sum(2)) < 1e-12


def test_cg_solves_hermitian_pd_system():
    gen = torch.Generator().manual_seed(2)
    n = 12
    a = _crandn(n, n, gen=gen, dtype=torch.complex128)
    A = a @ a.conj().T + n * torch.eye(n, dtype=a.dtype)
    b = _crandn(2, 3, n, gen=gen, dtype=torch.complex128)
    x = cg(lambda v: v @ A.T, b, max_iter=100, tol=1e-12)
    assert torch.allclose(x, torch.linalg.solve(A, b.unsqueeze(-1)).squeeze(-1), atol=1e-9)


def test_cg_sense_normal_equations_residual_is_tiny():
    maps, mask, _, y = _problem(dtype=torch.complex128)
    op = SenseOp(maps, mask)
    y = op.mask * y
    x = cg_sense(y, maps, mask, lam=0.1, max_iter=200, tol=1e-10)
    residual = op.normal(x) + 0.1 * x - op.adjoint(y)
    assert residual.norm() < 1e-9 * op.adjoint(y).norm()


def test_cg_all_zero_rhs_stays_zero():
    maps, mask, _, _ = _problem()
    op = SenseOp(maps, mask)
    b = torch.zeros(2, 3, 10, 12, dtype=torch.complex64)
    b[0, 1] = 1.0  # one non-zero system among zero ones
    x = cg(op.normal, b, max_iter=5, tol=0.0)
    assert torch.isfinite(torch.view_as_real(x)).all()
    assert torch.count_nonzero(x[1]) == 0 and torch.count_nonzero(x[0, 0]) == 0
    assert torch.count_nonzero(cg(op.normal, torch.zeros_like(b), max_iter=5, tol=1e-6)) == 0


def test_cg_sense_full_mask_recovers_image():
    maps, _, x, _ = _problem(normalise=True)
    ones = torch.ones(1, 1, 10, 12)
    y = SenseOp(maps, ones).forward(x)
    assert _rel(cg_sense(y, maps, ones, max_iter=5), x) < 1e-5


def test_dc_solve_is_the_regularised_least_squares_solution():
    maps, mask, x_true, _ = _problem(dtype=torch.complex128, seed=3)
    op = SenseOp(maps, mask)
    y = op.forward(x_true)
    z = torch.zeros_like(x_true)
    mu = 0.05
    x = dc_solve(op, op.adjoint(y), z, mu, max_iter=300, tol=1e-12)
    # stationarity of ||E x - y||^2 + mu ||x - z||^2
    grad = op.adjoint(op.forward(x) - y) + mu * (x - z)
    assert grad.norm() < 1e-9 * op.adjoint(y).norm()


def test_residual_cnn_shape_dtype_and_residual():
    cnn = ResidualCNN(2, features=4, blocks=1)
    torch.nn.init.zeros_(cnn.net[-1].weight)
    x = _crandn(1, 2, 6, 5, gen=torch.Generator().manual_seed(4))
    assert torch.equal(cnn(x), x)  # zero last layer: identity
    torch.nn.init.normal_(cnn.net[-1].weight)
    out = cnn(x)
    assert out.shape == x.shape and out.dtype == x.dtype and not torch.allclose(out, x)


def _mel_case():
    maps, mask, x, _ = _problem(B=1, C=2, N=3, H=12, W=12, dtype=torch.complex128,
                                seed=5, normalise=True)
    op = SenseOp(maps, mask)
    return op.forward(x), maps, mask, x


def _grads(model, y, maps, mask, target):
    model.zero_grad()
    out = model(y, maps, mask)
    loss = torch.view_as_real(out - target).pow(2).sum()
    loss.backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_mel_gradients_equal_plain_backprop():
    torch.manual_seed(6)
    model = UnrolledNet(2, n_unrolls=3, cg_iter=60, features=8, blocks=2, cg_tol=1e-12).double()
    y, maps, mask, target = _mel_case()
    out_plain, g_plain = _grads(model, y, maps, mask, target)
    model.mel = True
    out_mel, g_mel = _grads(model, y, maps, mask, target)
    assert _rel(out_mel, out_plain) < 1e-10
    assert set(g_mel) == set(g_plain) and "mu_raw" in g_mel
    for name in g_plain:
        assert g_plain[name].norm() > 0
        assert _rel(g_mel[name], g_plain[name]) < 1e-4, name
    assert UnrolledNet(**model.hparams).hparams == {**model.hparams}


def test_dc_layer_implicit_gradients_match_autograd():
    maps, mask, _, y = _problem(B=1, C=2, N=3, H=8, W=8, dtype=torch.complex128, seed=7)
    op = SenseOp(maps, mask)
    gen = torch.Generator().manual_seed(8)
    rhs0, z0 = op.adjoint(y), _crandn(1, 2, 8, 8, gen=gen, dtype=torch.complex128)
    w = _crandn(1, 2, 8, 8, gen=gen, dtype=torch.complex128)
    grads = []
    for implicit in (False, True):
        rhs, z = rhs0.clone().requires_grad_(), z0.clone().requires_grad_()
        mu = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
        x = dc_layer(op, rhs, z, mu, max_iter=200, tol=1e-13, implicit=implicit)
        (w.conj() * x).real.sum().backward()
        grads.append((rhs.grad, z.grad, mu.grad))
    for plain, implicit in zip(*grads):
        assert _rel(implicit, plain) < 1e-8


def test_checkpointed_matches_direct_call():
    cnn = ResidualCNN(1, features=4, blocks=1).double()
    x = _crandn(1, 1, 6, 6, gen=torch.Generator().manual_seed(9), dtype=torch.complex128)
    x.requires_grad_()
    checkpointed(cnn, x).abs().sum().backward()
    g_ckpt = x.grad.clone()
    x.grad = None
    cnn(x).abs().sum().backward()
    assert torch.allclose(g_ckpt, x.grad, atol=1e-12)


def test_mu_is_positive_initialised_exactly_and_never_loses_its_gradient():
    model = UnrolledNet(1, n_unrolls=1, cg_iter=2, features=4, blocks=1, mu_init=0.05)
    assert float(model.mu) == pytest.approx(0.05, rel=1e-6)
    with torch.no_grad():
        model.mu_raw.fill_(-30.0)  # what a clamp would have frozen at its bound
    assert float(model.mu) > 0
    model.mu.backward()
    assert float(model.mu_raw.grad) > 0
