"""`train`: fine-tune MobileNetV3 on a dermoscopy dataset and write a run folder."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from edge.datasets import FORMATS
from training.config import SegmentConfig, TrainConfig
from training.distribute import STRATEGIES, import_tensorflow_quietly

__all__ = ["main"]


def _segment_default(field: str) -> str:
    """The help's note of a default the segmenter has of its own."""
    return f" (--task segment: {getattr(SegmentConfig, field)})"


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("data", type=click.Path(path_type=str), nargs=-1)
@click.option("--out", default="runs/latest", help="Run folder to write (model, contract, metrics, plots, card).")
@click.option(
    "--format", "fmt", type=click.Choice(["auto", *FORMATS]), default=TrainConfig.format,
    help="Dataset layout: a folder per class, HAM10000 metadata CSV + images, an ISIC ground-truth CSV, or a CSV "
    "naming each image and its label (image_id,diagnosis) + images.",
)  # fmt: skip
@click.option(
    "--task", type=click.Choice(["multiclass", "binary", "segment"]), default="multiclass",
    help="binary maps diagnoses to benign/malignant (mel, bcc, scc, akiec and 'malignant' are malignant); "
    "segment trains a lesion segmenter on images + masks (images/<id>.jpg + masks/<id>.png, or ISIC "
    "<id>_segmentation.png).",
)  # fmt: skip
@click.option(
    "--arch", type=click.Choice(["small", "large-minimalistic", "large"]), default=TrainConfig.arch,
    help="MobileNetV3 variant (large-minimalistic: ReLU, no squeeze-excite, so int8 keeps its answers)"
    + _segment_default("arch") + ".",
)  # fmt: skip
@click.option(
    "--weights", default=TrainConfig.weights,
    help="imagenet (the offline files in ../shared/weights, else a download), none, a backbone .weights.h5 PATH, "
    "or a train RUN folder: its trained backbone, e.g. a second stage at a larger --img-size.",
)  # fmt: skip
@click.option("--img-size", type=click.IntRange(32, 512), default=TrainConfig.image_size,
              help="Square input size in pixels" + _segment_default("image_size") + ".")  # fmt: skip
@click.option("--epochs", type=click.IntRange(0), default=TrainConfig.epochs,
              help="Fine-tuning epochs (upper bound)" + _segment_default("epochs") + ".")  # fmt: skip
@click.option("--head-epochs", type=click.IntRange(0), default=TrainConfig.head_epochs,
              help="Epochs training the head on a frozen backbone" + _segment_default("head_epochs") + ".")  # fmt: skip
@click.option("--batch-size", type=click.IntRange(1), default=TrainConfig.batch_size,
              help="Images a step" + _segment_default("batch_size") + ".")  # fmt: skip
@click.option("--lr", type=float, default=TrainConfig.learning_rate,
              help="Peak learning rate, cosine decay" + _segment_default("learning_rate") + ".")  # fmt: skip
@click.option("--val-fraction", type=click.FloatRange(0.05, 0.45), default=TrainConfig.val_fraction,
              help="Validation share.")  # fmt: skip
@click.option(
    "--test-fraction", type=click.FloatRange(0.0, 0.4), default=TrainConfig.test_fraction,
    help="A fixed, lesion-grouped test part of every collection (the same for every --seed), scored once at the "
    "end and per collection in metrics.json; nothing is chosen or calibrated on it (0 = none).",
)  # fmt: skip
@click.option(
    "--train-on", multiple=True, type=click.Path(path_type=str),
    help="Train only on the training part of this DATA collection (repeatable); the split, validation and test "
    "still span every collection: e.g. a second stage at a larger --img-size on the sharp collections.",
)  # fmt: skip
@click.option(
    "--hold-out", type=click.Path(path_type=str), default=None,
    help="--task segment: leave out every image (by id: its file name) in this classifier run's test part, so the "
    "classifier's test images stay unseen by the segmenter as well and can score it.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=TrainConfig.seed,
    help="Seed for initialisation, shuffling and augmentation (the split is fixed).",
)  # fmt: skip
@click.option(
    "--patience", type=click.IntRange(1), default=TrainConfig.patience,
    help="Early stopping: epochs without gain, counted once half the fine-tuning epochs are done"
    + _segment_default("patience") + ".",
)  # fmt: skip
@click.option(
    "--balance", type=click.Choice(["weights", "sampling", "none"]), default=TrainConfig.balance,
    help="Class imbalance handling: a class-weighted loss, batches drawing every class equally often, or nothing.",
)  # fmt: skip
@click.option(
    "--color-constancy", type=click.Choice(["none", "shades-of-gray"]),
    default=TrainConfig.color_constancy.replace("_", "-"),
    help="Colour normalisation before the model (part of the preprocessing the contract carries to the edge).",
)  # fmt: skip
@click.option(
    "--white-balance", type=click.FloatRange(0.0, 1.0), default=TrainConfig.white_balance,
    help="Augmentation: scale each RGB channel of every training image by a random factor within x/÷ (1 + this), "
    "as another lamp or camera white balance would (0 = off).",
)  # fmt: skip
@click.option("--max-images", type=click.IntRange(0), default=TrainConfig.max_images,
              help="Use a random subset (0 = all).")  # fmt: skip
