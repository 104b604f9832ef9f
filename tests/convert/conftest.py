"""A small MobileNetV3-Small with the ImageNet weights and synthetic lesions, for the convert tests."""

import numpy as np
import pytest


@pytest.fixture(scope="module")
def mobilenet():
    """(classifier, backbone, images): one fresh model per test module."""
    pytest.importorskip("tensorflow")
    import keras

    from tests.conftest import WEIGHTS, synthetic_lesion
    from training.model import build_classifier

    if not WEIGHTS.is_file():  # a randomly initialised MobileNetV3 has near-zero activations: nothing to test
        pytest.skip(f"needs the ImageNet weights at {WEIGHTS}")
    keras.backend.clear_session()  # layer names like 'activation' must not carry a counter from other tests
    keras.utils.set_random_seed(0)
    model, backbone = build_classifier(3, image_size=64, weights=str(WEIGHTS))
    rng = np.random.default_rng(0)
    images = np.stack([synthetic_lesion(rng, k % 3, size=64) for k in range(24)])
    return model, backbone, images
