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
