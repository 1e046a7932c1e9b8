"""The config system: schema ← YAML ← presets ← dotlist, and its one-line errors (exit code 2)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import typing
import zipfile
from pathlib import Path

import pytest

from scaling.cli import main
from scaling.cli.config_docs import config_reference
from scaling.config import Config, field_choices, field_rule
from scaling.config_loading import (
    RUN_NEUTRAL_KEYS,
    configs_dir,
    list_presets,
    load_config,
    resolve_vocab_size,
    run_id,
    to_yaml,
)
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
    cfg = load_config(overrides=["model.n_layer=3", "model.d_model=96", "model.n_head=3",
                                 "model.activation=gelu", "model.vocab_size=512"])
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
        (["model.n_head=4", "model.n_kv_head=3", "model.d_model=64"],
         "model.n_head=4 is not divisible by model.n_kv_head=3"),
        (["model.n_layer=0"], "model.n_layer=0 must be positive"),
        (["optim.lr=-1e-3"], "optim.lr=-0.001 must be positive"),
        (["train.micro_batch_size=-2"], "train.micro_batch_size=-2 must be positive"),
        (["model.dropout=-0.1"], "model.dropout=-0.1 must be in [0, 1)"),
        (["optim.weight_decay=-0.1"], "optim.weight_decay=-0.1 must be at least 0"),
        (["optim.weight_decay=nan"], "optim.weight_decay=nan must be a finite number"),
        (["train.tokens=inf"], "train.tokens=inf must be a finite number"),
        (["data.val_tokens=inf"], "data.val_tokens=inf must be a finite number"),
        (["model.vocab_size=many"], "model.vocab_size='many' is not one of auto or a positive number"),
        (["logging.tags=[a"], "override 'logging.tags=[a' is not a valid value"),
        (["logging.project=${oc.env:HOME}"], "logging.project='${oc.env:HOME}' calls a resolver"),
        (["train.val_every_tokens=${nope.x}"],
         "invalid config at train.val_every_tokens: Interpolation key 'nope.x' not found"),
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


def _fields(predicate) -> list[tuple[str, dataclasses.Field]]:
    """(dotted key, field) of every schema field for which ``predicate(field, type hint)`` holds."""
    out = []
    for group in dataclasses.fields(Config):
        cls = group.default_factory
        hints = typing.get_type_hints(cls)
        out += [(f"{group.name}.{f.name}", f) for f in dataclasses.fields(cls) if predicate(f, hints[f.name])]
    return out


FLOAT_KEYS = [key for key, _ in _fields(lambda f, hint: hint is float or float in typing.get_args(hint))]


def test_float_fields_are_found_plain_optional_and_in_lists():  # the next test covers each of them
    assert {"optim.weight_decay", "train.tokens", "train.checkpoint_at_tokens", "run.branch_at_tokens",
            "data.val_tokens", "train.max_loss"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_field_must_be_finite(key, value):
    override = f"{key}=[{value}]" if key == "train.checkpoint_at_tokens" else f"{key}={value}"
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override, "run.branch_from=/tmp/trunk"] if key.startswith("run.")
                    else [override])
    assert str(info.value).startswith(f"{key}=") and str(info.value).endswith("must be a finite number")


def test_a_mixture_weight_must_be_finite_and_positive(tmp_path):
    f = tmp_path / "mix.yaml"
    f.write_text("data:\n  mixture:\n    - {path: a, weight: 1.0}\n    - {path: b, weight: .nan}\n")
    with pytest.raises(ConfigError, match=r"^data.mixture\[1\].weight=nan must be a finite number$"):
        load_config([f])
    f.write_text("data:\n  mixture:\n    - {path: a, weight: 0.0}\n")
    with pytest.raises(ConfigError, match=r"^data.mixture\[0\].weight=0.0 must be positive$"):
        load_config([f])
    f.write_text("data:\n  mixture:\n    - {weight: 1.0}\n")
    with pytest.raises(ConfigError, match=r"^data.mixture\[0\].path has no value; set it"):
        load_config([f])


CHOICE_FIELDS = _fields(lambda f, hint: bool(field_choices(f)) and field_rule(f) is None)


@pytest.mark.parametrize(("key", "f"), CHOICE_FIELDS, ids=[k for k, _ in CHOICE_FIELDS])
def test_choices_declared_on_a_field_are_what_validate_accepts_and_the_docs_list(key, f):
    choices = field_choices(f)
    assert f.default == choices[0]
    for value in choices:
        load_config(overrides=[f"{key}={value}"])
    with pytest.raises(ConfigError, match=f"^{re.escape(key)}='bogus' is not one of {', '.join(choices)}$"):
        load_config(overrides=[f"{key}=bogus"])
    row = next(line for line in config_reference().splitlines() if line.startswith(f"| `{key}` |"))
    listed = " \\| ".join(choices)  # the README table escapes the bars
    assert row.endswith(f"; one of {listed} |")


def test_config_show_of_infinite_tokens_exits_2_in_one_line(capsys):
    assert main(["config", "show", "train.tokens=inf"]) == 2
    assert capsys.readouterr().err == "error: train.tokens=inf must be a finite number\n"


def test_a_malformed_override_exits_2_in_one_line(capsys):
    assert main(["config", "show", "logging.tags=[a"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: override 'logging.tags=[a' is not a valid value") and err.count("\n") == 1


def test_resolvers_are_refused_in_files_and_references_to_keys_are_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_TAG", "s3cret")
    f = tmp_path / "env.yaml"
    f.write_text("logging:\n  tags: [a, '${oc.env:SECRET_TAG}']\n")
    with pytest.raises(ConfigError, match=r"^logging.tags\[1\]='\$\{oc.env:SECRET_TAG\}' calls a resolver"):
        load_config([f])
    cfg = load_config(overrides=["train.val_every_tokens=${train.tokens}", "train.tokens=3e6"])
    assert cfg.train.val_every_tokens == 3e6


def test_run_neutral_keys_leave_the_run_id_alone():
    base = run_id(load_config())
    changed = {"run.dir": "/tmp/x", "run.name": "named", "run.resume": "auto", "logging": None, "eval": None,
               "train.threads": 3, "data.verify": "full", "train.attention": "math"}
    assert set(changed) == set(RUN_NEUTRAL_KEYS)
    groups = {"logging": "logging.project=other", "eval": "eval.tasks=[stdlib-nextline]"}
    for key, value in changed.items():
        override = groups[key] if value is None else f"{key}={value}"
        assert run_id(load_config(overrides=[override])) == base, key
    assert run_id(load_config(overrides=["train.seq_len=128"])) != base


# --- model.vocab_size follows the data ---------------------------------------------------------


def test_vocab_auto_resolves_from_the_prepared_data_into_the_config_and_run_id(tiny_corpus):
    cfg = load_config(overrides=[f"data.path={tiny_corpus}"])
    assert cfg.model.vocab_size == 512  # the tiny corpus's tokenizer, not a default of 8192
    assert "vocab_size: 512\n" in to_yaml(cfg)
    assert run_id(cfg) == run_id(load_config(overrides=[f"data.path={tiny_corpus}", "model.vocab_size=512"]))


def test_config_show_with_data_shows_the_resolved_vocab(tiny_corpus, capsys):
    assert main(["config", "show", f"data.path={tiny_corpus}", "model=s100k"]) == 0
    out = capsys.readouterr().out
    assert "  vocab_size: 512\n" in out and "vocabulary:" not in out and "note:" not in out
    # s100k, tied, 512 rows of 64: the embedding counts once
    assert f"{106_816 + 512 * 64:,} total" in out


def test_config_show_without_data_says_the_vocab_is_assumed(tmp_path, capsys):
    assert main(["config", "show", f"data.path={tmp_path / 'none'}"]) == 0
    out = capsys.readouterr().out
    assert "  vocab_size: auto\n" in out
    assert "the counts above assume 8192" in out


def test_an_explicit_vocab_smaller_than_the_tokenizer_is_refused_in_one_line(tiny_corpus):
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[f"data.path={tiny_corpus}", "model.vocab_size=300"])
    assert str(info.value) == ("model.vocab_size=300 is smaller than the 512-token tokenizer of "
                               f"{tiny_corpus}; set model.vocab_size=auto (or 512 or more)")


def test_an_explicit_larger_vocab_is_kept_and_said_once(tiny_corpus, capsys):
    cfg = load_config(overrides=[f"data.path={tiny_corpus}", "model.vocab_size=640"])
    assert cfg.model.vocab_size == 640
    assert resolve_vocab_size(cfg) == ("model.vocab_size=640 is larger than the 512-token tokenizer of "
                                       f"{tiny_corpus}: 128 embedding rows stay unused "
                                       "(model.vocab_size=auto follows the data)")
    assert main(["config", "show", f"data.path={tiny_corpus}", "model.vocab_size=640"]) == 0
    assert capsys.readouterr().out.count("note: model.vocab_size=640 is larger") == 1


def test_training_needs_the_data_to_resolve_an_auto_vocab(tmp_path):
    cfg = load_config(overrides=[f"data.path={tmp_path / 'missing'}"])
    assert cfg.model.vocab_size == "auto"
    missing = re.escape(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=f"^model.vocab_size is auto but {missing} holds"):
        resolve_vocab_size(cfg, required=True)


def test_a_mixture_resolves_when_its_tokenizers_agree_and_is_refused_when_not(tiny_corpus, tmp_path):
    from data_fixtures import prepare_small

    agree = tmp_path / "agree.yaml"
    agree.write_text(f"data:\n  mixture:\n    - {{path: {tiny_corpus}}}\n    - {{path: {tiny_corpus}}}\n")
    assert load_config([agree]).model.vocab_size == 512
    prepare_small(tmp_path / "other", max_bytes=60_000, vocab_size=600)
    disagree = tmp_path / "disagree.yaml"
    other = tmp_path / "other"
    disagree.write_text(f"data:\n  mixture:\n    - {{path: {tiny_corpus}}}\n    - {{path: {other}}}\n")
    with pytest.raises(ConfigError) as info:
        load_config([disagree])
    assert str(info.value) == (f"data.mixture mixes tokenizers of different sizes ({tiny_corpus} has 512, "
                               f"{tmp_path / 'other'} has 600); prepare every source with the same one "
                               "(--tokenizer FILE)")


def test_config_presets_lists_sizes(capsys):
    assert main(["config", "presets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    assert lines["s1.5m"].split() == ["s1.5m", "1.59M", "/", "2.9M", "d_model", "160", "layers", "5",
                                      "vocab", "auto"]
    assert lines["gpt2-small"].split()[1:4] == ["85.1M", "/", "124M"]
    assert set(lines) == set(list_presets("model"))


@pytest.mark.parametrize("argv", [["config", "show"], ["sweep", "plan", "configs/sweeps/ladder.yaml"],
                                  ["fit", "--help"]])
def test_config_sweep_plan_and_fit_help_do_not_import_torch(argv):
    root = Path(__file__).resolve().parents[1]
    code = ("import sys\nfrom scaling.cli.main import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_counting_and_config_loading_import_without_torch():
    code = "import sys, scaling.counting, scaling.config_loading; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "False", proc.stderr


@pytest.mark.slow
def test_train_resolves_an_auto_vocab_into_its_run_dir_and_counts(tiny_cfg, tmp_path):
    from scaling import train
    from scaling.counting import count_params

    cfg = tiny_cfg(run_dir=tmp_path / "auto")
    cfg.model.vocab_size = "auto"  # as loaded before the data was prepared
    result = train(cfg)
    assert result.status == "done" and cfg.model.vocab_size == 512
    assert result.params == count_params(cfg.model).total  # counted with the data's 512, not 8192
    assert "vocab_size: 512\n" in (tmp_path / "auto" / "config.yaml").read_text()
    assert result.run_id == run_id(tiny_cfg(run_dir=tmp_path / "auto"))  # the id of the explicit 512
