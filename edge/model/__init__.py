"""The model file and its contract: reading, checking, running and calibrating a .tflite model."""
