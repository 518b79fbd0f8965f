"""Tests of the rl-zoo3 integration: ``sb3_dsdpg.tools.zoo`` and ``python -m sb3_dsdpg.train|enjoy|record_video``.

The entry points run as subprocesses in a temporary folder (one torch thread, a few hundred steps, small networks
through ``-params``; those tests are marked ``subprocess`` and run with ``-m subprocess``); the checks of bad input
and of the shipped YAML files run in-process. Needs the ``zoo`` extra.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th
import yaml

pytest.importorskip("rl_zoo3", reason="the zoo extra is not installed: pip install -e '.[zoo]'")
pytest.importorskip("optuna", reason="the zoo extra is not installed: pip install -e '.[zoo]'")

import optuna
from rl_zoo3 import ALGOS
from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
from sb3_contrib import TQC
from stable_baselines3 import TD3
from stable_baselines3.common.noise import NormalActionNoise

from sb3_dsdpg import DSDPG
from sb3_dsdpg import train as train_module
from sb3_dsdpg.tools import zoo

ENV_ID = "sb3_dsdpg/Pendulum-DynNoise-v1"
ENV_NAME = "sb3_dsdpg-Pendulum-DynNoise-v1"  # the zoo's folder and file name of that ID
WORLD_MODEL_32 = "world_model_kwargs:dict(encoder_arch=[32], decoder_arch=[32], prior_arch=[32])"
SMALL_DSDPG = [
    "learning_starts:100",
    "batch_size:32",
    "n_samples:4",
    "n_slice_candidates:2",
    "n_slice_steps:1",
    "policy_kwargs:dict(net_arch=[32])",
    WORLD_MODEL_32,
]
BASES = ["Ant", "HalfCheetah", "Hopper", "Walker2d", "Humanoid", "InvertedDoublePendulum"]
REQUIRED_IDS = [
    "Pendulum-v1",
    "sb3_dsdpg/Pendulum-ObsNoise-v1",
    "sb3_dsdpg/Pendulum-DynNoise-v1",
    *[f"{base}-v5" for base in BASES],
    *[f"sb3_dsdpg/{base}-{kind}-v5" for base in BASES for kind in ("ObsNoise", "DynNoise")],
    "sb3_dsdpg/PointMassBonus-v0",
]


def run(module: str, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m module args`` in ``cwd`` with one thread; fail with its output unless it succeeds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"python -m {module} {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def train(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run("sb3_dsdpg.train", "--num-threads", "1", *args, cwd=cwd, check=check)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="module")
def dsdpg_run(workdir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """One DSDPG training through the entry point, with every flag the issue lists."""
    proc = train(
        "--algo", "dsdpg", "--env", ENV_ID, "-n", "300", "-f", "logs", "--seed", "3",
        "--eval-freq", "150", "--eval-episodes", "2", "--n-eval-envs", "2", "-tb", "tb", "--save-freq", "150",
        "--save-replay-buffer", "--progress", "-params", *SMALL_DSDPG, "noise_type:'normal'", "noise_std:0.1",
        cwd=workdir,
    )  # fmt: skip
    return workdir / "logs" / "dsdpg" / f"{ENV_NAME}_1", proc


def test_register_adds_dsdpg_to_the_zoo_tables_in_place():
    zoo.register()
    assert ALGOS["dsdpg"] is DSDPG
    assert HYPERPARAMS_SAMPLER["dsdpg"] is zoo.sample_dsdpg_params
    assert HYPERPARAMS_CONVERTER["dsdpg"] is zoo.convert_dsdpg_params
    import rl_zoo3.exp_manager

    assert rl_zoo3.exp_manager.ALGOS is ALGOS and rl_zoo3.exp_manager.HYPERPARAMS_SAMPLER is HYPERPARAMS_SAMPLER
    zoo.register(playback=True)
    assert ALGOS["dsdpg"] is zoo.OneSlotBufferDSDPG
    zoo.register()


@pytest.mark.subprocess
def test_train_dsdpg_writes_the_zoo_layout(dsdpg_run):
    run_dir, proc = dsdpg_run
    output = proc.stdout + proc.stderr
    assert f"Loading hyperparameters from: {zoo.HYPERPARAMS_DIR / 'dsdpg.yml'}" in output
    assert "300/300" in output  # --progress
    for name in (f"{ENV_NAME}.zip", "best_model.zip", "rl_model_150_steps.zip", "rl_model_300_steps.zip", "replay_buffer.pkl"):
        assert (run_dir / name).is_file(), name
    evaluations = np.load(run_dir / "evaluations.npz")
    assert list(evaluations["timesteps"]) == [150, 300]
    config = yaml.load((run_dir / ENV_NAME / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    # -params over the entry (which explores without noise); the rest is the tuned entry's (gamma 0.998, 2 draws)
    assert config["n_samples"] == 4 and config["learning_starts"] == 100 and config["gamma"] == 0.998
    assert config["noise_type"] == "normal" and config["n_target_model_draws"] == 2
    args = yaml.load((run_dir / ENV_NAME / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert args["seed"] == 3 and args["n_eval_envs"] == 2 and args["algo"] == "dsdpg"
    assert list((run_dir.parents[2] / "tb" / ENV_NAME).glob("DSDPG_1/events.out.tfevents.*"))


@pytest.mark.subprocess
def test_saved_dsdpg_model_loads(dsdpg_run):
    run_dir, _ = dsdpg_run
    model = DSDPG.load(run_dir / f"{ENV_NAME}.zip", device="cpu")
    assert type(model) is DSDPG
    assert model.num_timesteps == 300
    assert model.n_samples == 4 and model.learning_starts == 100 and model.batch_size == 32
    assert model.policy_kwargs["net_arch"] == [32]
    assert model.world_model is not None and model.world_model_kwargs["encoder_arch"] == [32]
    assert isinstance(model.action_noise, NormalActionNoise) and model.gamma == 0.998
    action, _ = model.predict(np.zeros(3, dtype=np.float32), deterministic=True)
    assert action.shape == (1,)


@pytest.mark.subprocess
def test_enjoy_runs_the_dsdpg_model(dsdpg_run, workdir):
    proc = run(
        "sb3_dsdpg.enjoy", "--algo", "dsdpg", "--env", ENV_ID, "-f", "logs", "--no-render", "-n", "210",
        "--num-threads", "1", cwd=workdir,
    )  # fmt: skip
    assert f"{ENV_NAME}.zip" in proc.stdout
    assert "1 Episodes" in proc.stdout and "Mean reward:" in proc.stdout


@pytest.mark.subprocess
def test_playback_loads_with_a_one_slot_buffer(dsdpg_run):
    run_dir, _ = dsdpg_run
    model = zoo.OneSlotBufferDSDPG.load(run_dir / f"{ENV_NAME}.zip", device="cpu")
    assert model.replay_buffer.buffer_size == 1
    assert isinstance(model, DSDPG) and model.world_model is not None


@pytest.mark.subprocess
def test_continue_training_restores_world_model_and_optimizers(dsdpg_run, workdir):
    run_dir, _ = dsdpg_run
    before = DSDPG.load(run_dir / f"{ENV_NAME}.zip", device="cpu")
    # world_model_gradient_steps:0 freezes the world model during the continuation: restored means unchanged
    # (learning_starts:100 as in the first run, else the entry's 1000 would leave the 200 new steps untrained).
    # The entry's 64x64 world_model_kwargs are ignored on -i (the saved model's structure wins), as policy_kwargs.
    proc = train(
        "--algo", "dsdpg", "--env", ENV_ID, "-n", "200", "-f", "logs", "--eval-freq", "-1",
        "-i", str(run_dir / f"{ENV_NAME}.zip"),
        "-params", "world_model_gradient_steps:0", "batch_size:32", "learning_starts:100",
        cwd=workdir,
    )  # fmt: skip
    assert "Loading pretrained agent" in proc.stdout and "Loading replay buffer" in proc.stdout
    saved = sorted(run_dir.parent.glob(f"{ENV_NAME}_*/{ENV_NAME}.zip"))[-1]
    assert saved.parent != run_dir
    after = DSDPG.load(saved, device="cpu")
    assert after.num_timesteps == before.num_timesteps + 200  # the step count goes on
    assert after._n_updates == before._n_updates + 200
    for name, tensor in before.world_model.state_dict().items():
        assert th.equal(tensor, after.world_model.state_dict()[name]), name

    def adam_steps(optimizer: th.optim.Optimizer) -> float:
        return float(next(iter(optimizer.state_dict()["state"].values()))["step"])

    assert adam_steps(after.world_model.optimizer) == adam_steps(before.world_model.optimizer) > 0
    assert adam_steps(after.critic.optimizer) == adam_steps(before.critic.optimizer) + 200
    assert adam_steps(after.actor.optimizer) == adam_steps(before.actor.optimizer) + 100  # policy_delay 2


@pytest.mark.subprocess
@pytest.mark.parametrize("algo, algo_class", [("td3", TD3), ("tqc", TQC)])
def test_train_baselines_on_the_same_ids(algo, algo_class, workdir):
    proc = train(
        "--algo", algo, "--env", ENV_ID, "-n", "300", "-f", "logs", "--seed", "1", "--eval-freq", "-1",
        "-params", "learning_starts:100", "batch_size:32", "policy_kwargs:dict(net_arch=[32])",
        cwd=workdir,
    )  # fmt: skip
    assert f"Loading hyperparameters from: {zoo.HYPERPARAMS_DIR / f'{algo}.yml'}" in proc.stdout
    model = algo_class.load(workdir / "logs" / algo / f"{ENV_NAME}_1" / f"{ENV_NAME}.zip", device="cpu")
    assert model.num_timesteps == 300


@pytest.mark.subprocess
def test_optimize_with_sqlite_storage_records_both_trials(workdir):
    # learning_starts:130 of 150 steps: sampled settings (up to 8 gradient steps of 256-wide nets) train briefly.
    storage = f"sqlite:///{workdir / 'study.db'}"
    proc = train(
        "--algo", "dsdpg", "--env", ENV_ID, "-f", "opt_logs", "-optimize", "--n-trials", "2", "--storage", storage,
        "--study-name", "zoo-test", "--sampler", "random", "--pruner", "none", "-n", "150", "--n-evaluations", "1",
        "--eval-episodes", "1", "--no-optim-plots", "--seed", "2", "-params", "learning_starts:130",
        cwd=workdir,
    )  # fmt: skip
    assert "Number of finished trials:  2" in proc.stdout
    study = optuna.load_study(storage=storage, study_name="zoo-test")
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in study.trials:
        assert {"n_samples", "kernel_bandwidth", "top_samples_to_drop_per_critic", "world_model_size"} <= set(trial.params)
        assert {"world_model_learning_rate", "gradient_steps"} <= set(trial.params)
    assert list((workdir / "opt_logs" / "dsdpg").glob("report_*.csv"))


# The keys of DSDPG's own switches: a trial's raw value is the constructor argument.
SWITCHES = ("world_model", "sobolev_directions", "critic_actions", "reward_scale", "normalize_samples")
SWITCHES += ("world_model_warmup_steps",)


@pytest.mark.parametrize(("env_id", "n_actions"), [("Pendulum-v1", 1), ("HalfCheetah-v5", 6)])
def test_sampled_and_converted_trials_build_a_dsdpg(env_id, n_actions):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trials = [study.ask() for _ in range(40)]
    sampled = [zoo.sample_dsdpg_params(trial, n_actions, 1, {"using_her_replay_buffer": False}) for trial in trials]
    seen: dict[str, set] = {key: set() for key in SWITCHES}
    for trial, hyperparams in zip(trials, sampled, strict=True):
        converted = zoo.convert_dsdpg_params(trial.params)  # what --trial-id merges into the entry
        zoo.check_hyperparams("dsdpg", {"policy": "MlpPolicy", **converted}, "trial")
        assert converted["policy_kwargs"] == hyperparams["policy_kwargs"]
        assert converted["world_model_kwargs"] == hyperparams["world_model_kwargs"]
        for key in SWITCHES:
            assert converted.get(key) == hyperparams.get(key)
            seen[key].add(hyperparams.get(key, "unset"))
        # The world model's arguments are those of the sampled kind, and the directions fit the action.
        kwargs = hyperparams["world_model_kwargs"]
        if hyperparams["world_model"] == "realnvp":
            assert set(kwargs) == {"hidden_arch", "n_couplings"} and "world_model_latent_dim" not in trial.params
        else:
            assert set(kwargs) == {"encoder_arch", "decoder_arch", "prior_arch", "latent_dim"}
        directions = hyperparams.get("sobolev_directions")
        assert directions is None or 1 <= directions <= min(4, n_actions)
        assert ("sobolev_directions" in trial.params) == (n_actions > 1)
        study.tell(trial, 0.0)
    assert seen["world_model"] == {"cvae", "realnvp"} and seen["critic_actions"] == {"policy", "replay"}
    assert seen["reward_scale"] == {"auto", 1.0} and seen["normalize_samples"] == {True, False}
    assert seen["world_model_warmup_steps"] == {0, "auto"}
    assert seen["sobolev_directions"] == ({None, 1, 2, 3, 4} if n_actions > 1 else {"unset"})

    # Build (do not train) a cVAE trial, a RealNVP trial and, with |A| > 1, a directions trial.
    def first(condition):
        return next(h for h in sampled if condition(h))

    to_build = [first(lambda h: h["world_model"] == "cvae"), first(lambda h: h["world_model"] == "realnvp")]
    if n_actions > 1:
        to_build.append(first(lambda h: h.get("sobolev_directions") is not None))
    for hyperparams in to_build:
        hyperparams = {**hyperparams, "buffer_size": 1000}  # a small buffer: HalfCheetah's 1e6 rows are not needed
        model = DSDPG("MlpPolicy", env_id, device="cpu", **hyperparams)
        assert model.n_samples % model.n_target_model_draws == 0
        assert model.world_model_name == hyperparams["world_model"]
        assert model.sobolev_directions == hyperparams.get("sobolev_directions")
        assert model.critic_actions == hyperparams["critic_actions"]
        assert model.reward_scale == hyperparams["reward_scale"]
        assert model.normalize_samples == hyperparams["normalize_samples"]
        assert model.world_model_warmup_steps == hyperparams["world_model_warmup_steps"]
        assert (
            type(model.world_model).__name__
            == {"cvae": "CVAEWorldModel", "realnvp": "RealNVPWorldModel"}[hyperparams["world_model"]]
        )


def test_old_trials_without_the_world_model_choice_convert_to_the_cvae():
    params = {"world_model_size": "small", "world_model_latent_dim": 4, "one_minus_gamma": 0.02}
    converted = zoo.convert_dsdpg_params(params)
    arch = [64, 64]
    assert converted["world_model_kwargs"] == {"encoder_arch": arch, "decoder_arch": arch, "prior_arch": arch, "latent_dim": 4}
    assert "world_model" not in converted


def test_trial_without_noise_trains_without_noise():
    manager = zoo.DSDPGExperimentManager.__new__(zoo.DSDPGExperimentManager)  # only the noise step is exercised
    env = zoo.gym.make("Pendulum-v1")
    vec_env = type("Spaces", (), {"action_space": env.action_space})()
    hyperparams = manager._preprocess_action_noise({"noise_type": None, "noise_std": 0.3, "gamma": 0.9}, {}, vec_env)
    assert hyperparams == {"gamma": 0.9}


def expect_config_error(capsys: pytest.CaptureFixture, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(args)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.subprocess
def test_unknown_env_fails_early_with_its_name(workdir):
    proc = train("--algo", "dsdpg", "--env", "sb3_dsdpg/Pendulum-DynNoize-v1", "-f", "bad_env_logs", cwd=workdir, check=False)
    assert proc.returncode == 2
    assert "unknown env ID 'sb3_dsdpg/Pendulum-DynNoize-v1'" in proc.stderr
    assert "did you mean 'sb3_dsdpg/Pendulum-DynNoise-v1'" in proc.stderr
    assert not (workdir / "bad_env_logs").exists()


def test_bad_yaml_entry_fails_early_naming_entry_and_argument(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conf = tmp_path / "bad.yml"
    conf.write_text(f"{ENV_ID}:\n  n_timesteps: 1000\n  policy: 'MlpPolicy'\n  n_sample: 4\n")
    err = expect_config_error(capsys, ["--algo", "dsdpg", "--env", ENV_ID, "-f", "logs", "--conf-file", str(conf)])
    assert f"entry '{ENV_ID}' of {conf}" in err
    assert "does not accept argument 'n_sample'" in err and "did you mean 'n_samples'" in err
    assert not (tmp_path / "logs").exists()  # nothing was built


@pytest.mark.parametrize(
    "params, expected",
    [
        (["world_model_kwargs:dict(latent=3)"], "world model has no argument 'latent'"),
        (["policy_kwargs:dict(critic_noise=3)"], "policy_kwargs of DSDPG has no argument 'critic_noise'"),
        (["seed:3"], "argument 'seed' is set by the zoo"),
    ],
)
def test_bad_override_fails_early(params, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err = expect_config_error(capsys, ["--algo", "dsdpg", "--env", ENV_ID, "-f", "logs", "-params", *params])
    assert "-params override" in err and expected in err


def test_bad_value_fails_before_training_naming_entry(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--algo", "dsdpg", "--env", ENV_ID, "-f", "logs", "-params", "n_samples:3", "n_target_model_draws:2"]
    err = expect_config_error(capsys, args)
    assert f"entry '{ENV_ID}' of {zoo.HYPERPARAMS_DIR / 'dsdpg.yml'}" in err
    assert "n_target_model_draws must divide n_samples (3)" in err
    assert not list(tmp_path.glob(f"logs/dsdpg/*/{ENV_NAME}.zip"))


def test_shipped_hyperparams_cover_the_benchmark_and_are_accepted():
    files = {algo: zoo.read_entries(zoo.HYPERPARAMS_DIR / f"{algo}.yml") for algo in ("dsdpg", "td3", "tqc")}
    zoo.register()
    for algo, entries in files.items():
        missing = set(REQUIRED_IDS) - set(entries)
        assert not missing, f"{algo}.yml lacks {sorted(missing)}"
        for env_id, entry in entries.items():
            zoo.check_hyperparams(algo, dict(entry), f"entry {env_id!r} of {algo}.yml")
    assert set(files["td3"]) == set(files["tqc"]) == set(files["dsdpg"]) - {"default"}
    pendulum = files["dsdpg"]["Pendulum-v1"]
    assert pendulum["learning_rate"] == 1e-3 and pendulum["batch_size"] == 128 and pendulum["n_timesteps"] == 20000
    assert files["dsdpg"]["HalfCheetah-v5"]["learning_starts"] == 10000
    assert files["dsdpg"]["sb3_dsdpg/PointMassBonus-v0"]["n_timesteps"] == 30000


def test_every_dsdpg_entry_says_where_its_values_come_from():
    lines = (zoo.HYPERPARAMS_DIR / "dsdpg.yml").read_text().splitlines()
    for index, line in enumerate(lines):
        if line and not line.startswith((" ", "#")):
            comments = []
            above = index - 1
            while above >= 0 and lines[above].startswith("#"):
                comments.append(lines[above])
                above -= 1
            assert any("Source:" in comment for comment in comments), line


def test_baseline_entries_are_the_zoos_own_values():
    zoo_dir = Path(sys.modules["rl_zoo3"].__file__).parent / "hyperparams"
    for algo in ("td3", "tqc"):
        ours = zoo.read_entries(zoo.HYPERPARAMS_DIR / f"{algo}.yml")
        theirs = zoo.read_entries(zoo_dir / f"{algo}.yml")
        assert ours["Pendulum-v1"] == theirs["Pendulum-v1"]
        for base in ("HalfCheetah", "Ant", "Hopper", "Walker2d", "Humanoid"):
            assert ours[f"{base}-v5"] == theirs[f"{base}-v4"], (algo, base)
        assert ours["InvertedDoublePendulum-v5"] == theirs["default"]
        for base in ("Pendulum", *BASES):
            version = "v1" if base == "Pendulum" else "v5"
            for kind in ("ObsNoise", "DynNoise"):
                assert ours[f"sb3_dsdpg/{base}-{kind}-{version}"] == ours[f"{base}-{version}"]


def test_repo_hyperparams_folder_is_the_shipped_one():
    repo_copy = Path(__file__).resolve().parents[1] / "hyperparams"
    if not repo_copy.exists():
        pytest.skip("not run from the repository")
    for algo in ("dsdpg", "td3", "tqc"):
        assert (repo_copy / f"{algo}.yml").samefile(zoo.HYPERPARAMS_DIR / f"{algo}.yml")


def test_default_config_falls_back_to_the_zoo_for_other_tasks():
    assert zoo.default_config("td3", ENV_ID) == str(zoo.HYPERPARAMS_DIR / "td3.yml")
    assert zoo.default_config("td3", "LunarLanderContinuous-v3") is None  # the zoo's own td3.yml
    assert zoo.default_config("dsdpg", "LunarLanderContinuous-v3") == str(zoo.HYPERPARAMS_DIR / "dsdpg.yml")  # default
    assert zoo.default_config("sac", ENV_ID) is None


def test_record_training_runs_our_record_video():
    command = ["python", "-m", "rl_zoo3.record_video", "--env", ENV_ID, "--algo", "dsdpg"]
    assert zoo.record_video_command(command) == [sys.executable, "-m", "sb3_dsdpg.record_video", *command[3:]]
    assert zoo.record_video_command(["ffmpeg", "-i", "x"]) == ["ffmpeg", "-i", "x"]


@pytest.mark.subprocess
def test_record_video_of_a_dsdpg_model(dsdpg_run, workdir):
    pytest.importorskip("moviepy")
    pytest.importorskip("pygame")
    run("sb3_dsdpg.record_video", "--algo", "dsdpg", "--env", ENV_ID, "-f", "logs", "--exp-id", "1", "-n", "20",
        "-o", "videos", cwd=workdir)  # fmt: skip
    assert list((workdir / "videos").glob("final-model-dsdpg-*.mp4"))


@pytest.mark.subprocess
def test_zoo_plot_scripts_draw_our_logs(dsdpg_run, tmp_path):
    run_dir, _ = dsdpg_run
    logs = str(run_dir.parents[1])
    written = zoo.save_zoo_plots(
        "all_plots", ["-a", "dsdpg", "-e", "Pendulum-DynNoise", "-f", logs, "--no-million", "--no-display"],
        str(tmp_path / "curves.png"),
    )  # fmt: skip
    assert written == [str(tmp_path / "curves.png")] and (tmp_path / "curves.png").stat().st_size > 0
    written = zoo.save_zoo_plots("plot_train", ["-a", "dsdpg", "-e", ENV_NAME, "-f", logs, "-w", "1"], str(tmp_path / "t.png"))
    assert (tmp_path / "t.png").is_file()
