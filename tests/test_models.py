"""Models: shapes, serialisation, train steps under every precision and XLA, safe loading."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfdenoise import checkpoints, hardware, losses, metrics, models
from tfdenoise.config import FitConfig
from tfdenoise.degradations import catalog

SMALL = (8, 16)


@pytest.fixture(autouse=True)
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def batches(size=32, batch=4):
    clean = tf.cast(tf.random.stateless_uniform([batch, size, size, 3], [1, 2], 0, 255), tf.uint8)
    return tf.data.Dataset.from_tensors({"clean": clean}).repeat()


def fit(model, dataset, **kwargs):
    return model.fit(dataset, verbose=0, shuffle=False, **kwargs).history


def compiled(model, precision="float32", xla=False, noise_name="gaussian", lr=1e-3):
    plan = hardware.HardwarePlan("cpu", precision, "test", xla, "test")
    optimizer = keras.optimizers.Adam(lr)
    if plan.precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer,
        loss=losses.build_loss("l1"),
        metrics=[keras.metrics.MeanMetricWrapper(metrics.psnr, name="psnr")],
        noise=catalog.build_noise(noise_name),
        jit_compile=xla,
    )
    return model


@pytest.mark.parametrize("name", ["unet", "prototype", "seed"])
def test_any_input_size_gives_the_same_size(name):
    model = models.built(models.build_model(name, widths=SMALL))
    for shape in [(1, 37, 51, 3), (2, 8, 8, 3), (1, 1, 3, 3)]:
        assert model(tf.zeros(shape)).shape == shape


@pytest.mark.parametrize("name", ["unet", "prototype", "seed"])
def test_save_load_gives_identical_outputs(tmp_path, name):
    model = models.built(models.build_model(name, widths=SMALL))
    fit(compiled(model), batches(), steps_per_epoch=2, epochs=1)
    inputs = np.random.default_rng(0).random((2, 40, 24, 3), dtype=np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = checkpoints.load_model(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_uint8_and_float_inputs_mean_the_same_image():
    model = models.built(models.UNet(widths=SMALL))
    image = np.random.default_rng(1).integers(0, 256, (1, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(model(image).numpy(), model(image / 255.0).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "precision,xla",
    [
        ("float32", False),
        ("mixed_bfloat16", False),
        ("mixed_float16", False),
        ("float32", True),
    ],
)
def test_train_step_runs_under_each_precision_and_xla(precision, xla):
    keras.mixed_precision.set_global_policy(precision)
    model = compiled(models.built(models.UNet(widths=SMALL)), precision, xla)
    if precision == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    conv = model.encoder_blocks[0].layers[0]
    assert conv.compute_dtype == {"mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}.get(
        precision, "float32"
    )
    history = fit(model, batches(), steps_per_epoch=3, epochs=1)
    assert np.isfinite(history["loss"][0]) and history["psnr"][0] > 5
    assert model(tf.zeros([1, 16, 16, 3])).dtype == tf.float32  # output head stays float32


def test_training_reduces_the_loss_on_a_learnable_task():
    keras.utils.set_random_seed(0)
    flat = tf.fill([8, 32, 32, 3], tf.constant(128, tf.uint8))
    dataset = tf.data.Dataset.from_tensors({"clean": flat}).repeat()
    model = compiled(models.built(models.UNet(widths=SMALL)), lr=3e-3)
    history = fit(model, dataset, steps_per_epoch=40, epochs=4)
    assert history["loss"][3] < history["loss"][0] * 0.75


def test_the_train_step_is_traced_once_per_fit():
    """Optimizer and metric state exist before the first trace: a tf.function that creates
    variables while tracing is traced twice, and the train step (with its degradation graph)
    is the slowest trace of a run."""
    traces = []

    def noise(clean, seed):
        traces.append(seed)  # Python runs only while tracing
        return clean + 0.05 * tf.random.stateless_normal(tf.shape(clean), seed)

    model = models.built(models.UNet(widths=SMALL))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mae", noise=noise)
    assert not model.optimizer.built
    fit(model, batches(), steps_per_epoch=2, epochs=2)
    assert len(traces) == 1
    assert model.optimizer.iterations.numpy() == 4


def test_training_noise_is_fresh_every_step():
    model = compiled(models.built(models.UNet(widths=SMALL)))
    first = model._training_seed().numpy()
    second = model._training_seed().numpy()
    assert not np.array_equal(first, second)


def test_test_step_noise_is_fixed_by_index():
    model = compiled(models.built(models.UNet(widths=SMALL)))
    clean = tf.cast(tf.random.stateless_uniform([4, 16, 16, 3], [1, 1], 0, 255), tf.uint8)
    data = tf.data.Dataset.from_tensors({"clean": clean, "index": tf.range(4, dtype=tf.int64)})
    first = model.evaluate(data, verbose=0, return_dict=True)
    second = model.evaluate(data, verbose=0, return_dict=True)
    assert first == second


def test_plan_choices():
    bf16 = frozenset({"avx512_bf16"})
    assert hardware.choose_precision("auto", 1, bf16)[0] == "mixed_float16"
    assert hardware.choose_precision("auto", 0, bf16)[0] == "mixed_bfloat16"
    # the reason tells users how much to expect: AMX tiles ~6x, AVX512-BF16 alone ~1.6x
    assert "~1.6x" in hardware.choose_precision("auto", 0, bf16)[1]
    assert "~6x" in hardware.choose_precision("auto", 0, bf16 | {"amx_bf16"})[1]
    assert hardware.choose_precision("auto", 0, frozenset({"avx2"}))[0] == "float32"
    assert hardware.choose_precision("float32", 1, bf16)[0] == "float32"
    assert hardware.choose_xla("auto", 2)[0] is True
    assert hardware.choose_xla("auto", 0)[0] is False
    assert hardware.choose_xla("on", 0)[0] is True


def test_xla_with_several_cpu_workers_is_refused_up_front():
    """TF cannot compile cross-worker collectives on CPUs: fit must say so before training,
    not crash at the first step (seen: UnimplementedError, then 'double free' and SIGABRT)."""
    xla_cpu = hardware.HardwarePlan("cpu", "float32", "test", True, "requested")
    with pytest.raises(ValueError, match="xla off"):
        hardware.check_xla(xla_cpu, workers=2)
    hardware.check_xla(xla_cpu, workers=1)
    hardware.check_xla(
        hardware.HardwarePlan("gpu", "mixed_float16", "test", True, "auto"), workers=2
    )
    hardware.check_xla(hardware.HardwarePlan("cpu", "float32", "test", False, "auto"), workers=2)


def test_lambda_layer_models_are_refused(tmp_path):
    inputs = keras.Input((8, 8, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(checkpoints.ModelLoadError, match="safe mode"):
        checkpoints.load_model(path)


def test_non_model_files_are_refused(tmp_path):
    text = tmp_path / "model.keras"
    text.write_text("not a zip")
    with pytest.raises(checkpoints.ModelLoadError, match="not a zip archive"):
        checkpoints.load_model(text)
    truncated = tmp_path / "truncated.keras"  # an interrupted copy of a real model
    truncated.write_bytes(checkpoints.PRETRAINED.read_bytes()[:100_000])
    with pytest.raises(checkpoints.ModelLoadError, match="truncated"):
        checkpoints.load_model(truncated)
    with pytest.raises(checkpoints.ModelLoadError, match="not found"):
        checkpoints.load_model(tmp_path / "missing.keras")


def test_unknown_classes_are_refused_with_a_clear_message(tmp_path):
    import json
    import zipfile

    good = tmp_path / "good.keras"
    models.built(models.UNet(widths=SMALL)).save(good)
    evil = tmp_path / "evil.keras"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(evil, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                config["class_name"] = "RunsShellCommands"
                config["module"] = "somewhere.untrusted"
                config["registered_name"] = "untrusted>RunsShellCommands"
                data = json.dumps(config).encode()
            target.writestr(item, data)
    with pytest.raises(checkpoints.ModelLoadError, match="cannot load model"):
        checkpoints.load_model(evil)


def test_psnr_loss_is_the_negative_per_image_psnr_floored_at_50_db():
    clean = tf.random.stateless_uniform([3, 16, 16, 3], [4, 5], 0.2, 0.8)
    offsets = tf.reshape(tf.constant([0.1, 0.01, 0.0]), [3, 1, 1, 1])
    loss = losses.negative_psnr(clean, clean + offsets).numpy()
    expected = [10 * np.log10(mse + losses.PSNR_LOSS_FLOOR) for mse in (1e-2, 1e-4, 0.0)]
    np.testing.assert_allclose(loss, expected, atol=0.01)
    assert abs(loss[0] + 20.0) < 0.01  # far above the floor: exactly -PSNR
    assert abs(loss[2] + 50.0) < 0.01  # identical: the floor, not -inf
    assert losses.build_loss("psnr") is losses.negative_psnr


def test_psnr_loss_with_a_lower_cap_saturates_there_and_round_trips_its_config():
    clean = tf.random.stateless_uniform([3, 16, 16, 3], [4, 5], 0.2, 0.8)
    offsets = tf.reshape(tf.constant([0.1, 0.003, 0.0]), [3, 1, 1, 1])
    capped = losses.build_loss("psnr", 40.0)
    assert isinstance(capped, losses.NegativePSNR) and capped.cap_db == 40.0
    per_image = capped.call(clean, clean + offsets).numpy()
    default = losses.negative_psnr(clean, clean + offsets).numpy()
    assert abs(per_image[0] - default[0]) < 0.05  # 20 dB, far above both caps: ~-PSNR
    assert abs(per_image[2] + 40.0) < 0.01 and abs(default[2] + 50.0) < 0.01
    # 50.5 dB restored: near the 40 dB cap it earns ~0.4 dB, under the 50 dB cap ~3 dB more
    assert per_image[1] > -40.0 and per_image[1] - default[1] > 2.5
    assert abs(float(capped(clean, clean + offsets)) - per_image.mean()) < 1e-4  # batch mean
    restored = keras.losses.deserialize(keras.losses.serialize(capped))
    assert isinstance(restored, losses.NegativePSNR) and restored.cap_db == 40.0


def test_fit_config_psnr_cap_defaults_to_the_old_loss_and_is_checked():
    assert FitConfig.from_dict({"loss": "psnr"}).psnr_cap == losses.PSNR_LOSS_CAP_DB
    with pytest.raises(ValueError, match="psnr_cap"):
        FitConfig(psnr_cap=5.0).validate()


def test_psnr_loss_weighs_faint_noise_images_as_much_as_heavy_ones():
    """Halving one image's error lowers the loss by the same 6 dB whatever its size; an MSE
    mean would barely notice the faint image's improvement."""
    clean = tf.fill([2, 8, 8, 3], 0.5)
    errors = tf.reshape(tf.constant([0.2, 0.05]), [2, 1, 1, 1])
    better_faint = errors * tf.reshape(tf.constant([1.0, 0.5]), [2, 1, 1, 1])
    better_heavy = errors * tf.reshape(tf.constant([0.5, 1.0]), [2, 1, 1, 1])
    base = losses.negative_psnr(clean, clean + errors).numpy().sum()
    gain_faint = base - losses.negative_psnr(clean, clean + better_faint).numpy().sum()
    gain_heavy = base - losses.negative_psnr(clean, clean + better_heavy).numpy().sum()
    assert abs(gain_faint - gain_heavy) < 0.1 and gain_faint > 5.8


