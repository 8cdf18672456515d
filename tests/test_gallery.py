import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import Pipeline

from mtlestimators import GalleryEmbedder
from mtlestimators.datasets import make_digit_galleries
from mtlestimators.gallery._backbone import build_encoder, small_vgg

FAST = {"backbone": "small_vgg", "image_size": 16, "lr": 1e-3, "verbose": 0}


def _galleries(n=40, size=12, seed=0):
    rng = np.random.RandomState(seed)
    galleries = [
        rng.randint(0, 256, size=(k, size, size), dtype=np.uint8)
        for k in rng.randint(1, 6, size=n)
    ]
    y = np.column_stack(
        [rng.randint(0, 2, n), rng.randint(0, 3, n), rng.normal(size=n)]
    )
    return galleries, y


@pytest.fixture(scope="module")
def digits():
    train = make_digit_galleries(
        300, source="sklearn", subset="train", missing_rate=0.1, random_state=0
    )
    test = make_digit_galleries(150, source="sklearn", subset="test", random_state=1)
    return train, test


@pytest.fixture(scope="module")
def fitted(digits):
    train, _ = digits
    embedder = GalleryEmbedder(
        max_epochs=15, random_state=0, **{**FAST, "image_size": 8}
    )
    return embedder.fit(train.galleries, train.target)


# ------------------------------------------------------------------ learning
def test_learns_every_training_task_better_than_a_trivial_baseline(digits, fitted):
    train, test = digits
    pred = fitted.predict_tasks(test.galleries)
    truth = test.target
    for task in ("contains_3", "contains_8", "most_frequent"):
        majority = truth[task].value_counts(normalize=True).max()
        accuracy = np.mean(pred[task].to_numpy() == truth[task].to_numpy())
        assert accuracy > majority + 0.1, (task, accuracy, majority)
    mse = np.mean((pred["mean_digit"] - truth["mean_digit"]) ** 2)
    baseline = np.mean((train.target["mean_digit"].mean() - truth["mean_digit"]) ** 2)
    assert mse < 0.5 * baseline


def test_frozen_embedder_feeds_a_probe_on_the_hold_out_task(digits, fitted):
    train, test = digits
    probe = Pipeline(
        [
            ("embed", FrozenEstimator(fitted)),
            ("probe", LogisticRegression(max_iter=2000)),
        ]
    )
    grid = GridSearchCV(probe, {"probe__C": [0.1, 10.0]}, cv=3).fit(
        train.galleries, train.holdout
    )
    majority = test.holdout.value_counts(normalize=True).max()
    assert grid.score(test.galleries, test.holdout) > majority + 0.1
    assert grid.best_estimator_["embed"].estimator is fitted  # never refit


def test_grid_search_over_embedder_parameters():
    galleries, y = _galleries(48)
    grid = GridSearchCV(
        GalleryEmbedder(max_epochs=1, random_state=0, **FAST),
        {"pooling": ["mean", "attention"]},
        cv=KFold(2, shuffle=True, random_state=0),
    ).fit(galleries, y)
    assert grid.best_params_["pooling"] in ("mean", "attention")
    assert np.isfinite(grid.cv_results_["mean_test_score"]).all()


# ------------------------------------------------------------------- outputs
def test_transform_is_float32_with_named_features(fitted, digits):
    _, test = digits
    Z = fitted.transform(test.galleries[:5])
    assert Z.dtype == np.float32 and Z.shape == (5, fitted.embedding_dim_)
    names = fitted.get_feature_names_out()
    assert len(names) == fitted.embedding_dim_ and names[0] == "galleryembedder0"


def test_fit_transform_equals_fit_then_transform():
    galleries, y = _galleries()
    a = GalleryEmbedder(max_epochs=2, random_state=0, **FAST).fit_transform(
        galleries, y
    )
    b = GalleryEmbedder(max_epochs=2, random_state=0, **FAST).fit(galleries, y)
    np.testing.assert_array_equal(a, b.transform(galleries))


def test_predict_tasks_returns_labels_in_each_tasks_classes():
    galleries, y = _galleries()
    frame = pd.DataFrame(
        {
            "kind": np.array(["hotel", "flat", "villa"])[y[:, 1].astype(int)],
            "pool": y[:, 0].astype(bool),
            "price": y[:, 2],
        }
    )
    emb = GalleryEmbedder(max_epochs=2, random_state=0, **FAST).fit(galleries, frame)
    pred = emb.predict_tasks(galleries)
    assert list(pred.columns) == ["kind", "pool", "price"]
    assert set(pred["kind"]) <= {"hotel", "flat", "villa"}
    assert pred["pool"].dtype == bool and pred["price"].dtype == float
    assert [s.kind for s in emb.task_specs_] == ["multiclass", "binary", "regression"]


