"""Gradient flow (`optimizer='flow'`) as the limit of GD, its loss_tol event, its max-steps flag,
its refusals, and its agreement across engines (small sizes of the `theory_regime` setting)."""

from __future__ import annotations

import numpy as np
import pytest

import jaxprune
from jaxprune import Config, Params

# The theory_regime setting at a small size: eta sigma^2 d = 1, sigma_0 sigma sqrt(d) = 0.1.
DIM = 400
SMALL = Config(dim=DIM, width=5, n_train=8, n_test=100, steps=600, log_every=100, engine="gram")
POINT = Params(prune_frac=0.5, mu_norm=6.0, sigma_init=0.1 / np.sqrt(DIM), lr=1.0 / DIM)


def gd_at(halvings: int, config: Config = SMALL, params: Params = POINT, seed: int = 0):
    """The GD run at lr / 2^halvings, logged at the same times as `config`'s."""
    scale = 2**halvings
    config = config.replace(steps=config.steps * scale, log_every=config.log_every * scale)
    return jaxprune.train(config, params.replace(lr=params.lr / scale), seed)


def relative_gap(gd, flow) -> float:
    np.testing.assert_allclose(gd.time, flow.time, rtol=1e-12)
    return float(np.max(np.abs(gd.train_loss - flow.train_loss) / flow.train_loss))


@pytest.mark.slow
def test_flow_is_the_limit_of_gd():
    """At every logged time GD's training loss is within 1% of flow's, and the gap falls about
    in proportion to lr (halved twice: each ratio between 1.5 and 2.5)."""
    flow = jaxprune.train(SMALL.replace(optimizer="flow"), POINT, 0)
    assert not flow.solver_failed.any()
    np.testing.assert_allclose(flow.time, POINT.lr * flow.step)
    gaps = [relative_gap(gd_at(h), flow) for h in range(3)]
    assert gaps[0] < 0.01
    assert 1.5 < gaps[0] / gaps[1] < 2.5 and 1.5 < gaps[1] / gaps[2] < 2.5, gaps


@pytest.mark.slow
def test_loss_tol_ends_a_flow_run_at_its_event_time():
    """The run freezes where its loss equals loss_tol (root found); converged_step is the
    GD-equivalent step ceil(t* / lr); the unstopped flow crosses loss_tol at the same time."""
    config = SMALL.replace(optimizer="flow", steps=1200, log_every=100)
    free = jaxprune.train(config, POINT, 0)
    # Reached strictly between steps 300 and 400 (the geometric mean of the losses logged
    # there): a tol equal to a logged loss would put the event at a log, where the root finder
    # may land on either side of it.
    tol = float(np.sqrt(free.train_loss.iloc[3] * free.train_loss.iloc[4]))
    frame, state = jaxprune.train(config.replace(loss_tol=tol), POINT, 0, return_state=True)
    time = float(frame.converged_time.iloc[-1])
    step = int(frame.converged_step.iloc[-1])
    assert 300 * POINT.lr < time <= 400 * POINT.lr and step == int(np.ceil(time / POINT.lr))
    assert int(state.converged_step) == step
    after = frame[frame.step >= step]
    np.testing.assert_allclose(after.train_loss, tol, rtol=1e-4)  # frozen at the event
    before = frame[frame.time < time]
    np.testing.assert_array_equal(before.converged_step, -1)
    assert (before.train_loss > tol).all() and before.converged_time.isna().all()
    # The unstopped flow, restarted at the last log before t*, reaches tol at the same time:
    # its loss at the logs brackets tol around the event.
    assert free.train_loss[free.time < time].min() > tol >= free.train_loss[free.time > time].max()


