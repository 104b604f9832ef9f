"""Real photographs that are not skin lesions, made offline, for the lesion gate's benchmark and tests.

Design photos (the gate's form was chosen looking at these): the sample photographs scikit-image and
scikit-learn ship (a face, a cat, coffee, a rocket, a street, a flower, a galaxy field, a stained tissue
slide, a retina, a colour wheel, a logo), each whole and as five crops; their greyscale photographs (a
camera man, coins, the moon, a page of text, ...); and made-up frames (flat colours including skin
tones, gradients, printed text, noise). Held-out photos (never looked at before the gate was chosen):
matplotlib's sample portrait, gift box and logo, scikit-image's motorcycle and colour chessboard, and
frames of its small animated GIF. Nothing here trains the gate or sets its threshold: it is fitted and
thresholded on dermoscopy alone.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["colour_photos", "grey_photos", "held_out_photos", "made_up_frames", "non_lesion_images"]

COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
          "colorwheel", "logo")  # fmt: skip
GREY = ("camera", "coins", "moon", "page", "text", "horse", "clock", "brick", "grass", "gravel")


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (image.astype(np.float32) * (255.0 if image.max() <= 1 else 1.0)).clip(0, 255).astype(np.uint8)
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:  # on white, as a person sees it
        alpha = image[..., 3:].astype(np.float32) / 255.0
        return (image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return image


def _with_crops(name: str, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The whole photo, its four half-size corners and its centre third."""
    h, w = image.shape[:2]
    out = [(name, image)]
    for tag, (y, x) in {"tl": (0, 0), "tr": (0, w // 2), "bl": (h // 2, 0), "br": (h // 2, w // 2)}.items():
        out.append((f"{name}/{tag}", image[y : y + h // 2, x : x + w // 2]))
    out.append((f"{name}/centre", image[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3]))
    return out


def colour_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) for every colour sample photograph and its crops."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = [(n, _rgb(getattr(skimage.data, n)())) for n in COLOUR]
    photos += [(f"sklearn_{i}", _rgb(im)) for i, im in enumerate(load_sample_images().images)]
    return [crop for name, image in photos for crop in _with_crops(name, image)]


def grey_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 with three equal channels) for the greyscale sample photographs."""
    import skimage.data

    return [(n, _rgb(getattr(skimage.data, n)())) for n in GREY]


def made_up_frames(size: int = 320) -> list[tuple[str, np.ndarray]]:
    """Flat colours (skin tones, a wall, a screen), gradients, printed text and noise."""
    rng = np.random.default_rng(0)
    out = []
    for rgb in ((224, 180, 160), (190, 140, 110), (120, 80, 60), (240, 240, 235), (30, 60, 200), (20, 160, 60)):
        noise = rng.normal(0, 4, (size, size, 3))
        out.append((f"flat {rgb}", np.clip(np.full((size, size, 3), rgb) + noise, 0, 255).astype(np.uint8)))
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    out.append(("gradient red-blue", np.dstack([np.tile(ramp, (size, 1)), np.zeros((size, size)),
                                                np.tile(ramp[::-1], (size, 1))]).astype(np.uint8)))  # fmt: skip
    out.append(("gradient skin", np.clip(np.array((224, 180, 160)) * (0.5 + ramp[:, None, None] / 510), 0, 255)
                .astype(np.uint8).repeat(size, axis=1)))  # fmt: skip
    for i, colour in enumerate(((20, 20, 20), (200, 30, 30))):
        page = np.full((size, size, 3), (245, 240, 225), np.uint8)
        for line in range(8):
            cv2.putText(page, "Patient form, page 2 of 3" if line % 2 else "Name: ____________",
                        (10, 30 + 38 * line), cv2.FONT_HERSHEY_SIMPLEX, 0.6, colour, 1, cv2.LINE_AA)  # fmt: skip
        out.append((f"printed text {i}", page))
    out.append(("colour noise", rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
    out.append(("smooth colour noise", cv2.GaussianBlur(rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
                                                        (0, 0), 8)))  # fmt: skip
    return out


def held_out_photos() -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) of photographs kept apart from the gate's design: matplotlib's and scikit-image's."""
    import os

    import imageio.v3 as iio
    import matplotlib.cbook
    import skimage

    skimage_data = os.path.join(os.path.dirname(skimage.__file__), "data")
    out = []
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png", "logo2.png"):
        image = _rgb(iio.imread(matplotlib.cbook.get_sample_data(name, asfileobj=False)))
        out += _with_crops(name, image) if min(image.shape[:2]) >= 300 else [(name, image)]
    for name in ("motorcycle_left.png", "chessboard_RGB.png"):
        image = _rgb(iio.imread(os.path.join(skimage_data, name)))
        out += _with_crops(name, image) if min(image.shape[:2]) >= 300 else [(name, image)]
    frames = iio.imread(os.path.join(skimage_data, "no_time_for_that_tiny.gif"), index=None)
    out += [(f"gif frame {i}", _rgb(frames[i])) for i in (0, 8, 16)]
    return out


def non_lesion_images() -> list[tuple[str, str, np.ndarray]]:
    """(kind, name, RGB uint8): every design colour photo and crop, greyscale photo, made-up frame and
    held-out photo."""
    return ([("colour photo", n, im) for n, im in colour_photos()] + [("greyscale photo", n, im) for n, im in
            grey_photos()] + [("made-up frame", n, im) for n, im in made_up_frames()]
            + [("held-out photo", n, im) for n, im in held_out_photos()])  # fmt: skip