def test_tasks_parameter_overrides_the_inferred_kind():
    galleries, y = _galleries()
    emb = GalleryEmbedder(
        max_epochs=1, random_state=0, tasks={"task_1": "regression"}, **FAST
    ).fit(galleries, y)
    assert [s.kind for s in emb.task_specs_] == ["binary", "regression", "regression"]


# -------------------------------------------------------------- loss weights
def test_pseudo_uniform_weights_are_one_over_each_regression_variance():
    galleries, y = _galleries()
    y = np.column_stack([y, 10 * y[:, 2] + 3])
    y[:5, 3] = np.nan  # the variance is over the labelled rows
    emb = GalleryEmbedder(max_epochs=1, random_state=0, **FAST).fit(galleries, y)
    expected = [
        1.0,
        1.0,
        1 / np.var(y[:, 2], ddof=1),
        1 / np.nanvar(y[:, 3], ddof=1),
    ]
    np.testing.assert_allclose(
        emb.net_.loss_weighter_.scale.numpy(), expected, rtol=1e-5
    )


def test_uncertainty_weighting_learns_its_log_variances():
    galleries, y = _galleries()
    emb = GalleryEmbedder(
        loss_weighter="uncertainty", max_epochs=3, random_state=0, **FAST
    ).fit(galleries, y)
    log_variance = emb.net_.loss_weighter_.log_variance.detach().numpy()
    assert np.all(np.abs(log_variance) > 1e-3)
    assert emb.net_.loss_weighter_.factor.tolist() == [1.0, 1.0, 0.5]


# ------------------------------------------------------------------- inputs
def _gray_gallery(seed=0, k=3, size=10):
    return np.random.RandomState(seed).randint(
        0, 256, size=(k, size, size), dtype=np.uint8
    )


def test_every_input_form_gives_the_same_embedding(tmp_path):
    galleries, y = _galleries()
    emb = GalleryEmbedder(max_epochs=1, random_state=0, **FAST).fit(galleries, y)
    gallery = _gray_gallery()
    paths = []
    for j, image in enumerate(gallery):
        paths.append(tmp_path / f"img{j}.png")
        Image.fromarray(image).save(paths[-1])
    forms = {
        "uint8 list": [list(gallery)],
        "stacked array": [gallery],
        "float [0, 1]": [[image / 255.0 for image in gallery]],
        "rgb": [[np.repeat(image[:, :, None], 3, axis=2) for image in gallery]],
        "pil": [[Image.fromarray(image) for image in gallery]],
        "paths": [[str(p) for p in paths]],
        "pathlib": [paths],
        "fixed-size array": gallery[None],
    }
    reference = emb.transform(forms["uint8 list"])
    for name, X in forms.items():
        np.testing.assert_allclose(emb.transform(X), reference, atol=1e-5, err_msg=name)
    emb.set_params(num_workers=2)
    np.testing.assert_allclose(
        emb.transform(forms["paths"] * 3)[2], reference[0], atol=1e-5
    )


def test_a_gallery_may_mix_sizes_grayscale_and_rgb():
    galleries, y = _galleries()
    emb = GalleryEmbedder(max_epochs=1, random_state=0, **FAST).fit(galleries, y)
    rng = np.random.RandomState(0)
    mixed = [
        rng.randint(0, 256, size=(9, 7), dtype=np.uint8),
        rng.randint(0, 256, size=(20, 30, 3), dtype=np.uint8),
        rng.randint(0, 256, size=(12, 12, 4), dtype=np.uint8),  # alpha dropped
    ]
    assert emb.transform([mixed]).shape == (1, emb.embedding_dim_)


def test_galleries_of_different_lengths_train_in_one_batch():
    galleries, y = _galleries(30)
    assert len({len(g) for g in galleries}) > 3
    emb = GalleryEmbedder(max_epochs=1, batch_size=30, random_state=0, **FAST)
    assert len(emb.fit(galleries, y).history_[-1, "batches"]) == 1


# ------------------------------------------------------------------ backbones
def test_vgg16_with_one_trainable_block_has_the_papers_trainable_count():
    encoder, dim = build_encoder("vgg16", trainable_layers=1, image_size=32)
    trainable = sum(p.numel() for p in encoder.parameters() if p.requires_grad)
    assert dim == 512 and len(encoder.blocks) == 5
    assert round(trainable / 1e6, 1) == 7.1  # paper, section 3.2


