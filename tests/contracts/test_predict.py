"""SB3's predict contracts (in the style of SB3's tests/test_predict.py) for every registered algorithm:
deterministic predictions repeat, one unbatched observation and a batch work, a wrong shape raises SB3's
ValueError; recurrent algorithms (SLAC, Dreamer) keep a state and read ``episode_start=None`` as "no starts"."""

from __future__ import annotations

import numpy as np
import pytest
from cases import our_cases

CASES = our_cases()


@pytest.fixture(scope="module")
def trained() -> dict:
    return {}


def get(name: str, trained: dict):
    if name not in trained:
        case = CASES[name]
        model = case.make()
        model.learn(case.steps)
        trained[name] = model
    return trained[name]


@pytest.mark.parametrize("name", CASES)
def test_predict_shapes_determinism_and_wrong_shapes(name: str, trained: dict) -> None:
    model = get(name, trained)
    env = CASES[name].env(n_envs=2)
    obs = env.reset()
    shape = model.action_space.shape

    first, _ = model.predict(obs, deterministic=True)
    again, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(first, again)  # deterministic is deterministic
    assert first.shape == (2, *shape)
    one, _ = model.predict(obs[0], deterministic=True)  # one unbatched observation
    assert one.shape == shape
    np.testing.assert_allclose(one, first[0], atol=1e-5)  # batched maths may differ in the last bit
    assert model.action_space.contains(model.predict(obs[0])[0].astype(model.action_space.dtype))

    with pytest.raises(ValueError, match="Unexpected observation shape"):
        model.predict(obs[0, :, :-2])
    with pytest.raises(ValueError):  # SB3's message here: "axes don't match array"
        model.predict(obs[:, None])


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.recurrent])
def test_recurrent_state_and_episode_start_none(name: str, trained: dict) -> None:
    model = get(name, trained)
    env = CASES[name].env(n_envs=2)
    o1 = env.reset()
    o2, *_ = env.step(np.stack([model.action_space.sample() for _ in range(2)]))
    _, state = model.predict(o1, deterministic=True)
    assert state is not None and all(len(s) == 2 for s in state)
    none, s_none = model.predict(o2, state, episode_start=None, deterministic=True)
    no, s_no = model.predict(o2, state, episode_start=np.zeros(2, bool), deterministic=True)
    np.testing.assert_array_equal(none, no)  # None: no env starts an episode (sb3-contrib's convention)
    for x, y in zip(s_none, s_no, strict=True):
        np.testing.assert_array_equal(x, y)
    fresh, _s_fresh = model.predict(o2, None, deterministic=True)
    yes, s_yes = model.predict(o2, state, episode_start=np.ones(2, bool), deterministic=True)
    np.testing.assert_array_equal(fresh, yes)  # a start restarts the state
    assert any(not np.array_equal(x, y) for x, y in zip(s_yes, s_no, strict=True))
    # deterministic with a state: repeatable
    np.testing.assert_array_equal(model.predict(o2, state, deterministic=True)[0], none)