@click.option(
    "--strategy", type=click.Choice(STRATEGIES), default=TrainConfig.strategy,
    help="tf.distribute: auto (every local GPU, else one device), one, mirrored (every local GPU), multi-worker "
    "(the machines TF_CONFIG lists). The global batch and learning rate grow with the number of replicas.",
)  # fmt: skip
@click.option("--mixed-precision", is_flag=True, help="float16 compute on GPUs (the saved model is float32).")
@click.option(
    "--resume", "resume_run", type=click.Path(path_type=str), default=None,
    help="Continue an interrupted run folder from its last finished epoch (same data, split and schedule).",
)  # fmt: skip
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info")
@click.option("--verbose", is_flag=True, help="Also show TensorFlow's own start-up and device messages.")
@click.pass_context
def main(ctx: click.Context, data: tuple[str, ...], out: str, fmt: str, task: str, arch: str, weights: str,
         img_size: int, epochs: int, head_epochs: int, batch_size: int, lr: float, val_fraction: float,
         test_fraction: float, train_on: tuple[str, ...], hold_out: str | None, seed: int, patience: int,
         balance: str, color_constancy: str, white_balance: float, max_images: int, strategy: str,
         mixed_precision: bool, resume_run: str | None, log_level: str, verbose: bool) -> None:  # fmt: skip
    """Fine-tune a MobileNetV3 classifier on DATA (one collection or several) and write a run folder.

    Several collections are trained, validated and (with --test-fraction) tested on together, their
    labels mapped onto ISIC 2019's eight classes as ISIC 2019 files them: akiec -> AK, pigmented
    benign and seborrheic keratosis -> BKL, nevus grades -> NV; copies and lesions shared between
    collections stay on one side of the split, and metrics.json reports every collection.

    DATA is a folder per class, a HAM10000 folder (HAM10000_metadata.csv + images/), an ISIC
    ground-truth CSV with its images, or a CSV naming each image and its label (image_id,diagnosis)
    with its images. Validation is a stratified split in which images of one
    lesion, identical files and near-duplicate images stay on one side. Images are preprocessed
    once into a cache ($SKINEDGE_CACHE, else ~/.cache/skinedge/images) and streamed from it.
    The run folder holds model.keras, contract.json, metrics.json, report.txt, confusion_matrix.png,
    roc.png, training_curves.png, model_card.md, log.csv and logs/ (TensorBoard); while training it
    also holds checkpoint/, from which `train --resume RUN` continues.
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(message)s", stream=sys.stderr)
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # cuInit, oneDNN and CPU-feature notices
        import_tensorflow_quietly()
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # per-step collective notices
    from training.train import resume, train

    if resume_run is not None:
        if data:
            raise click.UsageError("--resume RUN takes its data from the run: give DATA or --resume, not both")
        _run(lambda: resume(resume_run), resume_run, val_fraction)
        return
    if not data:
        raise click.UsageError("missing DATA (or --resume RUN)")
    if val_fraction / (1 - test_fraction) >= 0.5:
        raise click.UsageError("--val-fraction and --test-fraction leave too little to train on")

    resolved = [str(Path(d).resolve()) for d in data]
    chosen = tuple(str(Path(c).resolve()) for c in train_on)
    strays = [c for c, r in zip(train_on, chosen) if r not in resolved]
    if strays:
        raise click.UsageError(f"--train-on {strays[0]} is not one of the DATA collections")
    given = _given(ctx)
    if task == "segment":
        _segment(data, out, given)
        return
    if hold_out is not None:
        raise click.UsageError("--hold-out applies to --task segment (a classifier holds out with --test-fraction)")
    given = {k: v for k, v in given.items() if k != "train_on"}
    if "color_constancy" in given:
        given["color_constancy"] = given["color_constancy"].replace("-", "_")
    config = TrainConfig(data=resolved[0], more_data=tuple(resolved[1:]), out=out, train_on=chosen, task=task,
                         **given)  # fmt: skip
    _run(lambda: train(config), out, val_fraction)


_FIELDS = {"fmt": "format", "img_size": "image_size", "lr": "learning_rate"}  # option name -> config field
_NOT_CONFIG = {"data", "out", "task", "resume_run", "log_level", "verbose"}


def _given(ctx: click.Context) -> dict[str, object]:
    """The config fields set on the command line (or by environment): the rest keep the config's defaults."""
    from click.core import ParameterSource

    return {_FIELDS.get(name, name): value for name, value in ctx.params.items()
            if name not in _NOT_CONFIG and ctx.get_parameter_source(name) is not ParameterSource.DEFAULT}  # fmt: skip


def _run(job, out: str, val_fraction: float) -> None:
    """Run ``job`` (train or resume); expected faults become one sentence and exit status 1 (130 interrupted)."""
    from edge.datasets import DatasetError
    from training.distribute import StrategyError
    from training.train import TrainingInterrupted

    try:
        run = job()
    except TrainingInterrupted as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(130)
    except (DatasetError, FileNotFoundError, StrategyError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        if "n_splits" in str(exc) or "members" in str(exc):
            raise click.ClickException(f"too few images per class for a {val_fraction:.0%} validation split") from None
        raise
    click.echo(str(run))


def _segment(data: tuple[str, ...], out: str, given: dict[str, object]) -> None:
    """`train DATA [DATA ...] --task segment`: the lesion segmenter (training/segment/train.py)."""
    import dataclasses

    from training.segment.train import train_segmenter

    fields = {f.name for f in dataclasses.fields(SegmentConfig)}
    options = {_FIELDS.get(p.name, p.name): p.opts[0] for p in main.params}
    for field in given:
        if field not in fields:
            raise click.UsageError(f"{options[field]} applies to classifiers, not to --task segment")
    config = SegmentConfig(data=data[0], more_data=tuple(data[1:]), out=out, **given)
    if config.arch != "small":
        raise click.BadParameter("segmentation supports MobileNetV3-Small only", param_hint="--arch")
    if config.image_size % 32 or config.image_size < 64:
        message = f"segmentation needs a multiple of 32, 64 or more; got {config.image_size}"
        raise click.BadParameter(message, param_hint="--img-size")
    _run(lambda: train_segmenter(config), out, config.val_fraction)
