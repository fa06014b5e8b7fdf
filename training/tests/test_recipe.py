"""Tests of the baseline/2 recipe features: random erasing, Mixup/CutMix, the
EMA of the weights with batch norm recomputed, distillation, bf16 autocast,
checkpoint/resume with an EMA, and the recipe ladder's bookkeeping.

Every training here is tiny (a 200-image slice, a 4-4-8-8 network, one or two
epochs) so the file runs in seconds beside a real training run.
"""
import copy
import io
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pctrain.train as ptrain
from pctrain import data as fdata
from pctrain import distill, recipe
from pctrain.augment import beta, mix, random_erase
from pctrain.checkpoints import load_model
from pctrain.ema import Ema, recompute_bn
from pctrain.nets import Cnn, CnnConfig
from pctrain.train import (
    TrainConfig, Trainer, accuracy, distillation_loss, normalization, predict_logits, set_determinism, to_tensor,
    train,
)

TINY_NET = CnnConfig(conv_channels=(4, 4, 8, 8), pool_after=(0, 1, 3), dense=16).to_dict()
VAL_PER_CLASS = 20
QUIET = lambda *_: None  # noqa: E731


def tiny_cfg(**kw) -> TrainConfig:
    base = dict(seed=4, epochs=1, train_limit=200, batch_size=32, val_per_class=VAL_PER_CLASS, threads=1,
                net=TINY_NET)
    return TrainConfig(**{**base, **kw})


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def roundtrip(obj):
    """Through torch.save/torch.load, as a checkpoint on disk would go."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf)


def bbox(mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the True pixels of a 2-D mask, half-open."""
    rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
    if rows.numel() == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


@pytest.fixture(scope="module")
def small_ds():
    """The real data with a 20-per-class validation split (training slices are cut from it)."""
    return fdata.load(val_per_class=VAL_PER_CLASS)


def synthetic_ds(n=64, seed=0) -> fdata.FashionMnist:
    rng = np.random.default_rng(seed)
    split = lambda m: fdata.Split(rng.integers(0, 256, (m, 28, 28), dtype=np.uint8),  # noqa: E731
                                  np.arange(m, dtype=np.int64) % 10)
    return fdata.FashionMnist(split(n), split(20), split(10), "synthetic")


def make_trainer(cfg: TrainConfig, out, ds=None, teacher=None, init_seed=None) -> Trainer:
    ds = ds or synthetic_ds()
    set_determinism(cfg.seed if init_seed is None else init_seed, cfg.threads)
    mean, std = normalization(ds.train.images)
    return Trainer(cfg, out, Cnn(CnnConfig.from_dict(cfg.net)), ds, mean, std, QUIET, teacher)


# ---------------------------------------------------------------- random erasing

def test_erase_with_p0_returns_the_input_and_draws_nothing():
    x = torch.randn(8, 1, 28, 28)
    g = gen(1)
    state = g.get_state()
    assert torch.equal(random_erase(x, 0.0, g), x)
    assert torch.equal(g.get_state(), state)  # runs without erasing keep their random sequence


@pytest.mark.parametrize("area,ratio", [((0.02, 0.25), (0.3, 3.3)), ((0.1, 0.2), (2.0, 3.0)), ((0.05, 0.1), (0.3, 0.5))])
def test_erase_with_p1_fills_one_rectangle_within_the_bounds(area, ratio):
    n, h, w = 64, 28, 28
    x = torch.full((n, 1, h, w), 100.0)  # N(0, 1) noise never reaches 100
    out = random_erase(x, 1.0, gen(7), area=area, ratio=ratio)
    noise = []
    for i in range(n):
        changed = out[i, 0] != x[i, 0]
        box = bbox(changed)
        assert box is not None, f"image {i} was not erased"
        t, b, l, r = box
        eh, ew = b - t, r - l
        assert changed[t:b, l:r].all() and int(changed.sum()) == eh * ew, "erased pixels are not one rectangle"
        # eh = round(sqrt(F * a)), ew = round(sqrt(F / a)) for some F = frac * h * w, frac in `area`, a in `ratio`
        f_lo, f_hi = (eh - 0.5) * (ew - 0.5), (eh + 0.5) * (ew + 0.5)
        assert f_lo <= area[1] * h * w and f_hi >= area[0] * h * w, f"area {eh}x{ew} outside {area}"
        a_lo, a_hi = (eh - 0.5) / (ew + 0.5), (eh + 0.5) / (ew - 0.5)
        assert a_lo <= ratio[1] and a_hi >= ratio[0], f"aspect {eh}x{ew} outside {ratio}"
        if ratio[0] > 1:
            assert eh > ew, "aspect is height / width"
        if ratio[1] < 1:
            assert eh < ew, "aspect is height / width"
        noise.append(out[i, 0][changed])
    noise = torch.cat(noise)
    assert abs(noise.mean().item()) < 0.1 and 0.9 < noise.std().item() < 1.1  # filled with N(0, 1)