def test_psnr_metric_is_capped_so_one_exact_patch_cannot_make_an_epoch_infinite():
    clean = tf.random.stateless_uniform([2, 16, 16, 3], [6, 7], 0.2, 0.8)
    outputs = tf.concat([clean[:1], clean[1:] + 0.1], axis=0)  # first restored exactly
    scores = metrics.psnr(clean, outputs).numpy()
    assert scores[0] == metrics.PSNR_CAP
    assert abs(scores[1] - 20.0) < 0.01
    metric = keras.metrics.MeanMetricWrapper(metrics.psnr, name="psnr")
    metric.update_state(clean, outputs)
    assert np.isfinite(float(metric.result()))


def test_residual_blocks_are_saved_loaded_and_train_under_mixed_precision(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = compiled(models.built(models.UNet(widths=SMALL, blocks=(1, 2))), "mixed_bfloat16")
    assert [len(level) for level in model.residual_blocks] == [1, 2]
    history = fit(model, batches(), steps_per_epoch=3, epochs=1)
    assert np.isfinite(history["loss"][0])
    trained = model.residual_blocks[1][1].outer.kernel.numpy()
    assert np.abs(trained).max() > 0  # the zero-initialised conv learns
    path = tmp_path / "blocks.keras"
    model.save(path)
    loaded = checkpoints.load_model(path, policy="mixed_bfloat16")
    assert loaded.blocks == (1, 2)
    inputs = np.random.default_rng(2).random((1, 24, 40, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_a_grown_unet_starts_with_exactly_the_trained_models_outputs():
    trained = compiled(models.built(models.UNet(widths=SMALL, blocks=(0, 1))))
    fit(trained, batches(), steps_per_epoch=3, epochs=1)  # non-trivial weights, block included
    grown = models.built(models.UNet(widths=SMALL, blocks=(1, 2)))
    models.copy_weights(trained, grown)
    inputs = np.random.default_rng(3).random((2, 32, 48, 3), dtype=np.float32)
    np.testing.assert_allclose(grown(inputs).numpy(), trained(inputs).numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        grown.residual_blocks[1][0].get_weights()[0], trained.residual_blocks[1][0].get_weights()[0]
    )
    assert len(grown.weights) > len(trained.weights)


@pytest.mark.parametrize("widths,blocks", [((8, 16), (0, 0)), ((8, 32), (0, 1))])
def test_growing_refuses_fewer_blocks_or_other_widths(widths, blocks):
    source = models.built(models.UNet(widths=(8, 16), blocks=(0, 1)))
    target = models.built(models.UNet(widths=widths, blocks=blocks))
    with pytest.raises(ValueError, match="architecture"):
        models.copy_weights(source, target)


def test_blocks_need_one_count_per_level():
    with pytest.raises(ValueError, match="one count"):
        models.UNet(widths=(8, 16), blocks=(1,))
    assert models.UNet(widths=(8, 16)).blocks == (0, 0)


@pytest.mark.parametrize("size", [(1, 1), (17, 30), (32, 32)])
def test_an_unshuffled_unet_with_a_zero_head_passes_any_size_through_exactly(size):
    model = models.built(models.UNet(widths=SMALL, blocks=(0, 1), unshuffle=2))
    assert model.stride == 4  # 2x2 blocks, then one 2x downsampling
    kernel, bias = model.head.get_weights()
    assert kernel.shape == (1, 1, SMALL[0], 12)  # a noise value per pixel of each 2x2 block
    model.head.set_weights([np.zeros_like(kernel), np.zeros_like(bias)])
    inputs = np.random.default_rng(4).random((2, *size, 3), dtype=np.float32)
    np.testing.assert_array_equal(model(inputs).numpy(), inputs)


def test_the_unshuffled_heads_values_land_on_their_own_pixels():
    model = models.built(models.UNet(widths=SMALL, unshuffle=2))
    kernel, bias = model.head.get_weights()
    bias = np.zeros_like(bias)
    bias[3 * 3 + 1] = 0.5  # depth_to_space order: block row 1, column 1, green
    model.head.set_weights([np.zeros_like(kernel), bias])
    out = model(np.ones((1, 4, 6, 3), np.float32)).numpy()[0]
    expected = np.ones((4, 6, 3), np.float32)
    expected[1::2, 1::2, 1] = 0.5
    np.testing.assert_array_equal(out, expected)


def test_an_unshuffled_unet_trains_under_mixed_precision_and_round_trips(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = models.built(models.UNet(widths=SMALL, blocks=(0, 1), unshuffle=2))
    model = compiled(model, "mixed_bfloat16")
    history = fit(model, batches(), steps_per_epoch=3, epochs=1)
    assert np.isfinite(history["loss"][0])
    path = tmp_path / "unshuffled.keras"
    model.save(path)
    loaded = checkpoints.load_model(path, policy="mixed_bfloat16")
    assert (loaded.unshuffle, loaded.stride, loaded.blocks) == (2, 4, (0, 1))
    inputs = np.random.default_rng(5).random((1, 22, 38, 3), dtype=np.float32)
    np.testing.assert_array_equal(loaded(inputs).numpy(), model(inputs).numpy())


def test_dropping_the_top_level_keeps_every_weight_below_it():
    trained = compiled(models.built(models.UNet(widths=(8, 16, 32), blocks=(1, 0, 2))))
    fit(trained, batches(), steps_per_epoch=3, epochs=1)
    student = models.built(models.UNet(widths=(16, 32), blocks=(0, 2), unshuffle=2))
    models.copy_weights(trained, student)

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights()))

    assert same(student.encoder_blocks[0].layers[1], trained.encoder_blocks[1].layers[1])
    assert same(student.encoder_blocks[1], trained.encoder_blocks[2])
    assert same(student.upsamplers[0], trained.upsamplers[1])
    assert same(student.decoder_blocks[0], trained.decoder_blocks[1])
    for got, want in zip(student.residual_layers, trained.residual_layers[1:], strict=True):
        assert same(got, want)
    # the two new layers: the first conv reads 12 unshuffled values, the head writes 12
    assert student.encoder_blocks[0].layers[0].kernel.shape == (3, 3, 12, 16)
    assert student.head.kernel.shape == (1, 1, 16, 12)
    # the kept lower levels compute what they did in the trained model
    features = np.random.default_rng(6).random((1, 8, 8, 16), dtype=np.float32)
    np.testing.assert_array_equal(
        student.encoder_blocks[1](features).numpy(), trained.encoder_blocks[2](features).numpy()
    )


@pytest.mark.parametrize(
    "widths,blocks,unshuffle",
    [
        ((16, 32), (0, 2), 4),
        ((16, 64), (0, 2), 2),
        ((16, 32), (0, 1), 2),
        ((8, 16, 32), (1, 0, 2), 2),
    ],
)
def test_dropping_the_top_level_refuses_anything_but_the_lower_levels(widths, blocks, unshuffle):
    trained = models.built(models.UNet(widths=(8, 16, 32), blocks=(1, 0, 2)))
    student = models.built(models.UNet(widths=widths, blocks=blocks, unshuffle=unshuffle))
    with pytest.raises(ValueError, match="architecture"):
        models.copy_weights(trained, student)


def test_unshuffle_must_be_positive():
    with pytest.raises(ValueError, match="unshuffle"):
        models.UNet(widths=SMALL, unshuffle=0)


def test_condition_scorer_traces_once_and_scores_the_current_weights():
    """fit scores the validation images every epoch: the step must be compiled once for the
    run (every condition and the short last batch included), yet see the weights of the moment
    (the --ema average is swapped in before scoring)."""
    model = models.built(models.build_model("unet", widths=SMALL))
    clean = tf.cast(tf.random.stateless_uniform([3, 24, 24, 3], [3, 4], 0, 255), tf.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(clean).enumerate()
    dataset = dataset.map(lambda index, image: {"clean": image, "index": index}).batch(2)
    conditions = {name: catalog.ALL_CONDITIONS[name] for name in ("gaussian-25", "jpeg-30")}
    scorer = metrics.ConditionScorer(model, conditions)

    first = scorer(dataset)
    step = scorer.step
    for variable in model.trainable_variables:
        variable.assign(variable * 0.5 + 0.01)
    second = scorer(dataset)

    assert scorer.step is step and step.experimental_get_tracing_count() == 1
    assert first["gaussian-25"].psnr_denoised != second["gaussian-25"].psnr_denoised
    fresh = metrics.evaluate_conditions(model, dataset, conditions)
    for name in conditions:
        assert first[name].psnr_noisy == second[name].psnr_noisy  # the same seeded noise
        assert fresh[name].psnr_denoised == pytest.approx(second[name].psnr_denoised, abs=1e-4)
        assert first[name].images == 3


def test_condition_scorer_picks_each_conditions_own_seeded_noise():
    """The one step selects the noise by the condition's place and seeds it by its number: the
    scores equal the condition applied directly, and a condition scored alone under its
    number sees the noise it sees in the longer list."""
    model = models.built(models.build_model("unet", widths=SMALL))
    clean = tf.cast(tf.random.stateless_uniform([2, 24, 24, 3], [5, 6], 0, 255), tf.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(clean).enumerate()
    dataset = dataset.map(lambda index, image: {"clean": image, "index": index}).batch(2)
    names = ("gaussian-15", "gaussian-50", "jpeg-30")
    conditions = {name: catalog.ALL_CONDITIONS[name] for name in names}

    together = metrics.ConditionScorer(model, conditions)(dataset)
    alone = metrics.ConditionScorer(model, {"jpeg-30": conditions["jpeg-30"]}, {"jpeg-30": 2})(
        dataset
    )

    unit = models.to_unit_float(clean)
    for number, name in enumerate(names):
        noisy = conditions[name](unit, metrics.condition_seed(0, number))
        expected = float(tf.reduce_mean(metrics.psnr(unit, noisy)))
        assert together[name].psnr_noisy == pytest.approx(expected, abs=1e-4)
    assert together["gaussian-15"].psnr_noisy > together["gaussian-50"].psnr_noisy + 8
    assert alone["jpeg-30"].psnr_noisy == together["jpeg-30"].psnr_noisy
