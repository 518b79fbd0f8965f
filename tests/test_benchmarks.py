"""The update-cost benchmark runs end to end and prints every row it promises (no timing is asserted)."""

import os

import torch as th

from sb3_dsdpg.tools import machine, update_cost


def test_update_cost_prints_every_algorithm_and_ratio_and_the_floor(capsys):
    argv = ["--preset", "quickstart", "--steps", "1", "--rounds", "1", "--floor"]
    results = update_cost.main([*argv, "--dsdpg-kwargs", '{"sobolev_directions": 1}'])
    out = capsys.readouterr().out
    names = {"TD3", "TQC", "DSDPG", "DSDPG directions=None"}
    assert set(results["Pendulum-v1"]) == names | {f"{name} batch 8" for name in names}
    assert all(value > 0 for value in results["Pendulum-v1"].values())
    assert "batch 128" in out and "sobolev_directions=1" in out
    assert machine.cpu_description() in out.splitlines()[1]  # the CPU, which moves the ratio to TQC
    assert out.count("TQC") >= 3  # its own row and the ratio of both DSDPG rows
    assert out.count("ops/step") == 4 and out.count("us/op") == 4  # --floor: one row per algorithm


def test_cpu_description_names_the_model_the_kernels_and_the_cores():
    described = machine.cpu_description()
    assert described.startswith("CPU ") and "unknown" not in described
    assert th.backends.cpu.get_cpu_capability() in described and f"{os.cpu_count()} cores" in described


def test_dsdpg_policy_kwargs_merge_into_the_presets():
    models = update_cost.build_models(
        "Pendulum-v1",
        16,
        {"policy_kwargs": {"share_critic_noise": True}},
        common_kwargs={"policy_kwargs": {"net_arch": [8, 8]}},
    )
    dsdpg = models["DSDPG"].policy
    assert dsdpg.critic.share_noise and dsdpg.net_arch == [8, 8]
    assert models["TQC"].policy.net_arch == [8, 8]  # the preset's sizes for every algorithm


def test_count_operations_orders_the_algorithms_by_their_work():
    small_model = {"encoder_arch": [8], "decoder_arch": [8], "prior_arch": [8]}
    dsdpg_kwargs = {"world_model_warmup_steps": 0, "world_model_kwargs": small_model}
    models = update_cost.build_models("Pendulum-v1", 16, dsdpg_kwargs, common_kwargs={"policy_kwargs": {"net_arch": [8, 8]}})
    counts = {name: update_cost.count_operations(model, 8, steps=2) for name, model in models.items()}
    # TD3 updates its actor every second step, so two steps hold one actor update; DSDPG adds a world model, targets
    # through it and a sample distance to TD3's work.
    assert 100 < counts["TD3"] < counts["TQC"] < counts["DSDPG"]
