import time, numpy as np, torch
torch.set_num_threads(1)
from sb3_latent import Rainbow, make_moving_dot_env
from stable_baselines3.common.evaluation import evaluate_policy
for n_steps, steps in [(3, 1500)]:
    env = make_moving_dot_env(n_envs=1, frame_stack=3, seed=0, size=20, action_type="discrete", episode_length=50)
    m = Rainbow("CnnPolicy", env, preset="der", buffer_size=5000, learning_starts=200, batch_size=32, n_steps=n_steps,
                target_update_interval=100, hidden=64, learning_rate=1e-3, v_min=-5, v_max=5, seed=0,
                policy_kwargs=dict(features_extractor_kwargs=dict(arch=[(16,3,2),(16,3,2)])))
    eval_env = make_moving_dot_env(n_envs=1, frame_stack=3, seed=100, size=20, action_type="discrete", episode_length=50)
    print("before", evaluate_policy(m, eval_env, 10))
    t=time.time(); m.learn(steps); print(n_steps, steps, time.time()-t)
    print("after", evaluate_policy(m, eval_env, 10))
