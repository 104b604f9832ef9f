"""``edge-detect``: classify skin-lesion images from a camera, a video, or files, on the device.

    edge-detect --camera                    # the kiosk: live camera, overlay window when a display exists
    edge-detect --source lesion.jpg         # one image, a folder, a glob or a video file
    edge-detect --source photos/ --json     # one JSON line per image on stdout
    edge-detect --inspect --model m.tflite  # the model's embedded contract
    edge-detect --segment --source lesion.jpg  # outline the lesion first, classify its crop

Results go to stdout (human lines or ``--json``); logs and errors go to stderr. Exit codes: 0 done,
1 the run failed (camera lost, disk full), 2 bad usage or an unusable model.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from edge.capture.sources import VIDEO_SUFFIXES, SourceError
from edge.model.contract import ContractError
from edge.model.modelfile import read_contract
from edge.model.runtime import RuntimeMissingError
from edge.run import detect
from edge.run.detect import RunOptions
from edge.run.sinks import SaveError

__all__ = ["DEFAULT_MODEL", "DEFAULT_SEGMENTER", "DEMO_IMAGES", "cli", "main"]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO_ROOT / "models" / "isic8_int8.tflite"
DEFAULT_SEGMENTER = REPO_ROOT / "models" / "lesion_segment_int8.tflite"
DEMO_IMAGES = REPO_ROOT.parent / "shared" / "data" / "isic9" / "train"


class Fail(click.ClickException):
    """One sentence on stderr and an exit code: 1 for a failed run, 2 for bad usage or a bad model."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _resolution(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        width, height = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT such as 640x480, got {value!r}") from None
    if not (16 <= width <= 8192 and 16 <= height <= 8192):
        raise click.BadParameter(f"width and height must be within 16..8192, got {value!r}")
    return width, height


def _host_port(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"expected HOST:PORT such as 127.0.0.1:8080, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    under_systemd = "JOURNAL_STREAM" in os.environ or "INVOCATION_ID" in os.environ
    fmt = "%(levelname)s %(name)s: %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(message)s"
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    handler.set_name("edge-detect")
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "edge-detect"] + [handler]
    root.setLevel(level.upper())
    try:
        import cv2

        quiet = level.upper() != "DEBUG"  # OpenCV's own warnings (e.g. probing a missing camera)
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR if quiet else cv2.utils.logging.LOG_LEVEL_INFO)
    except (ImportError, AttributeError):  # pragma: no cover - older OpenCV builds
        pass


def _check_signature(model: Path, trusted_key: Path | None) -> None:
    """With a trusted key, refuse a model file it did not sign (edge.model.signing)."""
    if trusted_key is None:
        return
    from edge.model.signing import verify_file

    try:
        verify_file(model, trusted_key)
    except ContractError as exc:
        raise Fail(f"unusable model: {_first_line(exc)}", 2) from exc
    log.info("%s is signed by the trusted key %s", model.name, trusted_key)


_MODEL_KINDS = {  # kind: (what a person calls it, how to make one)
    "classifier": ("model", "train and convert one, or pass --model"),
    "segmenter": ("segmentation model", "train and convert one (train DATA --task segment)"),
}


def _load_model(kind: str, model: Path, threads: int | None, trusted_key: Path | None = None) -> Any:
    """The one loader of contract-checked model files: present, signed when a key is trusted, its contract
    right for ``kind``; every failure is one sentence."""
    from edge.model.classifier import Classifier
    from edge.model.segment import Segmenter

    name, hint = _MODEL_KINDS[kind]
    default = DEFAULT_MODEL if kind == "classifier" else DEFAULT_SEGMENTER  # read now: tests and callers may move it
    if not model.is_file():
        raise Fail(f"no {name} at {model}; {hint if model == default else 'check the path'}", 2)
    _check_signature(model, trusted_key)
    try:
        loaded = (Classifier if kind == "classifier" else Segmenter)(model, threads=threads)
    except ContractError as exc:
        raise Fail(f"unusable {name}: {_first_line(exc)}", 2) from exc
    except RuntimeMissingError as exc:
        raise Fail(_first_line(exc), 1) from exc
    c = loaded.contract
    log.info("%s %s (%s, %d labels, %dpx) on %s", kind, model.name, c.arch, len(c.labels), c.image_size,
             loaded.model.runtime)  # fmt: skip
    return loaded