def test_erase_is_reproducible_and_leaves_unselected_images_alone():
    x = torch.randn(200, 1, 28, 28)
    a = random_erase(x, 0.3, gen(5))
    b = random_erase(x, 0.3, gen(5))
    c = random_erase(x, 0.3, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    changed = (a != x).flatten(1).any(1)
    assert 30 <= int(changed.sum()) <= 90  # about 200 * 0.3 images erased
    assert torch.equal(a[~changed], x[~changed])
    for i in changed.nonzero().flatten().tolist():  # every erased image: one rectangle only
        diff = a[i, 0] != x[i, 0]
        t, bt, l, r = bbox(diff)
        assert int(diff.sum()) == (bt - t) * (r - l)


# ---------------------------------------------------------------- Mixup / CutMix

def test_beta_follows_the_generator():
    assert beta(1.0, gen(3)) == beta(1.0, gen(3))
    g = gen(3)
    draws = [beta(1.0, g) for _ in range(2000)]
    assert len(set(draws)) == 2000 and all(0 < d < 1 for d in draws)
    assert abs(np.mean(draws) - 0.5) < 0.03  # Beta(1, 1) is uniform


def test_mixup_is_the_convex_combination_with_the_partner():
    x = torch.randn(16, 1, 28, 28)
    out, partner, lam = mix(x, "mixup", 0.4, gen(3))
    assert torch.equal(partner.sort().values, torch.arange(16))
    assert 0.0 <= lam <= 1.0
    torch.testing.assert_close(out, lam * x + (1 - lam) * x[partner])


def test_cutmix_pastes_one_rectangle_and_lam_is_the_share_kept():
    n, h, w = 16, 28, 28
    nonempty = 0
    for seed in range(30):
        x = torch.randn(n, 1, h, w)
        out, partner, lam = mix(x, "cutmix", 1.0, gen(seed))
        assert torch.equal(partner.sort().values, torch.arange(n))
        moved = partner != torch.arange(n)
        diff = (out != x)[:, 0]
        box = bbox(diff[moved].any(0))
        if box is None:
            assert lam == 1.0 and torch.equal(out, x)
            continue
        nonempty += 1
        t, b, l, r = box
        inside = torch.zeros(h, w, dtype=torch.bool)
        inside[t:b, l:r] = True
        for i in moved.nonzero().flatten().tolist():
            assert torch.equal(diff[i], inside), "every mixed image gets the same single rectangle"
        assert torch.equal(out[:, :, t:b, l:r], x[partner][:, :, t:b, l:r])
        assert torch.equal(out[:, :, ~inside], x[:, :, ~inside])
        assert lam == pytest.approx(1 - (b - t) * (r - l) / (h * w), abs=1e-12)
    assert nonempty >= 20


def test_mix_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown mix"):
        mix(torch.randn(4, 1, 28, 28), "cutout", 1.0, gen(0))


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_is_reproducible(kind):
    x = torch.randn(16, 1, 28, 28)
    a, b = mix(x, kind, 1.0, gen(9)), mix(x, kind, 1.0, gen(9))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]


# ---------------------------------------------------------------- EMA

def bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))


def perturb(model: nn.Module) -> None:
    """Move every float tensor of the live network and run a batch (num_batches_tracked += 1)."""
    model.train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        model(torch.randn(8, 3) * 3 + 1)


def test_ema_after_warmup_is_decay_times_shadow_plus_the_rest_of_live():
    live = bn_net()
    ema = Ema(live, 0.9)
    ema.updates = 100  # past the warm-up: (1 + 101) / (10 + 101) > 0.9
    perturb(live)
    before = copy.deepcopy(ema.model.state_dict())
    ema.update(live)
    assert ema.updates == 101
    now, cur = ema.model.state_dict(), live.state_dict()
    for k, v in cur.items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(now[k], 0.9 * before[k] + 0.1 * v)
            assert not torch.equal(now[k], v)
        else:  # num_batches_tracked is copied
            assert torch.equal(now[k], v) and not torch.equal(before[k], v)


