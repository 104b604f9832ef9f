"""`convert`: Keras run folder -> self-describing TFLite file, with a fidelity check."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from edge.model.contract import ModelContract

__all__ = ["main"]

log = logging.getLogger(__name__)


def _resolve_model(source: Path) -> tuple[Path, Path | None]:
    """(model.keras, run folder or None) for a run folder or a .keras file."""
    from training.runfolder import RunFolder

    if source.is_dir():
        model = RunFolder(source).model_file
        if not model.is_file():
            raise click.ClickException(f"{source} is not a training run folder: it has no model.keras")
        return model, source
    if not source.is_file():
        raise click.ClickException(f"{source} does not exist")
    if source.suffix != ".keras":
        raise click.ClickException(f"{source} is not a Keras model (.keras file or a run folder from `train`)")
    return source, source.parent if RunFolder(source.parent).contract_file.is_file() else None


def _check_writable(out: Path) -> None:
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise click.ClickException(f"cannot write {out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise click.ClickException(f"cannot write {out}: folder {parent} is not writable")


def _stops_in_one_sentence(command: Callable[..., None]) -> Callable[..., None]:
    """SIGTERM or Ctrl-C: one sentence and exit status 130, whatever TensorFlow makes of the interruption
    (raised inside its tracing it can surface as another error). Files are written atomically, so none is
    left half-written; a second signal stops at once."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from edge.run.stopping import StopSignals

        with StopSignals(at_once=True) as stop:
            try:
                command(*args, **kwargs)
            except (Exception, KeyboardInterrupt):
                if not stop.requested:
                    raise
                click.echo(f"Error: {stop.name}: stopped; no file is half-written, run convert again", err=True)
                sys.exit(130)

    return wrapper


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--int8", "mode", flag_value="int8", default=True, help="Full-integer int8 (uint8 input, int8 output).")
@click.option("--float16", "mode", flag_value="float16", help="float16 weights, float compute.")
@click.option("--float32", "mode", flag_value="float32", help="Plain float32 (the reference).")
@click.option(
    "--data", type=click.Path(path_type=Path), default=None,
    help="Dataset the model was trained on [default: the DATA recorded in the run folder].",
)  # fmt: skip
@click.option(
    "--out", type=click.Path(path_type=Path), default=None, help="Output .tflite [default: models/<run>_<mode>.tflite]."
)
@click.option("--samples", type=click.IntRange(1), default=300, help="Representative images (stratified).")
@click.option(
    "--min-agreement",
    type=click.FloatRange(0, 1),
    default=0.97,
    help="Fail below this top-1 agreement with Keras on the validation images Keras labels (confident enough to "
    "show a label; the rest read 'uncertain' either way).",
)
@click.option(
    "--min-mask-iou", type=click.FloatRange(0, 1), default=0.95,
    help="Segmenters: fail below this mean per-image IoU between the Keras and converted masks.",
)  # fmt: skip
@click.option("--force", is_flag=True, help="Write the file even when agreement is below --min-agreement.")
@click.option(
    "--qat-epochs",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="int8: first fine-tune the model this many epochs under simulated int8 (quantization-aware, "
    "distilling the original model on the training side of DATA; ~3 min an epoch on the README's recipe on 2 x86 "
    "cores). Raises the int8 file's agreement; 0 = post-training quantization only.",
)
@click.option(
    "--qat-lr",
    type=click.FloatRange(min=0, min_open=True),
    default=3e-5,
    show_default=True,
    help="Learning rate for --qat-epochs.",
)
@click.option(
    "--threshold-on", multiple=True, type=click.Path(path_type=Path),
    help="Set the malignancy threshold for the run's target sensitivity on the validation images of this "
    "collection (repeatable; one the run trained with), e.g. the sharp ones most like the kiosk's camera "
    "[default: keep the Keras model's sensitivity on every validation image].",
)  # fmt: skip
@click.option(
    "--max-refused", type=click.FloatRange(0, 0.5), default=0.02,
    help="Classifiers: the 'not a skin lesion' gate (a distance on the file's own features, fitted on the training "
    "side) refuses at most this share of each collection's validation images; 0 leaves the gate out.",
)  # fmt: skip
@click.option(
    "--sign-key", type=click.Path(path_type=Path, dir_okay=False), metavar="KEY.pem",
    help="Sign the file with this Ed25519 private key (writes OUT.sig; kiosks started with --trusted-key check it).",
)  # fmt: skip
@click.option(
    "--views", type=click.Choice(["1", "2", "4"]), default="1",
    help="Classifiers: answer on the average of this many flipped views of each image, inside the file "
    "(the image; + left-right; + up-down and both): one file the edge loads as any other, the backbone's work "
    "times this.",
)  # fmt: skip
@click.option(
    "--zoom", type=click.FloatRange(0, 1, min_open=True, max_open=True), metavar="FRACTION",
    help="Classifiers: also answer on the same views of the image's central square of this side (e.g. 0.75), "
    "enlarged back inside the file: the lesion, which dermoscopy centres, larger; the backbone's work doubles.",
)  # fmt: skip
@click.option(
    "--ensemble", "ensemble", multiple=True, type=click.Path(path_type=Path), metavar="RUN",
    help="Classifiers: average this run's model with SOURCE's inside the file (repeatable; `train` runs of the "
    "same data and split, e.g. other --seed values): one file the edge loads as any other, the work times the "
    "models. A run of a smaller --img-size sees the file's input resized inside it, and the lesion gate then "
    "reads the smallest models' features.",
)  # fmt: skip
@click.option("--seed", type=int, default=0, help="Seed for the representative pick and --qat-epochs.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning"]), default="info")
@_stops_in_one_sentence
def main(source: Path, mode: str, data: Path, out: Path | None, samples: int, min_agreement: float,
         min_mask_iou: float, force: bool, qat_epochs: int, qat_lr: float, threshold_on: tuple[Path, ...],
         max_refused: float, sign_key: Path | None, views: str, zoom: float | None, ensemble: tuple[Path, ...],
         seed: int, log_level: str) -> None:  # fmt: skip
    """Convert a trained model (a `train` run folder or model.keras) to TFLite and prove it agrees.

    The int8 model is calibrated on a stratified representative set drawn from the training side
    of DATA through the same preprocessing as training; the model contract (labels, input size,
    preprocessing, class groups, calibration, thresholds) is embedded in the .tflite file. A
    fidelity report on the run's validation split is printed and written beside the output as
    <out>.fidelity.json; the command exits 1 when agreement is below --min-agreement. The
    temperature and the malignancy threshold in the embedded contract are fitted again to the
    converted model on the same validation split (keeping the Keras model's malignant sensitivity).
    --qat-epochs fine-tunes the model under simulated int8 first (see docs/BENCHMARKS.md).
    """
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(message)s", stream=sys.stderr)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    model_path, run_dir = _resolve_model(source)
    from training.runfolder import RunFolder

    contract_path = RunFolder(run_dir or model_path.parent).contract_file
    from edge.model.contract import ContractError, load_contract

    try:
        contract = load_contract(contract_path)
    except (FileNotFoundError, ContractError) as exc:
        raise click.ClickException(f"{exc}; convert needs the contract.json that `train` writes") from None
    out = out or Path("models") / f"{(run_dir or model_path.parent).name}_{mode}.tflite"
    _check_writable(out)
    if data is None:
        from convert.representative import recorded_data

        data = recorded_data(run_dir)
        if data is None:
            raise click.UsageError("--data is needed: the model is not in a run folder that records its data")
        from convert.representative import more_collections

        also = "".join(f" + {d}" for d in more_collections(run_dir, data))
        click.echo(f"data: {data}{also} (recorded in the run)", err=True)
    if not data.exists():
        raise click.ClickException(f"dataset {data} does not exist")
    if qat_epochs and mode != "int8":
        raise click.UsageError("--qat-epochs applies to --int8 only")
    if threshold_on:
        from convert.representative import more_collections

        known = {Path(d).resolve() for d in (data, *more_collections(run_dir, data))}
        strays = [str(c) for c in threshold_on if c.resolve() not in known]
        if strays:
            raise click.UsageError(f"--threshold-on {strays[0]} is not one of the collections the run trained with")
    if contract.task == "segment":
        if qat_epochs or views != "1" or zoom or ensemble:
            raise click.UsageError("--qat-epochs, --views, --zoom and --ensemble are for classifiers")
        _segment(model_path, run_dir, contract, data, out, mode, samples, min_mask_iou, force, seed)
        _sign(out, sign_key)
        return

    from convert.classifier import ClassifierOptions, ConvertError, convert_classifier

    options = ClassifierOptions(mode=mode, samples=samples, min_agreement=min_agreement, force=force,
                                qat_epochs=qat_epochs, qat_lr=qat_lr, threshold_on=threshold_on,
                                max_refused=max_refused, views=int(views), zoom=zoom, seed=seed,
                                ensemble=tuple(_ensemble_member(r, run_dir, contract) for r in ensemble))  # fmt: skip
    try:
        convert_classifier(model_path, run_dir, contract, data, out, options)
    except ConvertError as exc:
        raise click.ClickException(str(exc)) from None
    _sign(out, sign_key)
    click.echo(str(out))