def test_frozen_blocks_do_not_change_in_training():
    galleries, y = _galleries()
    emb = GalleryEmbedder(max_epochs=2, trainable_layers=1, random_state=0, **FAST)
    blocks = emb.fit(galleries, y).net_.module_.encoder.blocks
    with torch.random.fork_rng():  # the initial encoder, as fit built it
        torch.manual_seed(emb._seed())
        initial, _ = build_encoder("small_vgg", None, 1, 16)
    for k, (trained, start) in enumerate(zip(blocks, initial.blocks)):
        unchanged = all(
            torch.equal(a, b) for a, b in zip(trained.parameters(), start.parameters())
        )
        assert unchanged == (k < 2), k
        assert all(p.requires_grad == (k == 2) for p in trained.parameters())


def test_weights_from_a_local_state_dict(tmp_path):
    torch.manual_seed(0)
    model = small_vgg()
    path = tmp_path / "small_vgg.pt"
    torch.save(model.state_dict(), path)
    encoder, _ = build_encoder("small_vgg", weights=str(path), image_size=16)
    for a, b in zip(encoder.parameters(), model.parameters()):
        assert torch.equal(a, b)
    squeeze = tmp_path / "squeezenet.pt"
    import torchvision

    torchvision_model = torchvision.models.squeezenet1_1()
    torch.save(torchvision_model.state_dict(), squeeze)
    encoder, dim = build_encoder("squeezenet1_1", weights=squeeze, image_size=32)
    assert dim == 512
    assert torch.equal(encoder.blocks[0].weight, torchvision_model.features[0].weight)


def test_an_nn_module_backbone_is_copied_not_trained_in_place():
    galleries, y = _galleries()
    module = small_vgg((8, 16))
    before = [p.detach().clone() for p in module.parameters()]
    emb = GalleryEmbedder(
        backbone=module, image_size=16, lr=1e-2, max_epochs=2, verbose=0, random_state=0
    ).fit(galleries, y)
    assert emb.embedding_dim_ == 16
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


# --------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, match",
    [
        ({"backbone": "vgg_16"}, "backbone='vgg_16'.*Did you mean 'vgg16'"),
        ({"backbone": 3}, "backbone must be"),
        ({"pooling": "median"}, "pooling='median' is unknown"),
        ({"trainable_layers": 7}, "trainable_layers=7.*3 blocks"),
        ({"image_size": 0}, "image_size must be a positive integer"),
        ({"weights": "missing/file.pt"}, "not an existing file"),
        ({"weights": "IMAGENET1K_V1"}, "'small_vgg' has no published weights"),
        ({"head_units": 0}, "head_units must be a positive integer"),
        ({"num_workers": -1}, "num_workers must be"),
        ({"iterator_train__colate_fn": 1}, "Did you mean 'iterator_train__collate_fn'"),
    ],
)
def test_bad_parameters_are_named_before_training(params, match):
    galleries, y = _galleries(8)
    emb = GalleryEmbedder(**{**FAST, **params})
    with pytest.raises((ValueError, TypeError), match=match):
        emb.fit(galleries, y)
    assert not hasattr(emb, "net_")


def test_torchvision_weights_missing_from_the_cache_are_not_downloaded(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="not in the local torch hub cache"):
        build_encoder("squeezenet1_1", weights="IMAGENET1K_V1", image_size=32)
    with pytest.raises(ValueError, match="its weights are \\['IMAGENET1K_V1'\\]"):
        build_encoder("squeezenet1_1", weights="IMAGENET9K", image_size=32)


def test_a_state_dict_for_another_backbone_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(small_vgg((8, 16)).state_dict(), path)
    with pytest.raises(ValueError, match="does not fit backbone='small_vgg'"):
        build_encoder("small_vgg", weights=path, image_size=16)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not be read as a PyTorch state_dict"):
        build_encoder("small_vgg", weights=tmp_path / "junk.pt", image_size=16)


def test_an_image_size_the_backbone_cannot_encode_is_explained():
    with pytest.raises(ValueError, match="cannot encode 16x16 images"):
        build_encoder("squeezenet1_1", image_size=16)


@pytest.mark.parametrize(
    "X, match",
    [
        ([[]], r"X\[0\] is an empty gallery"),
        ([], "0 galleries"),
        ("photo.png", "got a single str"),
        ([np.zeros((4, 4), np.uint8)], r"X\[0\] is an array of shape \(4, 4\)"),
        ([[np.full((4, 4), np.nan)]], "NaN or infinity"),
        ([[np.zeros((4, 4, 5))]], "C = 1, 3 or 4"),
        ([["no/such/image.png"]], "does not exist"),
        ([[np.array(["a"])]], "dtype <U1"),
        (np.array(["a.png", "b.png"]), r"X\[0\] is a single image"),
    ],
)
def test_bad_galleries_get_errors_that_name_the_gallery(X, match):
    galleries, y = _galleries(len(X) or 1)
    with pytest.raises((ValueError, TypeError), match=match):
        GalleryEmbedder(**FAST).fit(X, y[: len(X)])