def test_ema_warmup_follows_the_live_network_faster_at_first():
    live = bn_net()
    ema = Ema(live, 0.999)
    perturb(live)
    before = copy.deepcopy(ema.model.state_dict())
    ema.update(live)
    d = 2 / 11  # min(0.999, (1 + 1) / (10 + 1))
    w = "0.weight"
    torch.testing.assert_close(ema.model.state_dict()[w], d * before[w] + (1 - d) * live.state_dict()[w])


def test_ema_is_a_separate_frozen_copy():
    live = bn_net()
    ema = Ema(live, 0.9)
    assert all(not p.requires_grad for p in ema.model.parameters())
    assert all(p.requires_grad for p in live.parameters())
    before = copy.deepcopy(ema.model.state_dict())
    perturb(live)
    assert states_equal(ema.model.state_dict(), before)  # the shadow moves only on update()


def test_ema_state_dict_round_trip():
    live = bn_net()
    ema = Ema(live, 0.9)
    for _ in range(3):
        perturb(live)
        ema.update(live)
    torch.manual_seed(1)
    other = Ema(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)), 0.9)
    assert not states_equal(other.model.state_dict(), ema.model.state_dict())
    other.load_state_dict(roundtrip(ema.state_dict()))
    assert other.updates == 3
    assert states_equal(other.model.state_dict(), ema.model.state_dict())


# ---------------------------------------------------------------- recompute_bn