def _ensemble_member(run: Path, source_run: Path | None, contract: ModelContract) -> Path:
    """The model.keras of ``run``, a `train` run that can be averaged with the source run's model: the same
    labels and input, and the same split (so the file's validation and test parts stay unseen by both)."""
    from edge.model.contract import PREPROCESSING_FIELDS, ContractError
    from training.runfolder import RunFolder

    folder = RunFolder(run)
    if not folder.model_file.is_file():
        raise click.ClickException(f"--ensemble {run} is not a training run folder: it has no model.keras")
    try:
        theirs = folder.contract()
    except (FileNotFoundError, ContractError) as exc:
        raise click.ClickException(f"--ensemble {run}: {exc}") from None
    fields = ("labels", *(f for f in PREPROCESSING_FIELDS if f != "image_size"))
    differ = [f for f in fields if getattr(theirs, f) != getattr(contract, f)]
    if theirs.image_size > contract.image_size:  # a smaller one sees the file's input resized inside it
        differ.append(f"image_size (larger: {theirs.image_size} px)")
    if differ:
        raise click.ClickException(f"--ensemble {run} differs from the source model in {', '.join(differ)}")
    if source_run is None or folder.split() != RunFolder(source_run).split():
        raise click.ClickException(f"--ensemble {run} was not trained on the source run's split: train it with the "
                                   "same data, --test-fraction and --val-fraction")  # fmt: skip
    return folder.model_file


def _sign(out: Path, key: Path | None) -> None:
    """Write OUT.sig with ``key`` (nothing without one); a stale signature of an earlier file goes."""
    from edge.model.contract import ContractError
    from edge.model.signing import sign_or_clear

    try:
        signed = sign_or_clear(out, key)
    except (ContractError, OSError) as exc:
        raise click.ClickException(f"cannot sign {out}: {exc}") from None
    if signed is not None:
        click.echo(f"signed: {signed}", err=True)


def _segment(
    model_path: Path,
    run_dir: Path | None,
    contract: ModelContract,
    data: Path,
    out: Path,
    mode: str,
    samples: int,
    min_iou: float,
    force: bool,
    seed: int,
) -> None:
    """A segmentation run (contract task "segment"): mask IoU is the fidelity measure (convert/segment.py)."""
    from convert.segment import SegmentConvertError, convert_segmenter

    try:
        convert_segmenter(
            model_path, run_dir, contract, data, out, mode=mode, samples=samples, min_iou=min_iou, force=force,
            seed=seed,
            show=lambda text: click.echo(text, err=True),
        )  # fmt: skip
    except SegmentConvertError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(out))
