"""The update-cost benchmark runs end to end and prints every row it promises (no timing is asserted)."""

from sb3_dsdpg.tools import update_cost


def test_update_cost_prints_every_algorithm_and_ratio(capsys):
    results = update_cost.main(
        ["--preset", "quickstart", "--steps", "1", "--rounds", "1", "--dsdpg-kwargs", '{"sobolev_directions": 1}']
    )
    out = capsys.readouterr().out
    assert set(results["Pendulum-v1"]) == {"TD3", "TQC", "DSDPG", "DSDPG directions=None"}
    assert all(value > 0 for value in results["Pendulum-v1"].values())
    assert "batch 128" in out and "sobolev_directions=1" in out
    assert out.count("TQC") >= 3  # its own row and the ratio of both DSDPG rows


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
