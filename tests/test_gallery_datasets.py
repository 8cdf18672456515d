import numpy as np
import pytest

from mtlestimators.datasets import load_mnist_5k, make_digit_galleries


def test_mnist_5k_has_500_images_of_each_digit_and_disjoint_subsets():
    images, labels = load_mnist_5k()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    train, _ = load_mnist_5k("train")
    test, _ = load_mnist_5k("test")
    assert len(train) == 4000 and len(test) == 1000
    seen = {image.tobytes() for image in train}
    assert not any(image.tobytes() in seen for image in test)


@pytest.mark.parametrize("source, shape", [("sklearn", (8, 8)), ("mnist", (28, 28))])
def test_gallery_tasks_describe_the_digits_shown(source, shape):
    data = make_digit_galleries(200, source=source, random_state=0)
    sizes = [len(g) for g in data.galleries]
    assert min(sizes) >= 5 and max(sizes) <= 20 and len(set(sizes)) > 5
    assert data.galleries[0].shape[1:] == shape
    for gallery_digits, (_, row), even in zip(
        data.digits, data.target.iterrows(), data.holdout
    ):
        counts = np.bincount(gallery_digits, minlength=10)
        assert row["contains_3"] == (counts[3] > 0)
        assert row["contains_8"] == (counts[8] > 0)
        assert row["most_frequent"] == np.argmax(counts)
        assert row["mean_digit"] == pytest.approx(gallery_digits.mean())
        assert even == (counts[::2].sum() > counts[1::2].sum())
    assert 0.3 < data.holdout.mean() < 0.7
    assert data.task_kinds["most_frequent"] == "multiclass"


def test_images_show_the_digits_they_are_labelled_with():
    images, labels = load_mnist_5k("test")
    data = make_digit_galleries(20, subset="test", random_state=0)
    by_bytes = {image.tobytes(): label for image, label in zip(images, labels)}
    for gallery, digits in zip(data.galleries, data.digits):
        assert [by_bytes[image.tobytes()] for image in gallery] == digits.tolist()


def test_missing_rate_hides_labels_and_the_seed_fixes_the_galleries():
    a = make_digit_galleries(300, source="sklearn", missing_rate=0.2, random_state=3)
    b = make_digit_galleries(300, source="sklearn", missing_rate=0.2, random_state=3)
    assert 0.15 < a.target.isna().mean().mean() < 0.25
    assert all(np.array_equal(x, y) for x, y in zip(a.galleries, b.galleries))
    assert a.target.equals(b.target)


def test_bad_builder_arguments_are_explained():
    with pytest.raises(ValueError, match="source='cifar'"):
        make_digit_galleries(5, source="cifar")
    with pytest.raises(ValueError, match="min_size=4 and max_size=3"):
        make_digit_galleries(5, source="sklearn", min_size=4, max_size=3)
    with pytest.raises(ValueError, match="subset='val'"):
        load_mnist_5k("val")