def channel_stats(feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and unbiased variance over batch and space, in float64."""
    v = feats.double().transpose(0, 1).reshape(feats.shape[1], -1)
    return v.mean(1), v.var(1, unbiased=True)


@pytest.mark.parametrize("start_training", [True, False])
def test_recompute_bn_sets_the_exact_statistics_and_restores_modes(start_training):
    torch.manual_seed(0)
    model = Cnn(CnnConfig(conv_channels=(3, 4), pool_after=(0,), dense=8))
    bn = model.neurons["conv1"].bn
    bn.momentum = 0.3
    with torch.no_grad():
        bn.running_mean.fill_(7.0)
        bn.running_var.fill_(0.01)
    model.train(start_training)
    x = torch.randn(300, 1, 28, 28) * 2 + 1
    recompute_bn(model, x)
    with torch.no_grad():
        mean, var = channel_stats(model.neurons["conv1"].op(x))
    torch.testing.assert_close(bn.running_mean.double(), mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(bn.running_var.double(), var, atol=1e-4, rtol=1e-4)
    assert bn.momentum == 0.3 and model.neurons["conv2"].bn.momentum == 0.1
    assert all(m.training == start_training for m in model.modules())


def test_recompute_bn_runs_with_dropout_off():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(5)).train()
    x = torch.randn(400, 5) * 3 + 2
    recompute_bn(model, x)
    mean, var = channel_stats(x)
    torch.testing.assert_close(model[1].running_mean.double(), mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(model[1].running_var.double(), var, atol=1e-4, rtol=1e-4)


def test_recompute_bn_over_equal_batches_gets_the_exact_mean():
    torch.manual_seed(0)
    model = nn.Sequential(nn.BatchNorm2d(3))
    x = torch.randn(1000, 3, 4, 4) + torch.tensor([0.0, 1.0, -2.0])[None, :, None, None]
    recompute_bn(model, x, batch=250)
    mean, var = channel_stats(x)
    torch.testing.assert_close(model[0].running_mean.double(), mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(model[0].running_var.double(), var, atol=1e-4, rtol=0)


def test_recompute_bn_is_exact_when_the_last_batch_is_short():
    model = nn.Sequential(nn.BatchNorm2d(2))
    x = torch.randn(700, 2, 4, 4) + torch.linspace(0, 3, 700)[:, None, None, None]  # a drift along the data
    recompute_bn(model, x, batch=500)  # batches of 500 and 200
    mean, var = channel_stats(x)
    torch.testing.assert_close(model[0].running_mean.double(), mean, atol=1e-4, rtol=0)
    torch.testing.assert_close(model[0].running_var.double(), var, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------- losses

def test_distillation_loss_is_zero_at_the_teacher_and_positive_elsewhere():
    torch.manual_seed(0)
    teacher = torch.softmax(torch.randn(8, 10), 1)
    for t in (1.0, 2.0, 4.0):
        at_teacher = t * torch.log(teacher) + torch.randn(8, 1)  # softmax(logits / t) == teacher
        assert abs(distillation_loss(at_teacher, teacher, t).item()) < 1e-5
        assert distillation_loss(torch.randn(8, 10), teacher, t).item() > 1e-3


def test_distillation_loss_is_t_squared_kl():
    torch.manual_seed(1)
    teacher = torch.softmax(torch.randn(8, 10), 1)
    z = torch.randn(8, 10) * 3
    for t in (1.0, 2.0, 3.0):
        kl = F.kl_div(torch.log_softmax(z / t, 1), teacher, reduction="batchmean")
        torch.testing.assert_close(distillation_loss(z, teacher, t), t**2 * kl)
        torch.testing.assert_close(distillation_loss(z, teacher, t), t**2 * distillation_loss(z / t, teacher, 1.0))


def test_trainer_loss_mixes_labels_and_teacher_targets_with_lam(tmp_path):
    ds = synthetic_ds(40)
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(40, 10), 1)
    cfg = tiny_cfg(distill_alpha=0.3, label_smoothing=0.1)
    trainer = make_trainer(cfg, tmp_path, ds, {"probs": probs, "temperature": 2.0})
    idx = torch.tensor([3, 17, 5, 30, 9, 11, 22, 0])
    logits = torch.randn(8, 10)
    partner = torch.tensor([1, 0, 3, 2, 5, 4, 7, 6])
    lam = 0.3
    y = torch.from_numpy(ds.train.labels)[idx]
    ce = lambda target: F.cross_entropy(logits, target, label_smoothing=0.1)  # noqa: E731
    hard = lam * ce(y) + (1 - lam) * ce(y[partner])
    soft = lam * probs[idx] + (1 - lam) * probs[idx][partner]
    expected = 0.7 * hard + 0.3 * distillation_loss(logits, soft, 2.0)
    torch.testing.assert_close(trainer.loss(logits, idx, partner, lam), expected)
    plain = make_trainer(tiny_cfg(label_smoothing=0.1), tmp_path, ds)
    torch.testing.assert_close(plain.loss(logits, idx, None, 1.0), ce(y))


@pytest.mark.parametrize("kind,p,expect", [("cutmix", 1.0, "all"), ("mixup", 1.0, "all"), ("cutmix", 0.0, "none"),
                                           ("none", 1.0, "none"), ("cutmix", 0.5, "some")])
def test_mix_p_decides_which_batches_are_mixed(tmp_path, monkeypatch, kind, p, expect):
    seen = []
    real = Trainer.loss

    def spy(self, logits, idx, partner, lam):
        seen.append(partner is not None)
        return real(self, logits, idx, partner, lam)

    monkeypatch.setattr(Trainer, "loss", spy)
    trainer = make_trainer(tiny_cfg(mix=kind, mix_p=p, batch_size=4, epochs=2), tmp_path, synthetic_ds(64))
    trainer.train_epoch()
    assert len(seen) == 16
    assert {"all": all(seen), "none": not any(seen), "some": 0 < sum(seen) < 16}[expect]


def test_bf16_changes_the_arithmetic_and_keeps_float32_weights(tmp_path):
    ds = synthetic_ds(64)
    results = {}
    for bf16 in (False, True):
        trainer = make_trainer(tiny_cfg(bf16=bf16, batch_size=16), tmp_path, ds)
        loss = trainer.train_epoch()
        assert math.isfinite(loss)
        assert all(v.dtype == torch.float32 for v in trainer.model.state_dict().values() if v.is_floating_point())
        results[bf16] = trainer.model.state_dict()
    assert not states_equal(results[False], results[True])


# ---------------------------------------------------------------- Trainer state with an EMA

def test_trainer_state_round_trips_the_ema_and_continues_identically(tmp_path):
    cfg = tiny_cfg(ema_decay=0.9, erase_p=0.5, mix="cutmix", bf16=True, batch_size=16, epochs=2)
    ds = synthetic_ds(64)
    a = make_trainer(cfg, tmp_path, ds)
    assert a.eval_model is a.ema.model
    a.train_epoch()
    a.epoch = 1
    st = roundtrip(a.state())
    assert states_equal(st["model"], a.ema.model.state_dict())  # "model" is what gets evaluated and exported
    assert states_equal(st["live_model"], a.model.state_dict())
    assert not states_equal(st["model"], st["live_model"])
    assert st["ema_updates"] == a.ema.updates == 4

    b = make_trainer(cfg, tmp_path, ds, init_seed=99)
    assert not states_equal(b.eval_model.state_dict(), a.eval_model.state_dict())
    b.restore(st)
    assert states_equal(b.eval_model.state_dict(), a.eval_model.state_dict())
    assert states_equal(b.model.state_dict(), a.model.state_dict())
    assert b.ema.updates == a.ema.updates and b.epoch == 1

    loss_b = b.train_epoch()
    torch.set_rng_state(st["torch_rng"])  # a continues from where its state was taken
    loss_a = a.train_epoch()
    assert loss_a == loss_b
    assert states_equal(b.eval_model.state_dict(), a.eval_model.state_dict())
    assert states_equal(b.model.state_dict(), a.model.state_dict())


def test_without_ema_the_live_model_is_evaluated(tmp_path):
    t = make_trainer(tiny_cfg(), tmp_path)
    assert t.ema is None and t.eval_model is t.model
    assert "live_model" not in t.state()
    assert t.finish_bn() is None


# ---------------------------------------------------------------- distillation targets

@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher")
    train(tiny_cfg(seed=3), run, log=QUIET)
    return run


def slice_images(ds, seed=4, n=200) -> np.ndarray:
    return fdata.subset(ds.train, n, seed).images


def test_build_gives_probabilities_for_every_image(teacher_run, small_ds):
    images = slice_images(small_ds)
    targets = distill.build([teacher_run], images, 2.0)
    probs = targets["probs"]
    assert probs.shape == (200, 10) and (probs >= 0).all()
    torch.testing.assert_close(probs.sum(1), torch.ones(200))
    assert targets["temperature"] == 2.0 and targets["teachers"] == [str(teacher_run)]
    assert targets["images_sha256"] == distill.images_digest(images)


def test_ensemble_probs_averages_the_image_and_its_mirror_at_temperature(teacher_run, small_ds):
    images = slice_images(small_ds)[:50]
    meta = json.loads((teacher_run / "config.json").read_text())
    model = load_model(meta, torch.load(teacher_run / "best.pt"))
    x = to_tensor(images, meta["normalization"]["mean"], meta["normalization"]["std"])
    t = 3.0
    expected = (torch.softmax(predict_logits(model, x) / t, 1) + torch.softmax(predict_logits(model, x.flip(3)) / t, 1)) / 2
    torch.testing.assert_close(distill.ensemble_probs([teacher_run], images, t), expected)
    torch.testing.assert_close(distill.ensemble_probs([teacher_run, teacher_run], images, t), expected)
    entropy = lambda p: -(p * p.log()).sum(1).mean()  # noqa: E731
    assert entropy(distill.ensemble_probs([teacher_run], images, 1.0)) < entropy(expected)


def test_load_targets_refuses_targets_for_other_images(teacher_run, small_ds, tmp_path):
    images = slice_images(small_ds)
    path = tmp_path / "targets.pt"
    torch.save(distill.build([teacher_run], images, 2.0), path)
    assert distill.load_targets(path, images)["probs"].shape == (200, 10)
    with pytest.raises(ValueError, match="computed for other training images"):
        distill.load_targets(path, slice_images(small_ds, seed=5))
    touched = images.copy()
    touched[0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="computed for other training images"):
        distill.load_targets(path, touched)
    with pytest.raises(ValueError, match="computed for other training images"):  # and training refuses them
        train(tiny_cfg(seed=5, distill=str(path)), tmp_path / "student", log=QUIET)
    assert not (tmp_path / "student" / "last.pt").exists()


def test_distill_cli_writes_targets_and_the_ensemble_score(teacher_run, small_ds, tmp_path, monkeypatch, capsys):
    part = fdata.FashionMnist(fdata.subset(small_ds.train, 100, 1), small_ds.val, small_ds.test, small_ds.source_dir)
    monkeypatch.setattr(fdata, "load", lambda *a, **k: part)
    out = tmp_path / "t" / "ensemble.pt"
    distill.main(["--teachers", str(teacher_run), "--out", str(out), "--temperature", "1.5"])
    saved = torch.load(out)
    assert saved["probs"].shape == (100, 10) and saved["temperature"] == 1.5
    assert saved["images_sha256"] == distill.images_digest(part.train.images)
    assert 0 <= saved["val_acc"] <= 1 and 0 <= saved["train_agreement"] <= 1
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "probs" not in printed and printed["val_acc"] == saved["val_acc"]


# ---------------------------------------------------------------- a tiny run with every feature on

EVERYTHING = dict(erase_p=0.5, mix="cutmix", mix_p=1.0, ema_decay=0.9, bf16=True)


@pytest.fixture(scope="module")
def full_run(teacher_run, small_ds, tmp_path_factory):
    root = tmp_path_factory.mktemp("full")
    targets = root / "targets.pt"
    torch.save(distill.build([teacher_run], slice_images(small_ds), 2.0), targets)
    cfg = tiny_cfg(distill=str(targets), **EVERYTHING)
    logs = []
    result = train(cfg, root / "run", log=logs.append)
    return root / "run", cfg, result, logs


def test_a_run_with_every_feature_finishes_and_records_bn_recompute(full_run):
    run, cfg, result, logs = full_run
    assert (run / "final.pt").exists()
    meta = json.loads((run / "config.json").read_text())
    assert meta["train"]["distill"] == cfg.distill and meta["train"]["ema_decay"] == 0.9
    assert meta["train"]["net"]["pool_after"] == [0, 1, 3]
    bn = meta["bn_recomputed"]
    assert set(bn) == {"val_before", "val_after", "kept"} and bn["kept"] == (bn["val_after"] >= bn["val_before"])
    assert any("bn_recomputed" in line for line in logs)
    final = torch.load(run / "final.pt")
    assert final["bn_recomputed"] == bn
    assert "opt" not in final and "live_model" not in final  # slim


def test_the_final_model_is_the_one_that_scored(full_run, small_ds):
    run, cfg, _, _ = full_run
    meta = json.loads((run / "config.json").read_text())
    final = torch.load(run / "final.pt")
    model = load_model(meta, final)
    norm = meta["normalization"]
    acc = accuracy(predict_logits(model, to_tensor(small_ds.val.images, norm["mean"], norm["std"])), small_ds.val.labels)
    bn = meta["bn_recomputed"]
    assert acc == pytest.approx(bn["val_after"] if bn["kept"] else bn["val_before"], abs=1e-5)
    assert final["best_val"] == pytest.approx(acc, abs=1e-6)
    assert states_equal(final["model"], torch.load(run / "best.pt")["model"])  # the EMA, not the live network
    assert not states_equal(final["model"], torch.load(run / "last.pt")["live_model"])


def test_train_returns_the_best_val_of_the_final_model(full_run):
    run, _, result, _ = full_run
    if not json.loads((run / "config.json").read_text())["bn_recomputed"]["kept"]:
        pytest.skip("batch norm statistics not kept: both figures agree")
    assert result["best_val"] == pytest.approx(torch.load(run / "final.pt")["best_val"], abs=1e-6)


def test_a_finished_run_is_not_trained_again(full_run):
    run, cfg, _, _ = full_run
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()}
    logs = []
    again = train(cfg, run, log=logs.append)
    assert again["finished"] and logs == []
    assert again["best_val"] == torch.load(run / "final.pt")["best_val"]
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir()} == before


def test_bn_recompute_off_records_nothing(teacher_run, tmp_path):
    train(tiny_cfg(ema_decay=0.9, bn_recompute=False), tmp_path, log=QUIET)
    assert "bn_recomputed" not in json.loads((tmp_path / "config.json").read_text())
    assert "bn_recomputed" not in torch.load(tmp_path / "final.pt")


def test_an_interrupted_run_resumes_identically(full_run, tmp_path):
    _, full_cfg, _, _ = full_run
    cfg = tiny_cfg(epochs=2, distill=full_cfg.distill, **EVERYTHING)
    train(cfg, tmp_path / "straight", log=QUIET)

    class Stop(Exception):
        pass

    def stop_at_epoch_2(line):
        if json.loads(line).get("epoch") == 2:
            raise Stop  # after epoch 2 trained, before its checkpoint: last.pt holds epoch 1

    with pytest.raises(Stop):
        train(cfg, tmp_path / "resumed", log=stop_at_epoch_2)
    assert torch.load(tmp_path / "resumed" / "last.pt")["epoch"] == 1
    logs = []
    train(cfg, tmp_path / "resumed", log=logs.append)
    assert logs[0].startswith("resumed") and logs[0].endswith("at epoch 1")

    a, b = (torch.load(tmp_path / d / "last.pt") for d in ("straight", "resumed"))
    assert states_equal(a["model"], b["model"]) and states_equal(a["live_model"], b["live_model"])
    assert a["ema_updates"] == b["ema_updates"] == 2 * math.ceil(200 / 32)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    fa, fb = (torch.load(tmp_path / d / "final.pt") for d in ("straight", "resumed"))
    assert states_equal(fa["model"], fb["model"]) and fa["bn_recomputed"] == fb["bn_recomputed"]


def test_cli_flags_reach_the_config(monkeypatch, tmp_path):
    captured = {}
    monkeypatch.setattr(ptrain, "train", lambda cfg, out: captured.update(cfg=cfg, out=out) or {})
    ptrain.main(["--out", str(tmp_path), "--channels", "4", "4", "8", "8", "--pool-after", "0", "1", "3",
                 "--dense", "16", "--erase-p", "0.25", "--mix", "mixup", "--mix-alpha", "0.2", "--mix-p", "0.7",
                 "--ema", "0.99", "--no-bn-recompute", "--distill", "t.pt", "--distill-alpha", "0.4", "--bf16"])
    cfg = captured["cfg"]
    assert (cfg.erase_p, cfg.mix, cfg.mix_alpha, cfg.mix_p) == (0.25, "mixup", 0.2, 0.7)
    assert (cfg.ema_decay, cfg.bn_recompute, cfg.distill, cfg.distill_alpha, cfg.bf16) == (0.99, False, "t.pt", 0.4, True)
    net = CnnConfig.from_dict(cfg.net)
    assert net.conv_channels == (4, 4, 8, 8) and net.pool_after == (0, 1, 3) and net.dense == 16
    assert Cnn(net).flat_features == 8 * 3 * 3  # 28 -> 14 -> 7 -> 3
    ptrain.main(["--out", str(tmp_path)])
    d = captured["cfg"]
    assert (d.erase_p, d.mix, d.ema_decay, d.bn_recompute, d.distill, d.bf16) == (0.0, "none", 0.0, True, None, False)


# ---------------------------------------------------------------- the recipe ladder

def test_finish_writes_the_decisions(tmp_path, capsys):
    rows = [
        {"run": "recipe-arch-wide", "change": "network shape: wide", "epochs": 30, "val": 0.9, "chosen": False},
        {"run": "recipe-arch-deep", "change": "network shape: deep", "epochs": 30, "val": 0.91234, "chosen": True},
        {"run": "recipe-erase", "change": "random erasing p 0.5", "epochs": 30, "val": 0.92, "kept": True},
        {"run": "recipe-ema", "change": "EMA", "epochs": 30, "val": 0.915, "kept": False},
        {"run": "recipe-cutmix", "change": "CutMix", "epochs": 30, "val": None},
        {"run": "baseline2-seed2", "final": True, "seed": 2, "epochs": 60, "val": 0.93},
    ]
    out = recipe.finish(rows, tmp_path / "results")
    assert out == rows
    assert json.loads((tmp_path / "results" / "recipe.json").read_text()) == rows
    md = (tmp_path / "results" / "recipe.md").read_text().splitlines()
    assert md[0].startswith("| run |") and len(md) == 2 + len(rows)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md[2:]]
    assert cells[0] == ["recipe-arch-wide", "network shape: wide", "30", "90.00%", "not kept"]
    assert cells[1] == ["recipe-arch-deep", "network shape: deep", "30", "91.23%", "chosen"]
    assert cells[2][-1] == "kept" and cells[3][-1] == "not kept"
    assert cells[4][3:] == ["not run yet", ""]
    assert cells[5] == ["baseline2-seed2", "final recipe", "60", "93.00%", "final, seed 2"]
    assert "recipe-arch-deep" in capsys.readouterr().out


def no_training(*a, **k):
    raise AssertionError(f"--plan must not start anything: {a}")


def test_plan_on_an_empty_runs_directory_trains_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe.subprocess, "run", no_training)
    runs = tmp_path / "runs"
    runs.mkdir()
    rows = recipe.run_ladder(runs, 30, 60, [1, 2, 3], tmp_path / "results", plan=True)
    assert rows == [{"run": "recipe-arch-wide", "change": "network shape: wide", "epochs": 30, "val": None}]
    assert list(runs.iterdir()) == []
    assert "| recipe-arch-wide | network shape: wide | 30 | not run yet |" in (tmp_path / "results" / "recipe.md").read_text()


def test_plan_reads_finished_runs_and_stops_at_the_first_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(recipe.subprocess, "run", no_training)
    runs = tmp_path / "runs"
    done = runs / "recipe-arch-wide"
    done.mkdir(parents=True)
    (done / "config.json").write_text(json.dumps({"bn_recomputed": {"val_before": 0.5, "val_after": 0.4, "kept": False}}))
    (done / "history.json").write_text(json.dumps([{"val_acc": 0.88}, {"val_acc": 0.9}, {"val_acc": 0.89}]))
    (done / "final.pt").write_bytes(b"")
    recipe.main(["--runs", str(runs), "--results", str(tmp_path / "results"), "--plan"])
    rows = json.loads((tmp_path / "results" / "recipe.json").read_text())
    assert [(r["run"], r["val"]) for r in rows] == [("recipe-arch-wide", 0.9), ("recipe-arch-deep", None)]
    # a kept batch-norm recompute is the run's figure
    (done / "config.json").write_text(json.dumps({"bn_recomputed": {"val_before": 0.9, "val_after": 0.95, "kept": True}}))
    assert recipe.best_val(done) == 0.95


def test_the_ladder_keeps_a_change_only_when_it_beats_the_best(tmp_path, monkeypatch):
    scores = {"recipe-arch-wide": 0.90, "recipe-arch-deep": 0.91, "recipe-erase": 0.92, "recipe-ema": 0.915,
              "recipe-cutmix": 0.93, "recipe-distill": 0.925, "recipe-long": 0.94,
              "baseline2-seed2": 0.935, "baseline2-seed3": 0.936}
    calls, built = [], []
    monkeypatch.setattr(recipe, "train", lambda run, args, seed, epochs: calls.append((run.name, args, seed, epochs))
                        or scores[run.name])
    monkeypatch.setattr(recipe, "teachers", lambda runs, out: built.append((out, len(calls))))
    runs = tmp_path / "runs"
    rows = recipe.run_ladder(runs, 30, 60, [1, 2, 3], tmp_path / "results", plan=False)
    by = {name: (args, seed, epochs) for name, args, seed, epochs in calls}
    teacher_file = str(runs / "teachers" / recipe.TEACHER_FILE)
    assert by["recipe-erase"][0] == recipe.DEEP + ["--erase-p", "0.5"]
    assert by["recipe-ema"][0] == recipe.DEEP + ["--erase-p", "0.5", "--ema", "0.999"]
    assert by["recipe-cutmix"][0] == recipe.DEEP + ["--erase-p", "0.5", "--mix", "cutmix", "--mix-p", "0.5"]  # no EMA
    best = recipe.DEEP + ["--erase-p", "0.5", "--mix", "cutmix", "--mix-p", "0.5"]  # distill not kept
    assert by["recipe-distill"][0] == best + ["--distill", teacher_file]
    assert by["recipe-long"] == (best, 1, 60)
    assert by["baseline2-seed2"] == (best, 2, 60) and by["baseline2-seed3"] == (best, 3, 60)
    assert "baseline2-seed1" not in by  # seed 1 is recipe-long
    assert built == [(runs / "teachers" / recipe.TEACHER_FILE, 5)]  # after the 5 runs before distill, once
    decided = {r["run"]: r.get("chosen", r.get("kept")) for r in rows}
    assert decided == {"recipe-arch-wide": False, "recipe-arch-deep": True, "recipe-erase": True, "recipe-ema": False,
                       "recipe-cutmix": True, "recipe-distill": False, "recipe-long": True,
                       "baseline2-seed1": None, "baseline2-seed2": None, "baseline2-seed3": None}
    seed1 = next(r for r in rows if r["run"] == "baseline2-seed1")
    assert seed1["same_as"] == "recipe-long" and seed1["val"] == 0.94
    assert "final, seed 1" in (tmp_path / "results" / "recipe.md").read_text()
