"""Skin-lesion classification on the device: NumPy, OpenCV and the TFLite runtime, never TensorFlow.

- ``app``: the ``edge-detect`` command, the entry point;
- ``model``: the ``.tflite`` file and its embedded contract (labels, preprocessing, calibration);
- ``image``: the one preprocessing, the quality gates, the overlay drawn on frames;
- ``capture``: frame sources (files, folders, video, OpenCV and Pi cameras);
- ``run``: the run loop from a source through the classifier to the sinks;
- ``kiosk``: the clinic's web page and its systemd integration.
"""
