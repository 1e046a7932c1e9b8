"""Under FSDP every parameter is a flattened 1-D shard: weight-decay groups and gradient clipping must
still come out as for the unsharded model. Checked with real FSDP on 2 CPU processes (gloo);
Lightning's FSDP strategy itself needs GPUs (tests/test_train_gpu.py runs it on one)."""

import os
import re
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tests.helpers.runs import TINY_MODEL


def _clean(name: str) -> str:
    return re.sub(r"(_fsdp_wrapped_module|_checkpoint_wrapped_module)\.", "", name)


def _names(model, params) -> set[str]:
    ids = {id(p) for p in params}
    return {_clean(n) for n, p in model.named_parameters() if id(p) in ids}


def _fsdp_worker(rank: int, port: int) -> None:
    import torch.distributed as dist
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    from scaling.config_loading import load_config
    from scaling.model import Block, build_model
    from scaling.training.optim import clip_gradients, param_groups

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        cfg = load_config([], [*TINY_MODEL, "train.seq_len=32", "model.tie_embeddings=true"])
        torch.manual_seed(0)
        plain = build_model(cfg.model)
        sharded = build_model(cfg.model)
        sharded.load_state_dict(plain.state_dict())
        sharded = FullyShardedDataParallel(sharded, auto_wrap_policy=ModuleWrapPolicy({Block}),
                                           device_id=torch.device("cpu"), use_orig_params=True)
        assert all(p.ndim == 1 for p in sharded.parameters())  # what a shape rule would see

        for want, got in zip(param_groups(plain, 0.1), param_groups(sharded, 0.1), strict=True):
            assert _names(plain, want["params"]) == _names(sharded, got["params"]), want["name"]

        idx = torch.randint(0, cfg.model.vocab_size, (4, 33), generator=torch.Generator().manual_seed(1))
        for model in (plain, sharded):  # the same batch on both ranks: FSDP's averaged grads = plain's
            model(idx[:, :-1], idx[:, 1:])[1].backward()
        norm_plain = clip_gradients(plain, 0.5)
        norm_sharded = clip_gradients(sharded, 0.5)
        assert norm_plain > 0.5  # clipping takes effect
        torch.testing.assert_close(norm_sharded, norm_plain, rtol=1e-5, atol=0)
        with FullyShardedDataParallel.summon_full_params(sharded, with_grads=True):
            grads = {_clean(n): p.grad for n, p in sharded.named_parameters()}
            for name, p in plain.named_parameters():
                torch.testing.assert_close(grads[name], p.grad, rtol=1e-4, atol=1e-6)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fsdp_shards_keep_the_decay_groups_and_the_global_clip_norm():
    mp.spawn(_fsdp_worker, args=(_free_port(),), nprocs=2, join=True)


def test_decay_groups_follow_module_types_not_shapes():
    from torch import nn

    from scaling.training.optim import param_groups

    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4), nn.Linear(4, 10, bias=False))
    model[3].weight = model[0].weight  # a tied head
    with torch.no_grad():  # flatten every parameter, as FSDP does
        for p in model.parameters():
            p.data = p.data.reshape(-1)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["params"] == [model[1].weight]
    assert {id(p) for p in no_decay["params"]} == {
        id(model[0].weight),
        id(model[1].bias),
        id(model[2].weight),
        id(model[2].bias),
    }
    decay, _ = param_groups(model, 0.1, decay_embeddings=True)
    assert {id(p) for p in decay["params"]} == {id(model[0].weight), id(model[1].weight)}
