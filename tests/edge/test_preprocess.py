import cv2
import numpy as np
import pytest

from edge.image.preprocess import (
    ImageError,
    area_resize,
    crop_and_resize,
    decode_image,
    linear_resize,
    preprocess,
    shades_of_gray,
)
from edge.model.contract import ContractError, ModelContract

CONTRACT = ModelContract(task="classify", labels=("a", "b"), image_size=64, color_constancy="shades_of_gray")


def _skin(cast=(1.0, 1.0, 1.0), seed=0) -> np.ndarray:
    """A textured skin-coloured image under a lamp of colour ``cast``."""
    rng = np.random.default_rng(seed)
    base = np.array([180.0, 120.0, 110.0]) + rng.normal(0, 25, (96, 96, 3))
    return np.clip(base * np.array(cast), 0, 255).astype(np.uint8)


def _reference(image: np.ndarray, power: int = 6) -> np.ndarray:
    """Shades of gray written out in floating point, pixel by pixel."""
    x = image.astype(np.float64) / 255.0
    illuminant = np.mean(x**power, axis=(0, 1)) ** (1.0 / power)
    gain = np.sqrt(np.mean(illuminant**2)) / illuminant
    return np.clip(x * gain * 255.0 + 0.5, 0, 255).astype(np.uint8)


def test_shades_of_gray_equals_the_floating_point_formula():
    for seed in range(3):
        image = _skin((1.1, 0.8, 0.6), seed)
        diff = np.abs(shades_of_gray(image).astype(int) - _reference(image))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.002  # a 16-bit fixed-point gain: ties may round apart


def test_area_resize_is_integer_area_averaging_close_to_opencv():
    import cv2

    square = np.arange(36, dtype=np.uint8).reshape(6, 6)[:, :, None].repeat(3, axis=2)
    np.testing.assert_array_equal(area_resize(square, 3)[:, :, 0], [[4, 6, 8], [16, 18, 20], [28, 30, 32]])
    np.testing.assert_array_equal(
        area_resize(square, 4)[:, :, 0], cv2.resize(square, (4, 4), interpolation=cv2.INTER_AREA)[:, :, 0]
    )
    rng = np.random.default_rng(0)
    for side in (225, 300, 480, 1000):
        photo = cv2.GaussianBlur(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), (0, 0), 4)
        ours, theirs = area_resize(photo, 224), cv2.resize(photo, (224, 224), interpolation=cv2.INTER_AREA)
        assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8 and ours.flags.c_contiguous
        assert np.abs(ours.astype(int) - theirs).mean() < 0.8, side


def test_area_resize_equals_exact_rational_area_averaging():
    # the definition in Python integers: output pixel i spans [i*n, (i+1)*n), source pixel j [j*m, (j+1)*m)
    def overlap(i: int, j: int, n: int, m: int) -> int:
        return max(0, min((i + 1) * n, (j + 1) * m) - max(i * n, j * m))

    rng = np.random.default_rng(1)
    for n, m in ((7, 4), (13, 9), (11, 6)):
        photo = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
        expected = np.zeros((m, m, 3), np.uint8)
        for i in range(m):
            for j in range(m):
                for c in range(3):
                    total = sum(overlap(i, a, n, m) * overlap(j, b, n, m) * int(photo[a, b, c])
                                for a in range(n) for b in range(n))  # fmt: skip
                    expected[i, j, c] = (total + n * n // 2) // (n * n)
        np.testing.assert_array_equal(area_resize(photo, m), expected)


def test_shades_of_gray_removes_a_lamp_colour_cast():
    plain, warm = _skin(), _skin((1.25, 0.95, 0.7))
    before = np.abs(plain.mean((0, 1)) - warm.mean((0, 1))).max()
    after = np.abs(shades_of_gray(plain).astype(float).mean((0, 1)) - shades_of_gray(warm).mean((0, 1))).max()
    assert before > 25 and after < before / 4


def test_preprocess_applies_the_contracts_color_constancy_after_the_resize():
    image = _skin((1.2, 0.9, 0.7))
    plain = preprocess(image, CONTRACT.replace(color_constancy="none"))
    np.testing.assert_array_equal(plain, crop_and_resize(image, CONTRACT))
    np.testing.assert_array_equal(preprocess(image, CONTRACT), shades_of_gray(plain))
    assert not np.array_equal(preprocess(image, CONTRACT), plain)


def test_contract_knows_color_constancy_and_older_contracts_read_as_none():
    assert ModelContract.from_dict({"task": "classify", "labels": ["a", "b"]}).color_constancy == "none"
    assert ModelContract.from_json(CONTRACT.to_json()) == CONTRACT
    with pytest.raises(ContractError, match="color_constancy"):
        CONTRACT.replace(color_constancy="retinex")


def test_shades_of_gray_survives_degenerate_frames():
    black = np.zeros((32, 32, 3), np.uint8)
    np.testing.assert_array_equal(shades_of_gray(black), black)  # a capped lens: nothing to correct
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    with np.errstate(all="raise"):  # no division by zero, no NaN
        out = shades_of_gray(red)
    assert out.dtype == np.uint8 and (out[..., 1:] == 0).all() and (out[..., 0] > 0).all()


def test_linear_resize_equals_exact_bilinear_and_opencv_within_one_level():
    import cv2

    def reference(photo: np.ndarray, m: int) -> np.ndarray:  # half-pixel centres, clamped, rational weights
        n = photo.shape[0]
        taps = []
        for i in range(m):
            pos = (2 * i + 1) * n - m  # / 2m
            left = pos // (2 * m)
            w = pos - left * 2 * m
            taps.append(((min(max(left, 0), n - 1), 2 * m - w), (min(max(left + 1, 0), n - 1), w)))
        out = np.zeros((m, m, 3), np.uint8)
        for i in range(m):
            for j in range(m):
                for c in range(3):
                    total = sum(wa * wb * int(photo[a, b, c]) for a, wa in taps[i] for b, wb in taps[j])
                    out[i, j, c] = (total + (2 * m) ** 2 // 2) // (2 * m) ** 2
        return out

    rng = np.random.default_rng(2)
    for n, m in ((3, 5), (7, 12), (10, 11)):
        photo = rng.integers(0, 256, (n, n, 3), dtype=np.uint8)
        np.testing.assert_array_equal(linear_resize(photo, m), reference(photo, m))
        assert np.abs(linear_resize(photo, m).astype(int) - cv2.resize(photo, (m, m))).max() <= 1


def test_a_transparent_png_is_refused_not_classified_on_its_hidden_colours():
    hidden = np.zeros((40, 40, 4), np.uint8)
    hidden[..., :3] = (30, 60, 200)  # colours nobody sees
    with pytest.raises(ImageError, match="transparent"):
        decode_image(cv2.imencode(".png", hidden)[1].tobytes())
    half = hidden.copy()
    half[:, :30, 3] = 255  # three quarters opaque: the transparent quarter is put on white
    rgb = decode_image(cv2.imencode(".png", half)[1].tobytes())
    assert rgb.shape == (40, 40, 3) and tuple(rgb[0, 0]) == (200, 60, 30) and tuple(rgb[0, 39]) == (255, 255, 255)
    grey16 = np.full((8, 8), 65535, np.uint16)
    assert decode_image(cv2.imencode(".png", grey16)[1].tobytes()).shape == (8, 8, 3)
