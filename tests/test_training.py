"""Trainer, FlipTracker and resume, on tiny runs (scikit-learn digits, TFC)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from flipflow.training import checkpoint, models
from flipflow.training import train as training
from flipflow.training.blocks import BNN
from flipflow.training.flips import FlipTracker, channel_flip_scores, histograms, insensitive_portion, tracked_layers


def tiny_model(digits, seed: int = 0) -> BNN:
    return BNN.initialised(models.tfc(digits.input_shape, digits.classes, widths=(32, 32, 32)), seed)


def test_initial_weights_follow_the_seed_only(digits):
    before = torch.random.get_rng_state()
    same, again, other = tiny_model(digits, 3), tiny_model(digits, 3), tiny_model(digits, 4)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's generator is left alone
    for name, w in same.state_dict().items():
        assert torch.equal(w, again.state_dict()[name])
    assert not torch.equal(same.blocks[1].op.weight, other.blocks[1].op.weight)


def test_flip_tracker_counts_sign_changes(digits):
    model = tiny_model(digits)
    tracker = FlipTracker(model)
    assert sorted(tracker.layers) == [0, 1, 2]  # input_dense and two binary_dense; not the output layer
    tracker.start()
    w = model.blocks[1].op.weight
    with torch.no_grad():
        w.data = w.data.abs()  # all +1
        w[0, 0] = -0.5  # one weight goes to -1 ...
    tracker.prev[1].fill_(True)
    tracker.sample()
    with torch.no_grad():
        w[0, 0] = 0.0  # ... and back (sign(0) = +1)
        w[3, :] = -1.0  # a whole row flips once
    tracker.sample()
    counts = tracker.numpy_counts()[1]
    assert counts[0, 0] == 2 and (counts[3] == 1).all() and counts.sum() == 2 + counts.shape[1]
    assert tracker.samples == 2
    p = insensitive_portion({1: counts}, tau=0)[1]
    assert p == pytest.approx((1 + counts.shape[1]) / counts.size)
    assert insensitive_portion({1: counts}, tau=1)[1] == pytest.approx(1 / counts.size)
    scores = channel_flip_scores(counts)
    assert scores.argmax() == 3 and scores[0] == pytest.approx(2 / counts.shape[1])
    assert histograms({1: counts})[1][:3] == [counts.size - 1 - counts.shape[1], counts.shape[1], 1]


def test_insensitive_portion_thresholds():
    counts = {4: np.array([[0, 1, 2, 3], [0, 0, 5, 1]])}
    assert insensitive_portion(counts, 0)[4] == pytest.approx(5 / 8)
    assert insensitive_portion(counts, 1)[4] == pytest.approx(3 / 8)
    assert insensitive_portion(counts, 5)[4] == 0.0


def test_every_prunable_layer_is_tracked_the_bit_plane_input_too(fashion):
    """Flip pruning orders every prunable layer's channels by its flips: a bit-plane first layer
    (prunable like the 8-bit one) must have counts, or the flip rule cannot prune it."""
    from flipflow.training import models, prune
    from flipflow.training.blocks import BNN

    arch = models.with_bit_planes(models.nin(fashion.input_shape, fashion.classes, widths=(12, 10, 8, 10, 10, 10, 10, 10)),
                                  (7, 6, 5, 4))
    model = BNN(arch)
    assert set(tracked_layers(model)) == set(prune.prunable(arch)) and 0 in tracked_layers(model)
    tracker = FlipTracker(model)
    tracker.start()
    with torch.no_grad():
        model.blocks[0].op.weight[:3].neg_()  # the first three channels' signs flip (no weight is exactly 0)
    tracker.sample()
    counts = tracker.numpy_counts()
    assert counts[0][:3].all() and not counts[0][3:].any()
    keep = prune.keep_sets(model, {0: 9}, "flip", counts)
    assert keep[0].tolist() == list(range(3, 12))  # the flipping channels go first


def test_training_learns_tracks_flips_and_logs(digits, tmp_path):
    model = tiny_model(digits)
    cfg = training.TrainConfig(epochs=3, batch_size=64, lr=3e-3, lr_steps=[2], flip_epochs=2, flip_sample="step")
    result = training.train(model, cfg, digits.train, digits.test, tmp_path)
    log = json.loads((tmp_path / "log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2, 3] and log[-1]["lr"] == pytest.approx(3e-4)
    assert [r["flip_tracking"] for r in log] == [False, True, True]
    assert log[-1]["test_accuracy"] > 0.6  # 10 classes: chance is 0.1
    steps = -(-len(digits.train) // 64)
    assert result["flips"].samples == 2 * steps
    _, payload = checkpoint.load(tmp_path / "checkpoint.pt")
    counts = training.load_flip_counts(payload)
    assert set(counts) == set(tracked_layers(model)) and sum(int(c.sum()) for c in counts.values()) > 0
    assert max(c.max() for c in counts.values()) <= 2 * steps
    # accuracy from integer scores equals the float model's argmax (same ties: lowest index)
    scores = training.integer_scores(model, digits.test.images)
    assert scores.dtype == np.int64 and training.accuracy(model, digits.test) == pytest.approx(log[-1]["test_accuracy"])


def test_epoch_sampling_counts_once_per_epoch(digits, tmp_path):
    cfg = training.TrainConfig(epochs=2, batch_size=128, flip_epochs=2, flip_sample="epoch")
    result = training.train(tiny_model(digits), cfg, digits.train, digits.test, tmp_path)
    assert result["flips"].samples == 2
    assert max(int(c.max()) for c in result["flips"].numpy_counts().values()) <= 2


class Killed(Exception):
    pass


def test_resume_after_kill_matches_uninterrupted_run(digits, tmp_path, monkeypatch):
    cfg = training.TrainConfig(epochs=3, batch_size=64, lr=2e-3, lr_steps=[2], flip_epochs=2)
    full = tiny_model(digits)
    training.train(full, cfg, digits.train, digits.test, tmp_path / "full")

    calls = {"n": 0}
    real_clip = training.clip_latent

    def clip_then_die(model):  # the process dies in the middle of epoch 2
        calls["n"] += 1
        if calls["n"] == 30:
            raise Killed
        real_clip(model)

    monkeypatch.setattr(training, "clip_latent", clip_then_die)
    with pytest.raises(Killed):
        training.train(tiny_model(digits), cfg, digits.train, digits.test, tmp_path / "killed")
    _, payload = checkpoint.load(tmp_path / "killed" / "checkpoint.pt")
    assert payload["epoch"] == 1  # only the epoch in flight was lost
    monkeypatch.setattr(training, "clip_latent", real_clip)
    resumed = tiny_model(digits, seed=123)  # weights come from the checkpoint, not from this init
    training.train(resumed, cfg, digits.train, digits.test, tmp_path / "killed", resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    _, p_full = checkpoint.load(tmp_path / "full" / "checkpoint.pt")
    _, p_res = checkpoint.load(tmp_path / "killed" / "checkpoint.pt")
    for i, c in training.load_flip_counts(p_full).items():
        np.testing.assert_array_equal(c, training.load_flip_counts(p_res)[i])


def test_resume_refuses_a_different_schedule(digits, tmp_path):
    training.train(tiny_model(digits), training.TrainConfig(epochs=1), digits.train, digits.test, tmp_path)
    with pytest.raises(ValueError, match="different training configuration"):
        training.train(tiny_model(digits), training.TrainConfig(epochs=2), digits.train, digits.test, tmp_path, resume=True)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="flip_sample"):
        training.TrainConfig(flip_sample="batch").check()
    with pytest.raises(ValueError, match="flip_epochs"):
        training.TrainConfig(epochs=2, flip_epochs=3).check()


def test_distillation_pulls_the_student_to_the_teacher(digits, tmp_path):
    """Pure distillation (weight 1: the labels play no part) from a teacher trained on shifted
    labels (class c called c + 1) makes an untrained student agree with the teacher, not with
    the true labels it is given."""
    shifted = lambda split: dataclasses.replace(split, labels=(split.labels + 1) % 10)  # noqa: E731
    teacher = tiny_model(digits, seed=1)
    training.train(teacher, training.TrainConfig(epochs=3, batch_size=64, lr=3e-3, flip_epochs=0), shifted(digits.train),
                   shifted(digits.test), tmp_path / "teacher")
    student = tiny_model(digits, seed=2)
    predicted = lambda model: training.integer_scores(model, digits.test.images).argmax(1)  # noqa: E731
    before = float((predicted(student) == predicted(teacher)).mean())
    cfg = training.TrainConfig(epochs=3, batch_size=64, lr=3e-3, flip_epochs=0, distill_weight=1.0, distill_temperature=2.0)
    training.train(student, cfg, digits.train, digits.test, tmp_path / "student", teacher=teacher)
    agree, true = (float((predicted(student) == y).mean()) for y in (predicted(teacher), digits.test.labels))
    assert before < 0.3 and agree > 0.5 and true < 0.2  # chance is about 0.1
    assert "distill_loss" in json.loads((tmp_path / "student" / "log.json").read_text())[-1]
    with pytest.raises(training.TrainingError, match="without a teacher"):
        training.train(tiny_model(digits), cfg, digits.train, digits.test, tmp_path / "none")
    with pytest.raises(training.TrainingError, match="teacher is the model"):
        training.train(student, cfg, digits.train, digits.test, tmp_path / "self", teacher=student)


def test_distillation_loss_is_zero_only_at_the_teacher():
    teacher = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, 1.0]])
    assert training.distillation_loss(teacher, teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    # softmax ignores a shift per row; any other change costs, T^2-scaled
    assert training.distillation_loss(teacher + torch.tensor([[5.0], [-2.0]]), teacher, 4.0).item() == pytest.approx(0.0, abs=1e-6)
    assert training.distillation_loss(teacher.flip(1), teacher, 4.0).item() > 0.01
    with pytest.raises(ValueError, match="distillation weight"):
        training.TrainConfig(distill_weight=1.5).check()
