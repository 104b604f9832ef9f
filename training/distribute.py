"""Where training runs: one device, every local GPU, or several machines, through tf.distribute."""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass

__all__ = ["STRATEGIES", "Placement", "StrategyError", "import_tensorflow_quietly", "place"]

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "one", "mirrored", "multi-worker")


class StrategyError(RuntimeError):
    """The requested placement cannot be had here (no TF_CONFIG, no GPU for mixed precision)."""


@dataclass
class Placement:
    """A tf.distribute strategy and what it means for this process."""

    strategy: object  # tf.distribute.Strategy
    replicas: int
    is_chief: bool  # only the chief writes the run folder
    gpus: int
    multi_worker: bool = False

    def describe(self) -> str:
        kind = "MultiWorkerMirroredStrategy" if self.multi_worker else type(self.strategy).__name__
        devices = f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else "CPU"
        return f"{kind}, {self.replicas} replica{'s' if self.replicas != 1 else ''} ({devices})"


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices with the C++ core's start-up notices hidden (oneDNN,
    CUDA probing, CPU features: written to the process's stderr before any setting applies)."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # physical: the runtime stays unconfigured for multi-worker
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def place(name: str = "auto") -> Placement:
    """The strategy for ``name``.

    auto: every local GPU through MirroredStrategy when there are several, the one GPU or the CPU
    otherwise; one: a single device (the first GPU, else the CPU); mirrored: every local GPU (or
    every logical CPU device when there is no GPU); multi-worker: MultiWorkerMirroredStrategy over
    the machines that the TF_CONFIG environment variable lists.

    Raises:
        StrategyError: multi-worker without a TF_CONFIG naming a cluster.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise StrategyError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")
    gpus = tf.config.list_physical_devices("GPU")  # logical ones would start the runtime too early
    if name == "multi-worker":
        config = _tf_config()
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        task = config.get("task", {})
        has_chief = "chief" in config.get("cluster", {})
        is_chief = task.get("type") == "chief" or (not has_chief and task.get("index", 0) == 0)
        return Placement(strategy, strategy.num_replicas_in_sync, is_chief, len(gpus), multi_worker=True)
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in tf.config.list_logical_devices("GPU" if gpus else "CPU")]
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    return Placement(strategy, strategy.num_replicas_in_sync, True, len(gpus))


def _tf_config() -> dict:
    raw = os.environ.get("TF_CONFIG", "")
    try:
        config = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise StrategyError(f"TF_CONFIG is not valid JSON: {exc}") from None
    if not config.get("cluster") or "task" not in config:
        raise StrategyError(
            "--strategy multi-worker needs TF_CONFIG naming the cluster and this machine's task, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
        )
    return config
