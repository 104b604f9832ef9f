"""Models and flipped views averaged inside one Keras graph (convert --views, --ensemble)."""

import numpy as np
import pytest

pytest.importorskip("tensorflow")


@pytest.fixture(scope="module")
def two_seeds():
    import keras

    from training.model import build_classifier

    models = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        models.append(build_classifier(3, image_size=32, arch="small", weights=None)[0])
    images = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    return models, images


@pytest.mark.parametrize("views", [1, 2, 4])
def test_the_graph_answers_with_the_mean_logits_of_every_model_and_view(two_seeds, views):
    from convert.views import averaged, flipped

    models, images = two_seeds
    graph = averaged(models, views)
    want = np.mean([m.predict(v, verbose=0) for m in models for v in flipped(images, views)], axis=0)
    np.testing.assert_allclose(graph.predict(images, verbose=0), want, atol=1e-5)
    # still one dense layer on one feature vector: the models' features side by side, for the lesion gate
    assert (
        graph.layers[-1].name == "logits"
        and graph.get_layer("logits").input.shape[-1] == 2 * models[0].get_layer("pool").output.shape[-1]
    )


@pytest.mark.parametrize("views", [1, 2])
def test_a_zoom_adds_the_same_views_of_the_central_square_enlarged(two_seeds, views):
    from keras import ops

    from convert.views import averaged, flipped, zoomed

    models, images = two_seeds
    graph = averaged(models, views, zoom=0.75)
    centres = ops.convert_to_numpy(ops.image.resize(images[:, 4:28, 4:28], (32, 32), interpolation="bilinear"))
    np.testing.assert_allclose(ops.convert_to_numpy(zoomed(images, 0.75)), centres, atol=1e-4)  # 24 of 32 px
    seen = [*flipped(images, views), *flipped(centres, views)]
    want = np.mean([m.predict(v, verbose=0) for m in models for v in seen], axis=0)
    np.testing.assert_allclose(graph.predict(images, verbose=0), want, atol=1e-5)
    # arrays: the same copies, the centres rounded to the uint8 pixels the int8 file's resize gives
    pixels = np.round(images).astype(np.uint8)
    copies = flipped(pixels, views, zoom=0.75)
    assert len(copies) == 2 * views
    np.testing.assert_array_equal(copies[views], np.clip(np.round(ops.convert_to_numpy(zoomed(
        pixels.astype("float32"), 0.75))), 0, 255))  # fmt: skip
    with pytest.raises(ValueError, match="zoom"):
        averaged(models, views, zoom=1.5)


def test_a_mirrored_image_gets_the_same_answer_with_four_views(two_seeds):
    from convert.views import averaged

    models, images = two_seeds
    graph = averaged(models[:1], 4)
    np.testing.assert_allclose(graph.predict(images[:, ::-1], verbose=0), graph.predict(images, verbose=0),
                               atol=1e-5)  # fmt: skip
    assert averaged(models[:1], 1) is models[0]


def test_models_that_cannot_be_averaged_are_refused(two_seeds):
    from convert.views import averaged
    from training.model import build_classifier

    models, _ = two_seeds
    with pytest.raises(ValueError, match="views"):
        averaged(models, 3)
    other = build_classifier(4, image_size=32, arch="small", weights=None)[0]
    with pytest.raises(ValueError, match="differ"):
        averaged([models[0], other], 1)


def test_a_smaller_model_answers_on_the_files_input_resized_inside_the_graph(two_seeds):
    import keras
    from keras import ops

    from convert.views import at_size, averaged, feature_spans, flipped
    from training.model import build_classifier

    models, _ = two_seeds
    small = models[0]  # 32 px
    keras.utils.set_random_seed(2)
    large = build_classifier(3, image_size=40, arch="small", weights=None)[0]
    images = np.random.default_rng(1).uniform(0, 255, (4, 40, 40, 3)).astype("float32")
    graph = averaged([small, large], 2)
    assert graph.input_shape == (None, 40, 40, 3)  # the largest model's input

    def seen_by(m, v):
        return v if m is large else ops.convert_to_numpy(ops.image.resize(v, (32, 32), interpolation="bilinear"))

    want = np.mean([m.predict(seen_by(m, v), verbose=0) for m in (small, large) for v in flipped(images, 2)], 0)
    np.testing.assert_allclose(graph.predict(images, verbose=0), want, atol=1e-5)
    # at_size: the same resize, rounded to the uint8 pixels the int8 file's resize gives
    np.testing.assert_array_equal(at_size(images, 32), np.clip(np.round(seen_by(small, images)), 0, 255))
    assert at_size(images, 40) is images
    width = int(small.get_layer("pool").output.shape[-1])
    assert feature_spans([small, large]) == [(0, width), (width, 2 * width)]
