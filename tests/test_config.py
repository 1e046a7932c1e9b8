"""The config system: schema ← YAML ← presets ← dotlist, and its one-line errors (exit code 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.config_loading import configs_dir, list_presets, load_config, run_id
from scaling.errors import ConfigError
from scaling.model import build_model


def test_defaults_load_and_validate():
    cfg = load_config()
    assert cfg.optim.lr == 3e-3 and cfg.model.activation == "swiglu"


def test_yaml_then_preset_then_dotlist_order(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("model: s6m\noptim:\n  lr: 1.0e-3\ntrain:\n  tokens: 5.0e6\n")
    cfg = load_config([f], ["optim.lr=2e-4", "model.n_layer=3"])
    assert cfg.model.name == "s6m" and cfg.model.d_model == 256  # from the preset named in the file
    assert cfg.model.n_layer == 3  # dotlist beats the preset
    assert cfg.optim.lr == 2e-4  # dotlist beats the file
    assert cfg.train.tokens == 5e6


def test_command_line_preset_beats_file_values(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("model:\n  n_layer: 7\n")
    cfg = load_config([f], ["model=gpt2-small"])
    assert cfg.model.n_layer == 12


def test_dotlist_override_reaches_the_built_model():
    cfg = load_config(overrides=["model.n_layer=3", "model.d_model=96", "model.n_head=3", "model.activation=gelu"])
    model = build_model(cfg.model)
    assert len(model.blocks) == 3
    assert model.embed.weight.shape[1] == 96
    assert model.blocks[0].mlp.up.out_features == 4 * 96


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["optim.lrr=3e-4"], "unknown config key 'optim.lrr'; did you mean optim.lr?"),
        (["model.n_layr=2"], "did you mean model.n_layer?"),
        (["model.n_layer=abc"], "wrong type for model.n_layer"),
        (["train.tokens=lots"], "wrong type for train.tokens"),
        (["model=nope"], "unknown model preset 'nope'; valid model presets: s100k"),
        (["model.d_model=65"], "model.d_model=65 is not divisible by model.n_head=2"),
        (["model.n_head=4", "model.n_kv_head=3", "model.d_model=64"], "model.n_head=4 is not divisible by model.n_kv_head=3"),
        (["model.n_layer=0"], "model.n_layer=0 must be positive"),
        (["optim.lr=-1e-3"], "optim.lr=-0.001 must be positive"),
        (["train.micro_batch_size=-2"], "train.micro_batch_size=-2 must be positive"),
        (["model.dropout=-0.1"], "model.dropout=-0.1 must not be negative"),
        (["model.activation=tanh"], "model.activation='tanh' is not one of swiglu, gelu, relu2"),
        (["train.seq_len=2048"], "train.seq_len=2048 is longer than model.max_seq_len=1024"),
        (["optim.lr"], "is not key=value"),
    ],
)
def test_config_errors_have_one_line_messages(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    text = str(info.value)
    assert message in text
    assert "\n" not in text


def test_unknown_key_in_a_yaml_file_is_named(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("optim:\n  weight_decai: 0.1\n")
    with pytest.raises(ConfigError, match="did you mean optim.weight_decay"):
        load_config([f])


def test_cli_prints_one_line_and_exits_2(capsys):
    assert main(["config", "show", "optim.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown config key 'optim.lrr'; did you mean optim.lr?"


def test_cli_show_prints_resolved_config_and_derived_numbers(capsys):
    assert main(["config", "show", "model=gpt2-small", "optim.lr=6e-4"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.0006" in out
    assert "124,475,904 total" in out


def test_console_script_exits_2_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "scaling", "config", "show", "model=nope"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_run_id_is_stable_and_ignores_placement():
    a = load_config(overrides=["optim.lr=1e-3", "run.dir=/tmp/a", "logging.wandb=disabled"])
    b = load_config(overrides=["optim.lr=1e-3", "run.dir=/tmp/b"])
    c = load_config(overrides=["optim.lr=2e-3"])
    assert run_id(a) == run_id(b) != run_id(c)
    assert len(run_id(a)) == 12


def test_presets_listed_include_ladder_and_named_architectures():
    names = list_presets("model")
    assert names[:3] == ["s100k", "s330k", "s800k"]
    assert {"gpt2-small", "llama-60m", "s1b"} <= set(names)


def test_configs_are_found_from_a_non_editable_install(tmp_path):
    root = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # build from a copy: setuptools leaves build/ behind in the source tree
    for name in ("scaling", "data_pipelines", "sweeps", "configs"):
        shutil.copytree(root / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path / "wheel")], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = ("import importlib.util, scaling.config_loading as c; print(c.configs_dir()); "
            "print(importlib.util.find_spec('configs') is None); "
            "print(c.load_config(overrides=['model=gpt2-small']).model.n_layer)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    where, no_configs_package, n_layer = proc.stdout.split()
    # the presets are package data inside scaling, not a top-level package named "configs"
    assert where == str(site / "scaling" / "presets") and no_configs_package == "True" and n_layer == "12"
    assert (configs_dir() / "model" / "gpt2-small.yaml").is_file()


@pytest.mark.parametrize(("override", "suggestion"), [
    ("modle.n_layer=3", "unknown config key 'modle.n_layer'; did you mean model.n_layer?"),
    ("optm.lr=1", "unknown config key 'optm.lr'; did you mean optim.lr?"),
    ("optm=1", "unknown config key 'optm'; did you mean optim?"),
    ("trian.seq_len=8", "unknown config key 'trian.seq_len'; did you mean train.seq_len?"),
])
def test_a_misspelt_group_is_named_as_written_and_matched_against_the_groups(override, suggestion):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert str(info.value) == suggestion


@pytest.mark.parametrize("devices", ["abc", "0", "-2", "0,x"])
def test_train_devices_must_be_a_count_or_gpu_indices(devices):
    with pytest.raises(ConfigError, match="is not auto, a count like 2, or GPU indices like 0,1"):
        load_config(overrides=[f"train.devices={devices}"])


@pytest.mark.parametrize("devices", ["auto", "2", "-1", "0,1", "0,"])
def test_valid_train_devices_load(devices):
    assert str(load_config(overrides=[f"train.devices={devices}"]).train.devices) == devices


def test_an_unknown_accelerator_is_refused():
    with pytest.raises(ConfigError, match="train.accelerator='tpu' is not one of auto, cpu, gpu, cuda"):
        load_config(overrides=["train.accelerator=tpu"])


def test_a_preset_named_in_a_file_is_overridden_by_later_files(tmp_path):
    preset, values = tmp_path / "a.yaml", tmp_path / "b.yaml"
    preset.write_text("model: s330k\n")
    values.write_text("model:\n  n_layer: 7\n")
    assert load_config([preset, values]).model.n_layer == 7  # the later file wins
    assert load_config([values, preset]).model.n_layer == load_config(overrides=["model=s330k"]).model.n_layer
    assert load_config([preset], ["model.n_layer=5"]).model.n_layer == 5


def test_a_branch_keeps_its_run_id_when_the_sweep_dir_moves():
    def branch(parent: str):
        return run_id(load_config(overrides=[f"run.branch_from={parent}", "run.branch_at_tokens=1e6"]))

    assert branch("/scratch/a/sweep/runs/0123abcd4567") == branch("/mnt/b/sweep/runs/0123abcd4567")
    assert branch("/scratch/a/sweep/runs/0123abcd4567") != branch("/scratch/a/sweep/runs/89abcdef0123")


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    f = tmp_path / "twice.yaml"
    f.write_text("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lr' in optim \(lines 2 and 3\)"):
        load_config([f])