@pytest.mark.slow  # compiles a flow and a GD run (about 16 s)
def test_a_run_the_solver_cannot_finish_is_flagged():
    config = SMALL.replace(optimizer="flow", steps=200, log_every=100, flow_max_steps=2)
    frame = jaxprune.train(config, POINT, 0)
    np.testing.assert_array_equal(frame.solver_failed, [False, True, True])
    np.testing.assert_array_equal(frame.converged_step, -1)
    assert frame.train_loss.iloc[1] == frame.train_loss.iloc[2]  # frozen where it stopped
    assert frame.train_loss.iloc[1] < frame.train_loss.iloc[0]  # after 2 solver steps
    gd = jaxprune.train(config.replace(optimizer="gd"), POINT, 0)
    assert not gd.solver_failed.any() and gd.converged_time.isna().all()


@pytest.mark.slow
def test_dense_and_gram_flow_agree_and_pruned_weights_stay_zero():
    config = SMALL.replace(optimizer="flow", dim=60, steps=300, n_test=50)
    params = POINT.replace(sigma_init=0.1 / np.sqrt(60), lr=1.0 / 60, prune_frac=0.6)
    runs = {
        name: jaxprune.train(config.replace(engine=name), params, 1, return_state=True)
        for name in ("dense", "gram")
    }
    (dense, dense_state), (gram, gram_state) = runs["dense"], runs["gram"]
    np.testing.assert_allclose(dense.train_loss, gram.train_loss, rtol=2e-3)
    np.testing.assert_allclose(dense_state.weights, gram_state.weights, rtol=0, atol=2e-3)
    for state in (dense_state, gram_state):
        weights, mask = np.asarray(state.weights), np.asarray(state.mask)
        assert 0.3 < (mask == 0).mean() < 0.9
        assert (weights[mask == 0] == 0).all()  # exactly
    assert (np.asarray(dense_state.weights)[np.asarray(dense_state.mask) == 1] != 0).all()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (dict(optimizer="flow", batch_size=4), "batch_size"),
        (dict(optimizer="flow", flow_rtol=0.0), "flow_rtol"),
        (dict(optimizer="flow", flow_rtol=-1e-6), "flow_rtol"),
        (dict(optimizer="flow", flow_atol=0.0), "flow_atol"),
        (dict(optimizer="flow", flow_atol=float("nan")), "flow_atol"),
        (dict(optimizer="flow", flow_max_steps=0), "flow_max_steps"),
    ],
)
def test_meaningless_flow_configs_are_refused(changes, field):
    with pytest.raises(ValueError, match=f"^Config.{field} = .*") as error:
        SMALL.replace(**changes)
    assert "\n" not in str(error.value)


def test_gd_frames_get_time_and_flow_keeps_gd_step_columns(tiny, tiny_params):
    frame = jaxprune.train(tiny.replace(loss_tol=0.3), tiny_params, 0)
    np.testing.assert_allclose(frame.time, tiny_params.lr * frame.step)
    last = frame.iloc[-1]
    if last.converged_step >= 0:
        assert last.converged_time == pytest.approx(tiny_params.lr * last.converged_step)
    # The engine cost model prices flow by its gradient evaluations: 6 per solver step, the
    # steps growing like 1 / flow_rtol.
    flow = SMALL.replace(optimizer="flow", steps=10**4, log_every=10**4, flow_max_steps=10**6)
    steps = jaxprune.optimizers.flow_solver_steps(flow)
    assert steps == pytest.approx(jaxprune.optimizers.FLOW_SOLVER_STEPS_PER_STEP * 10**4 + 4)
    assert jaxprune.optimizers.flow_solver_steps(flow.replace(flow_rtol=1e-6)) > 9 * steps
    assert jaxprune.optimizers.flow_solver_steps(flow.replace(flow_max_steps=100)) == 100
    evaluations = int(jaxprune.optimizers.FLOW_EVALUATIONS_PER_STEP * steps)  # as many GD steps
    gd = flow.replace(optimizer="gd", steps=evaluations, log_every=evaluations)
    gd = jaxprune.engines.costs(gd)["gram"]
    assert jaxprune.engines.costs(flow)["gram"].flops == pytest.approx(gd.flops)
