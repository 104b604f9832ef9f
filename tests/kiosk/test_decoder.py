"""Uploads are decoded in a child process with a memory ceiling and a deadline: no photo can take the kiosk."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.kiosk import uploads
from edge.kiosk.decoder import BoundedDecoder, DecodeRefused
from edge.kiosk.uploads import UploadError, read_upload
from tests.helpers.kiosk import jpeg_bytes

MB = 1024 * 1024


@pytest.fixture(scope="module")
def decoder() -> BoundedDecoder:
    d = BoundedDecoder(memory_bytes=48 * MB, timeout_s=10.0, max_side=800)
    d.start()
    return d


def _png(side: int) -> bytes:
    image = np.zeros((side, side, 3), np.uint8)
    image[::7] = 200  # stripes: small to send, large to hold
    return cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def test_a_photo_decodes_and_comes_back_shrunk(decoder):
    fmt, image = read_upload(jpeg_bytes(), decoder=decoder)
    assert fmt == "JPEG" and image.dtype == np.uint8 and image.shape == (240, 320, 3)
    big = cv2.imencode(".jpg", np.full((1200, 1600, 3), 128, np.uint8))[1].tobytes()
    assert read_upload(big, decoder=decoder)[1].shape == (600, 800, 3)  # long side at most max_side


def test_a_file_whose_header_lies_about_its_size_is_refused_not_fatal(decoder, monkeypatch):
    """The header says 64x64; the decoder meets 5000x5000 (75 MB of pixels) under a 48 MB ceiling."""
    monkeypatch.setattr(uploads, "image_header", lambda data: ("PNG", 64, 64))
    with pytest.raises(UploadError, match="needs more memory to read|does not decode within the kiosk's limits"):
        read_upload(_png(5000), decoder=decoder)
    assert read_upload(_png(400), decoder=decoder)[1].shape == (400, 400, 3)  # the decoder still works


def test_a_progressive_jpeg_over_the_ceiling_is_refused_even_at_reduced_scale(tmp_path):
    """libjpeg keeps a progressive file's full-size coefficients whatever the output scale: a 6320x6320 4:4:4
    one needs ~240 MB to decode at 1/4 (its header is honest, so only the ceiling stops it)."""
    image = np.random.default_rng(0).integers(0, 256, (500, 500, 3), dtype=np.uint8)
    image = cv2.resize(image, (6320, 6320), interpolation=cv2.INTER_NEAREST)
    options = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 30,
               cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]  # fmt: skip
    data = cv2.imencode(".jpg", image, options)[1].tobytes()
    del image
    with pytest.raises(UploadError, match="within the kiosk's limits|needs more memory"):
        read_upload(data, decoder=BoundedDecoder())  # the kiosk's default ceiling, 160 MB
    assert read_upload(data, decoder=BoundedDecoder(memory_bytes=400 * MB))[1].shape == (1580, 1580, 3)


def test_a_slow_decode_is_stopped_at_the_deadline():
    slow = BoundedDecoder(memory_bytes=512 * MB, timeout_s=0.001)
    with pytest.raises(DecodeRefused, match="took longer than"):
        slow.decode(_png(3000))


def test_garbage_with_an_image_header_is_damaged_not_a_crash(decoder):
    with pytest.raises(UploadError, match="does not decode"):
        read_upload(jpeg_bytes()[:200], decoder=decoder)
    with pytest.raises(UploadError, match="does not decode"):
        read_upload(jpeg_bytes()[:200])  # in this process, without the child
