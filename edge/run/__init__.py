"""The `edge-detect` run loop: source, quality gate, classify, smoothing, then the sinks."""
