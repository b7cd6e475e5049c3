"""bnlab.schedules: CLR equals PyTorch's CyclicLR, range test, the lr_min/lr_max pick, batch growth, accumulation."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch import nn

from bnlab.schedules import (
    accumulation,
    batch_size_schedule,
    chosen_bounds,
    clr,
    ema_smooth,
    pick_lr_bounds,
    range_test_grid,
    range_test_lr,
    step_decay,
)

# ---- cyclical learning rates ------------------------------------------------


@pytest.mark.parametrize(
    "mode, gamma, step",
    [("triangular", 1.0, 7), ("triangular2", 1.0, 5), ("exp_range", 0.97, 6), ("exp_range", 0.99994, 2000)],
)
def test_clr_matches_torch_cyclic_lr(mode, gamma, step):
    base, peak = 1e-5, 1e-2
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=base)
    # CyclicLR's defaults already match Smith 2015's policies: step_size_down = step_size_up,
    # scale_mode "cycle" for triangular2 and "iterations" for exp_range (gamma**it).
    # cycle_momentum off: it would also cycle SGD's momentum, which clr does not do.
    sched = torch.optim.lr_scheduler.CyclicLR(opt, base_lr=base, max_lr=peak, step_size_up=step,
                                              mode=mode, gamma=gamma, cycle_momentum=False)
    # The lr set at construction is iteration 0; each .step() moves to the next.
    n = 5 * 2 * step if step < 100 else 3 * 2 * step + 3  # several cycles (and a partial one)
    for it in range(n):
        assert clr(it, base, peak, step, mode, gamma) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-15)
        opt.step()
        sched.step()


def test_clr_hand_values():
    f = lambda it, mode="triangular", gamma=1.0: clr(it, 0.1, 1.0, 4, mode, gamma)  # noqa: E731
    # triangular: base at 0, 8, 16; peak at 4, 12; halfway at 2 and 6
    assert [f(it) for it in (0, 2, 4, 6, 8, 12, 16)] == pytest.approx([0.1, 0.55, 1.0, 0.55, 0.1, 1.0, 0.1])
    # triangular2: the second peak (it 12, cycle 2) has half, the third (it 20) a quarter of the amplitude
    assert [f(it, "triangular2") for it in (4, 12, 20)] == pytest.approx([1.0, 0.55, 0.325])
    # exp_range: amplitude * gamma^it, 0.9 * 0.5^4 at it 4
    assert f(4, "exp_range", 0.5) == pytest.approx(0.1 + 0.9 * 0.0625)
    with pytest.raises(ValueError, match="triangular, triangular2, exp_range"):
        clr(0, 0.1, 1.0, 4, "cosine")


def test_step_decay():
    assert [step_decay(it, 0.1, 10, 10) for it in (0, 9, 10, 25)] == pytest.approx([0.1, 0.1, 0.01, 0.001])


# ---- LR range test ----------------------------------------------------------


def test_range_test_sweep_monotone_with_exact_endpoints():
    lrs = [range_test_lr(it, 500) for it in range(500)]
    assert lrs[0] == 1e-9 and lrs[-1] == 10.0
    assert all(b > a for a, b in zip(lrs, lrs[1:]))
    ratios = [b / a for a, b in zip(lrs, lrs[1:])]  # exponential: a constant ratio
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-9)
    assert range_test_lr(1, 3, 1e-4, 1e-2) == pytest.approx(1e-3)
    with pytest.raises(ValueError):
        range_test_lr(500, 500)


def test_range_test_grid():
    grid = range_test_grid()
    assert len(grid) == 10 and grid[0] == 1e-9 and grid[-1] == 10.0
    for a, b in zip(grid, grid[1:]):
        assert b / a == pytest.approx(10 ** (10 / 9))


def test_ema_smooth_bias_corrected():
    assert ema_smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])  # no pull towards 0
    assert ema_smooth([1.0, 3.0], 0.0) == [1.0, 3.0]


def synthetic_loss(lr: float) -> float:
    """Flat at 2.3 below 1e-5, linear in log10(lr) down to 0.3 at 1e-2, then a parabola up; NaN from 1."""
    x = math.log10(lr)
    if x >= 0:
        return math.nan
    if x <= -5:
        return 2.3
    if x <= -2:
        return 2.3 - 2.0 * (x + 5) / 3
    return 0.3 + 5.0 * (x + 2) ** 2  # exceeds 4 * 2.3 at x = -2 + sqrt(8.9 / 5) = -0.67


def test_pick_on_noise_free_sweep():
    n = 1001  # 100 points a decade: 1e-5, 1e-2 and 10^-4.7 are grid points
    lrs = [range_test_lr(i, n) for i in range(n)]
    out = pick_lr_bounds(lrs, [synthetic_loss(lr) for lr in lrs], smooth=0.0, safety=3.0)
    assert out["lr_at_min"] == pytest.approx(1e-2)
    assert out["lr_max"] == pytest.approx(1e-2 / 3)
    # fallen by 10% of 2.0 = 0.2: 0.3 decade into the fall, at 10^-4.7, a tie that
    # round-off may settle on that grid point or the next (0.01 decade on)
    assert 10 ** -4.7 * (1 - 1e-9) <= out["lr_min"] <= 10 ** -4.69 * (1 + 1e-9)
    assert out["lr_blowup"] == pytest.approx(10 ** -0.66)  # first point with loss > 9.2
    assert "lr_max = lr at the smoothed-loss minimum" in out["rule"]


def test_pick_on_noisy_sweep_with_default_smoothing():
    rng = random.Random(0)
    n = 2000
    lrs = [range_test_lr(i, n) for i in range(n)]
    losses = [synthetic_loss(lr) + rng.gauss(0.0, 0.1) for lr in lrs]
    out = pick_lr_bounds(lrs, losses)  # auto smoothing: 40-point span on 2000 points
    # The EMA lags by ~20 points = 0.1 decade; the noise moves the picks a little more
    # (over 50 seeds: minimum at 10^-2.0..10^-1.85, lr_min 10^-4.68..10^-4.53).
    assert 10 ** -2.2 < out["lr_at_min"] < 10 ** -1.7
    assert out["lr_max"] == pytest.approx(out["lr_at_min"] / 3)
    assert 10 ** -4.9 < out["lr_min"] < 10 ** -4.3
    assert 10 ** -0.8 < out["lr_blowup"] <= 1.0
    assert len(out["smoothed"]) == n and math.isnan(out["smoothed"][-1])


def test_pick_on_the_ten_point_grid():
    grid = range_test_grid()  # 10^-9, 10^-7.9, ..., 10^-1.2 = 0.06, 10^-0.1 = 0.77, 10
    losses = [2.30, 2.30, 2.30, 2.29, 1.90, 0.80, 0.35, 0.30, 1.50, math.nan]
    out = pick_lr_bounds(grid, losses)  # 10 points: no smoothing
    assert out["lr_at_min"] == grid[7]
    assert out["lr_max"] == pytest.approx(grid[7] / 3)
    assert out["lr_min"] == grid[4]  # first at or below 2.30 - 0.1 * (2.30 - 0.30) = 2.10
    assert out["lr_blowup"] == grid[9]


def test_pick_lr_min_ignores_a_dip_on_the_plateau():
    grid = range_test_grid()
    # A lucky low loss at 1.3e-8 is not where the loss starts falling: the search
    # goes back from the minimum to the last point still near the start.
    losses = [2.30, 2.05, 2.30, 2.29, 1.90, 0.80, 0.35, 0.30, 1.50, math.nan]
    assert pick_lr_bounds(grid, losses)["lr_min"] == grid[4]


def test_pick_ignores_everything_after_a_blow_up():
    grid = range_test_grid()
    # A diverged net can come back to a low loss; the cut at the first NaN ignores it.
    losses = [2.3, 2.3, 2.3, 2.0, 1.0, 0.5, math.inf, 0.1, 0.05, 0.01]
    out = pick_lr_bounds(grid, losses)
    assert out["lr_at_min"] == grid[5] and out["lr_blowup"] == grid[6]
    # the same for a finite explosion above 4x the start
    losses[6] = 50.0
    assert pick_lr_bounds(grid, losses)["lr_at_min"] == grid[5]


def test_pick_fallback_and_failures():
    grid = range_test_grid()
    # Falls only at the minimum itself: lr_min would be above lr_max / 3, so lr_max / 10.
    out = pick_lr_bounds(grid, [2.3] * 6 + [0.5, 5.0, math.nan, math.nan])
    assert out["lr_max"] == pytest.approx(grid[6] / 3)
    assert out["lr_min"] == pytest.approx(out["lr_max"] / 10)
    assert "lr_min = lr_max / 10" in out["rule"]
    with pytest.raises(ValueError, match="never falls"):
        pick_lr_bounds(grid, [2.3 + 0.1 * i for i in range(10)])
    with pytest.raises(ValueError, match="increasing"):
        pick_lr_bounds(grid[::-1], [2.3] * 10)


def test_chosen_bounds_prefers_the_sweep_then_the_grid():
    import pandas as pd

    columns = ["curve", "lr_min", "lr_max", "error"]
    both = pd.DataFrame([["grid", 1e-3, 1e-2, ""], ["sweep", 2e-3, 3e-2, ""]], columns=columns)
    assert chosen_bounds(both, "rt") == {"lr_min": 2e-3, "lr_max": 3e-2, "curve": "sweep"}
    grid_only = pd.DataFrame([["grid", 1e-3, 1e-2, ""], ["sweep", math.nan, math.nan, "never falls"]],
                             columns=columns)
    assert chosen_bounds(grid_only, "rt") == {"lr_min": 1e-3, "lr_max": 1e-2, "curve": "grid"}
    none = pd.DataFrame([["sweep", math.nan, math.nan, "the loss never falls"]], columns=columns)
    with pytest.raises(ValueError, match=r"'rt' picked no lr_min/lr_max \(sweep: the loss never falls\).*pick-rt"):
        chosen_bounds(none, "rt")


# ---- batch-size growth and accumulation -------------------------------------


def test_batch_size_schedule_doubles_and_caps():
    assert [batch_size_schedule(k * 100, every=100) for k in range(11)] == [32 * 2**k for k in range(10)] + [16384]
    assert batch_size_schedule(99, every=100) == 32 and batch_size_schedule(100, every=100) == 64
    assert batch_size_schedule(10**6, every=100) == 16384
    assert [batch_size_schedule(s, 32, 100, every=1) for s in range(4)] == [32, 64, 100, 100]


def test_accumulation_splits():
    assert accumulation(64, 1024) == (64, 1)
    assert accumulation(16384, 1024) == (1024, 16)
    assert accumulation(4096, 1000) == (512, 8)  # power-of-two batch: the largest power of two <= cap
    assert accumulation(96, 64) == (48, 2)  # otherwise the largest divisor <= cap
    for batch in (32 * 2**k for k in range(10)):
        micro, n = accumulation(batch, 512)
        assert micro * n == batch and micro <= 512


def _grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor, max_micro: int) -> list[torch.Tensor]:
    model.zero_grad()
    micro, n = accumulation(len(x), max_micro)
    for i in range(n):
        sl = slice(i * micro, (i + 1) * micro)
        # each micro-batch's mean loss / n_micro: the sum is the full batch's mean loss
        (nn.functional.cross_entropy(model(x[sl]), y[sl]) / n).backward()
    return [p.grad.clone() for p in model.parameters()]


def test_accumulated_gradient_equals_full_batch():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    full = _grads(model, x, y, 64)
    accumulated = _grads(model, x, y, 16)  # 4 micro-batches of 16
    for a, b in zip(accumulated, full):
        assert torch.allclose(a, b, atol=1e-6, rtol=0)


def test_accumulation_is_not_equivalent_with_bn():
    # Documented caveat: BN normalises each micro-batch with its own statistics.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    full = _grads(model, x, y, 64)
    accumulated = _grads(model, x, y, 16)
    assert not torch.allclose(accumulated[0], full[0], atol=1e-4)