def _camera_present(index: int) -> bool:
    from edge.capture.sources import picamera_status

    if picamera_status()[0]:
        return True
    if sys.platform.startswith("linux"):
        return Path(f"/dev/video{index}").exists()
    import cv2

    cap = cv2.VideoCapture(index)
    try:
        return bool(cap.isOpened())
    finally:
        cap.release()


def _demo_source(camera_index: int) -> str | None:
    """None for the camera, else the demo image folder; Fail when there is neither."""
    if _camera_present(camera_index):
        click.echo(f"demo: using camera {camera_index}", err=True)
        return None
    if DEMO_IMAGES.is_dir():
        click.echo(f"demo: no camera found, classifying the sample images in {DEMO_IMAGES}", err=True)
        return str(DEMO_IMAGES)
    raise Fail(f"demo: no camera found and no sample images at {DEMO_IMAGES}; pass --source PATH", 2)


def _display_wanted(display: bool | None, camera: bool) -> bool:
    from edge.run.sinks import gui_available

    has_screen = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if display is None:
        if camera and has_screen and not gui_available():
            log.info("no window: this OpenCV build has no GUI (opencv-python-headless)")
        return camera and has_screen and gui_available()
    if display and not gui_available():
        raise Fail(
            "--display needs an OpenCV build with a GUI, but this one is opencv-python-headless; "
            "install opencv-python or drop --display",
            2,
        )
    if display and not has_screen:
        raise Fail("--display needs a screen, but neither DISPLAY nor WAYLAND_DISPLAY is set", 2)
    return display


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--camera", is_flag=True, envvar="EDGE_DETECT_CAMERA", help="Classify the live camera.")
@click.option(
    "--source",
    metavar="PATH",
    envvar="EDGE_DETECT_SOURCE",
    help="An image, a folder of images (searched recursively), a glob pattern or a video file.",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGE_DETECT_MODEL",
    show_default="models/isic8_int8.tflite",
    help="A .tflite classifier with an embedded contract (made by `convert`).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 64),
    envvar="EDGE_DETECT_THREADS",
    show_default="the runtime's choice",
    help="Interpreter threads.",
)
@click.option(
    "--camera-index",
    type=click.IntRange(0),
    default=0,
    envvar="EDGE_DETECT_CAMERA_INDEX",
    show_default=True,
    help="Camera number (/dev/videoN, or the Pi camera's index).",
)
@click.option(
    "--resolution",
    default="640x480",
    callback=_resolution,
    envvar="EDGE_DETECT_RESOLUTION",
    show_default=True,
    metavar="WxH",
    help="Requested camera resolution.",
)
@click.option(
    "--fps",
    type=click.FloatRange(1, 120),
    default=15.0,
    envvar="EDGE_DETECT_FPS",
    show_default=True,
    help="Requested camera frame rate.",
)
@click.option(
    "--realtime",
    is_flag=True,
    help="Play a video --source at its own frame rate, like a camera (frames are dropped when slower).",
)
@click.option(
    "--loop",
    is_flag=True,
    envvar="EDGE_DETECT_LOOP",
    help="Play a video --source over and over (a demo kiosk); the page never says the camera stopped.",
)
@click.option(
    "--display/--no-display",
    default=None,
    envvar="EDGE_DETECT_DISPLAY",
    show_default="a window for the camera when a screen is attached",
    help="Show annotated frames in a window (needs a GUI build of OpenCV).",
)
@click.option(
    "--json", "json_lines", is_flag=True, envvar="EDGE_DETECT_JSON", help="One JSON line per result on stdout."
)
@click.option(
    "--save",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="EDGE_DETECT_SAVE",
    help="Write annotated frames (JPEG) into this folder.",
)
@click.option(
    "--benchmark",
    type=click.IntRange(1),
    metavar="N",
    help="Classify N frames (repeating short inputs) and print latency percentiles and FPS.",
)
@click.option("--inspect", is_flag=True, help="Print the model's embedded contract as JSON and exit.")
@click.option(
    "--segment",
    "segment_model",
    is_flag=False,
    flag_value=str(DEFAULT_SEGMENTER),
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGE_DETECT_SEGMENT",
    metavar="[SEG_MODEL]",
    help="Outline the lesion with this segmenter first (models/lesion_segment_int8.tflite when no path is given), "
    "report its area and border irregularity, and classify its crop (the centre crop when none is found).",
)
@click.option(
    "--smooth/--no-smooth",
    default=True,
    envvar="EDGE_DETECT_SMOOTH",
    show_default=True,
    help="Average probabilities over consecutive camera or video frames.",
)
@click.option(
    "--quality-gate/--no-quality-gate",
    default=True,
    envvar="EDGE_DETECT_QUALITY_GATE",
    show_default=True,
    help="Ask for a retake on blurred, badly exposed or empty frames.",
)
@click.option(
    "--pipelined/--serial",
    default=True,
    envvar="EDGE_DETECT_PIPELINED",
    show_default=True,
    help="Prepare the next frame in a worker thread while the model runs on this one.",
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    envvar="EDGE_DETECT_LOG_LEVEL",
    show_default=True,
    help="Detail of the log on stderr.",
)
@click.option(
    "--demo",
    is_flag=True,
    help="Try it out: the default model on the camera, or on the sample images when no camera is found.",
)
@click.option(
    "--serve",
    metavar="HOST:PORT",
    callback=_host_port,
    envvar="EDGE_DETECT_SERVE",
    help="Serve the kiosk web page instead of printing results.",
)
@click.option(
    "--token",
    envvar="EDGE_DETECT_TOKEN",
    metavar="TOKEN",
    show_default="none: loopback only",
    help="Access token for --serve, required to listen beyond 127.0.0.1 (Bearer header, or ?token= once).",
)
@click.option(
    "--record",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="EDGE_DETECT_RECORD",
    metavar="DIR",
    show_default="nothing is written",
    help="With --serve: save captures and uploads (image + JSON) in this folder.",
)
@click.option(
    "--tls-cert",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGE_DETECT_TLS_CERT",
    metavar="CERT.pem",
    help="With --serve and --tls-key: serve the page over HTTPS with this certificate (chain).",
)
@click.option(
    "--tls-key",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGE_DETECT_TLS_KEY",
    metavar="KEY.pem",
    help="The private key of --tls-cert.",
)
@click.option(
    "--trusted-key",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="EDGE_DETECT_TRUSTED_KEY",
    metavar="PUB.pem",
    help="Refuse model files not signed by this Ed25519 public key (MODEL.tflite.sig, from convert --sign-key).",
)
@click.version_option(package_name="skinedge", prog_name="edge-detect")
def cli(
    camera: bool,
    source: str | None,
    model: Path | None,
    threads: int | None,
    camera_index: int,
    resolution: tuple[int, int] | None,
    fps: float,
    realtime: bool,
    loop: bool,
    display: bool | None,
    json_lines: bool,
    save: Path | None,
    benchmark: int | None,
    inspect: bool,
    segment_model: Path | None,
    smooth: bool,
    quality_gate: bool,
    pipelined: bool,
    log_level: str,
    demo: bool,
    serve: tuple[str, int] | None,
    token: str | None,
    record: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    trusted_key: Path | None,
) -> None:
    """Classify skin-lesion images on this device. Decision support only: not a diagnosis."""
    _configure_logging(log_level)
    model = model or DEFAULT_MODEL
    if inspect:
        try:
            click.echo(json.dumps(read_contract(model).summary(), indent=2, sort_keys=True))
        except FileNotFoundError as exc:
            raise Fail(f"no model at {model}", 2) from exc
        except ContractError as exc:
            raise Fail(_first_line(exc), 2) from exc
        return
    if demo and not camera and source is None:
        if not model.is_file():
            _load_model("classifier", model, threads)  # the one-sentence "no model at ..." before anything else
        source = _demo_source(camera_index)
        camera = source is None
    if camera and source is not None:
        raise click.UsageError("pass either --camera or --source, not both")
    if not camera and source is None:
        raise click.UsageError("nothing to classify: pass --camera or --source PATH (or try --demo)")
    if loop and (source is None or Path(source).suffix.lower() not in VIDEO_SUFFIXES):
        raise click.UsageError("--loop plays a video --source over and over: give a video file")
    if serve is None and record is not None:
        raise click.UsageError("--record saves kiosk captures and uploads: it needs --serve HOST:PORT")
    if serve is None and (tls_cert or tls_key):
        raise click.UsageError("--tls-cert and --tls-key serve the kiosk page over HTTPS: they need --serve HOST:PORT")
    if serve is not None and segment_model is not None:
        raise click.UsageError("--segment works with --camera and --source, not yet with the --serve kiosk page")

    classifier = _load_model("classifier", model, threads, trusted_key)
    segmenter = _load_model("segmenter", segment_model, threads, trusted_key) if segment_model is not None else None
    from edge.capture.sources import open_source
    from edge.run.stopping import StopSignals

    stop = threading.Event()

    def make_source() -> Any:
        return open_source(
            source,
            camera=camera,
            camera_index=camera_index,
            resolution=resolution,
            fps=fps,
            realtime=realtime,
            loop=loop,
            stop=stop,
        )

    if serve is not None:
        _serve(classifier, make_source(), serve, token, record, smooth, quality_gate, (tls_cert, tls_key))
        return
    show = _display_wanted(display, camera)
    signals = StopSignals(stop, doing="finishing the current frame").install()
    try:
        options = RunOptions(show, json_lines, save, benchmark, smooth, quality_gate, pipelined)
        detect.run(classifier, make_source, stop, options, segmenter)
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): stop without a message
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit cannot fail again
        log.debug("stdout closed; stopping")
        sys.exit(1)
    except FileNotFoundError as exc:
        raise Fail(_first_line(exc), 2) from exc
    except (SaveError, SourceError, OSError) as exc:  # disk full, camera lost, unreadable video
        raise Fail(_first_line(exc), 1) from exc
    finally:
        signals.restore()
    if stop.is_set():
        log.info("stopped")


def _serve(
    classifier: Any,
    source: Any,
    address: tuple[str, int],
    token: str | None = None,
    record: Path | None = None,
    smooth: bool = True,
    quality_gate: bool = True,
    tls: tuple[Path | None, Path | None] = (None, None),
) -> None:
    """Hand over to the kiosk web page (``edge.kiosk.web.serve``), when this install has it."""
    try:
        from edge.kiosk import web
    except ImportError as exc:
        raise Fail(f"--serve is not available in this install ({_first_line(exc)})", 2) from exc
    serve = getattr(web, "serve", None)
    if serve is None:
        raise Fail("--serve is not available in this install (edge.kiosk.web has no serve())", 2)
    try:
        serve(
            classifier,
            source,
            host=address[0],
            port=address[1],
            token=token,
            record_dir=record,
            smooth=smooth,
            quality_gate=quality_gate,
            tls_cert=tls[0],
            tls_key=tls[1],
        )
    except ValueError as exc:  # e.g. a public address without an access token, an unusable certificate
        raise Fail(_first_line(exc), 2) from exc
    except OSError as exc:  # the address cannot be bound
        raise Fail(_first_line(exc), 1) from exc


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="edge-detect")