def test_unreadable_and_truncated_files_are_named(tmp_path):
    galleries, y = _galleries()
    emb = GalleryEmbedder(max_epochs=1, random_state=0, **FAST).fit(galleries, y)
    before = emb.transform(galleries[:3])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="notes.png' is not a readable image"):
        emb.fit([[str(text)]] * 40, y)
    good = tmp_path / "good.png"
    Image.fromarray(_gray_gallery(size=64)[0]).save(good)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated.png.*truncated or corrupt"):
        emb.fit([[str(truncated)]] * 40, y)
    np.testing.assert_array_equal(emb.transform(galleries[:3]), before)


def test_targets_are_checked():
    galleries, y = _galleries()
    with pytest.raises(ValueError, match="requires y"):
        GalleryEmbedder(**FAST).fit(galleries)
    with pytest.raises(ValueError, match="40 galleries but y has 39 rows"):
        GalleryEmbedder(**FAST).fit(galleries, y[:39])
    y[:, 1] = np.nan
    with pytest.raises(ValueError, match="task_1.*no label at all"):
        GalleryEmbedder(**FAST).fit(galleries, y)


# ----------------------------------------------------------------- training
def test_verbose_prints_the_epoch_table_and_zero_is_silent(capsys):
    galleries, y = _galleries()
    GalleryEmbedder(**{**FAST, "verbose": 1}, max_epochs=2).fit(galleries, y)
    assert "train_loss" in capsys.readouterr().out
    emb = GalleryEmbedder(max_epochs=2, **FAST).fit(galleries, y)
    emb.transform(galleries)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_warm_start_continues_training():
    galleries, y = _galleries()
    emb = GalleryEmbedder(max_epochs=2, warm_start=True, random_state=0, **FAST)
    emb.fit(galleries, y)
    net = emb.net_
    emb.fit(galleries, y)
    assert emb.net_ is net and len(emb.history_) == 4


def test_attention_and_max_pooling_train():
    galleries, y = _galleries()
    for pooling in ("attention", "max"):
        emb = GalleryEmbedder(pooling=pooling, max_epochs=2, random_state=0, **FAST)
        Z = emb.fit(galleries, y).transform(galleries)
        assert np.isfinite(Z).all() and Z.shape == (40, 128)
    emb.set_params(pooling="attention", module__attention_units=8).fit(galleries, y)
    assert emb.net_.module_.pooling.score[0].out_features == 8


@pytest.mark.cuda
def test_fits_and_embeds_on_cuda():
    galleries, y = _galleries()
    emb = GalleryEmbedder(
        **{**FAST, "device": "cuda"}, loss_weighter="uncertainty", max_epochs=2
    ).fit(galleries, y)
    assert next(emb.net_.module_.parameters()).is_cuda
    assert emb.net_.loss_weighter_.log_variance.is_cuda
    Z = emb.transform(galleries)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    assert emb.predict_tasks(galleries).shape == (40, 3)


# ------------------------------------------------------- review follow-ups
def test_transform_uses_the_image_size_fit_used(fitted, digits):
    _, test = digits
    before = fitted.transform(test.galleries[:5])
    fitted.set_params(image_size=16)
    try:
        after = fitted.transform(test.galleries[:5])
    finally:
        fitted.set_params(image_size=8)
    np.testing.assert_array_equal(after, before)
    assert fitted.image_size_ == 8


@pytest.mark.parametrize(
    "backbone, size, dim", [("swin_t", 64, 768), ("googlenet", 64, 1024)]
)
def test_channels_last_and_auxiliary_output_backbones(backbone, size, dim):
    torch.manual_seed(0)
    encoder, got = build_encoder(backbone, None, None, size)
    assert got == dim
    encoder.train()  # GoogLeNet returns one tensor in training mode too
    assert encoder(torch.zeros(2, 3, size, size)).shape == (2, dim)


def test_vit_size_error_names_the_fix():
    with pytest.raises(ValueError, match="needs the image size it was built for"):
        build_encoder("vit_b_16", None, None, 64)


def test_sixteen_bit_and_out_of_range_float_images(fitted, digits):
    _, test = digits
    galleries = test.galleries[:3]
    as_uint16 = [g.astype(np.uint16) * 257 for g in galleries]
    np.testing.assert_allclose(
        fitted.transform(as_uint16), fitted.transform(galleries), atol=1e-5
    )
    with pytest.warns(UserWarning, match="float images are read as intensities"):
        fitted.transform([g.astype(np.float32) for g in galleries])


def test_a_weights_file_without_extension_is_read_as_a_path(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = small_vgg()
    monkeypatch.chdir(tmp_path)
    torch.save(model.state_dict(), "mystate")
    encoder, _ = build_encoder("small_vgg", "mystate", None, 16)
    first = next(encoder.parameters())
    assert torch.equal(first, next(model.parameters()))
