"""Fuzz blurcli's image reading with damaged files: what decodes, what fails cleanly, what else.

Small valid JPEG, PNG, WebP and TIFF images are damaged the ways tests/image_mutations.py
describes (truncation, cuts, bit flips, overwrites, stray bytes, header and structural-field
damage, damaged metadata in well-formed chunks, dropped and repeated chunks, combinations), with
the same Hypothesis strategies tests/test_fuzz.py uses, and each is given to
`blurcli.decode.decode_photo`. An input either decodes to a sane Photo, fails cleanly (a one-line
BlurcliError naming the file) or does something else: raises another exception, returns a
nonsense Photo, takes over --slow seconds or raises the peak RSS by over --memory MB. Those are
findings, each saved with a reproducer (Python that rebuilds the bytes, and the bytes) under --save.

blurcli catches what the codecs print while it decodes, so the same bytes are also decoded
straight through OpenCV with file descriptor 2 redirected: what libjpeg, libpng, libtiff and
OpenCV's log print is grouped by message (decimal numbers masked), with how often OpenCV still
returned pixels, how often those were exactly the undamaged image's, and what blurcli did. Lines
that reach stderr through decode_photo itself are listed apart (none should). "Silent" damage is
an image that decodes to changed pixels with no message at all.

With --files-every N, every Nth input also goes through `blur_files` and `predict_files` (a tiny
untrained model unless --weights): each result must be 'done', or 'failed' with a one-line error
naming the file and no output or temp file left; the input must be unchanged. What reaches stderr
meanwhile (encoders included) is listed too.

The same --seed with the same code and Hypothesis version gives the same inputs.

    python benchmarks/fuzz_images.py [--examples 5000] [--seed 1] [--save DIR] [--files-every 0]
        [--formats jpeg png-rgba ...] [--kinds truncate field ...] [--max-pixels 4000000]
        [--slow 1.0] [--memory 50] [--hang 60] [--weights W]
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import re
import sys
import tempfile
import time
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for benchmarks.common

import cv2
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings

from benchmarks.common import argument_parser, table_header, table_row
from blurcli.decode import decode_photo
from blurcli.errors import BlurcliError
from blurcli.metadata import image_size
from blurcli.segment import Segmenter, new_segmenter
from tests.image_mutations import (
    FORMATS,
    KINDS,
    Mutant,
    error_problem,
    files_problem,
    mutants,
    peak_rss_mb,
    photo_problem,
)

SOURCE = "fuzz"  # the name decode_photo is given: fuzz.jpg, fuzz.png, ...
OUTCOMES = ("decoded", "failed", "other")


class StderrCatcher:
    """Collects what C libraries write to file descriptor 2 during a `with` block (`.text`)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (open as long as the catcher, reused)
        self.text = ""

    def __enter__(self) -> StderrCatcher:
        sys.stderr.flush()
        self.saved = os.dup(2)
        self.file.seek(0)
        self.file.truncate()
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.stderr.flush()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.file.seek(0)
        self.text = self.file.read().decode("utf-8", "replace")


def message_template(line: str) -> str:
    """A decoder message with what varies masked: OpenCV's log prefix and time, decimal numbers
    (N), hex numbers (0xN) but JPEG markers ('marker 0xd9'), which tell messages apart."""
    line = re.sub(r"^\[\s*(\w+):\d+@[\d.]+\] global ", r"[\1] ", line.strip())
    line = re.sub(r"(?<!marker )\b0x[0-9a-fA-F]+\b", "0xN", line)
    return re.sub(r"\b\d+\b", "N", line)


def joined_lines(text: str) -> list[str]:
    """Non-blank lines, OpenCV's continuation lines (starting '>') joined to the line before."""
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(">") and lines:
            lines[-1] += " " + line.strip()
        elif line.strip():
            lines.append(line.strip())
    return lines


@dataclass
class Tally:
    """Counts of outcomes by format and kind, decoder messages, slowest inputs and findings."""

    counts: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    messages: dict[tuple[str, str], Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    message_example: dict[tuple[str, str], tuple[Mutant, str]] = field(default_factory=dict)
    baseline: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    files: Counter[str] = field(default_factory=Counter)
    findings: list[tuple[str, Mutant]] = field(default_factory=list)
    slowest: tuple[float, Mutant | None] = (0.0, None)
    examples: int = 0


def simpler(a: Mutant, b: Mutant) -> bool:
    """Whether `a` is the simpler reproducer: fewer steps, then an earlier kind, then fewer bytes."""
    return (len(a.steps), KINDS.index(a.kind), len(a.base)) < (len(b.steps), KINDS.index(b.kind), len(b.base))


class Fuzzer:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tally = Tally()
        self.catcher = StderrCatcher()
        self.save: Path | None = args.save
        if self.save:
            self.save.mkdir(parents=True, exist_ok=True)
        self.segmenter = None
        self.originals: dict[tuple[str, int, int, int], tuple[np.ndarray, set[str]]] = {}

    def finding(self, what: str, mutant: Mutant, detail: str = "", stderr: str = "") -> None:
        self.tally.findings.append((what, mutant))
        if self.save:
            stem = f"finding-{len(self.tally.findings):03d}-{mutant.fmt}-{mutant.kind}"
            self.write(stem, mutant, f"# {what}\n{detail}\n# stderr:\n{stderr}")

    def write(self, stem: str, mutant: Mutant, note: str) -> None:
        assert self.save is not None
        (self.save / f"{stem}{mutant.extension}").write_bytes(mutant.data)
        comment = "".join(f"# {line}\n" for line in note.splitlines())
        (self.save / f"{stem}.py").write_text(mutant.reproducer() + comment)

    def decode(self, mutant: Mutant) -> None:
        args = self.args
        data, source = mutant.data, SOURCE + mutant.extension
        if self.save:
            (self.save / "current.py").write_text(mutant.reproducer())  # what was running, if it hangs
        faulthandler.dump_traceback_later(args.hang, exit=True)
        rss = peak_rss_mb()
        detail, problem = "", None
        with self.catcher:
            started = time.perf_counter()
            try:
                photo = decode_photo(data, source, max_pixels=args.max_pixels)
                outcome = "decoded"
                problem = photo_problem(photo, args.max_pixels)
                detail = f"{photo.pixels.shape} {photo.pixels.dtype}"
            except BlurcliError as error:
                outcome, detail = "failed", str(error)
                problem = error_problem(detail, source)
            except Exception as error:  # anything else is a finding
                outcome, detail = "other", traceback.format_exc()
                problem = f"raised {type(error).__name__}: {error}".splitlines()[0]
            seconds = time.perf_counter() - started
        leaked = self.catcher.text
        codec, raw = self.raw_decode(data)
        original, baseline = self.original(mutant)
        intact = raw is not None and raw.shape == original.shape and np.array_equal(raw, original)
        # what the undamaged image prints too is not the damage's doing: left out of the counts
        codec = "\n".join(line for line in joined_lines(codec) if message_template(line) not in baseline)
        grown = peak_rss_mb() - rss
        tally = self.tally
        tally.examples += 1
        counts = tally.counts[(mutant.fmt, mutant.kind)]
        counts[outcome if problem is None else "other"] += 1
        if codec.strip():
            counts[f"{outcome}+stderr"] += 1
        if outcome == "decoded" and not intact:
            counts["decoded+changed"] += 1
            counts["decoded+changed+silent"] += not codec.strip()
        counts["slow"] += seconds > args.slow
        counts["ms_max"] = max(counts["ms_max"], round(seconds * 1000))
        if seconds > tally.slowest[0]:
            tally.slowest = (seconds, mutant)
        for text, where in ((codec, "codec"), (leaked, "leaked")):
            for line in dict.fromkeys(joined_lines(text)):
                template = message_template(line)
                counts_for = tally.messages[(where, template)]
                counts_for["inputs"] += 1
                counts_for["cv2 decoded"] += raw is not None
                counts_for["cv2 decoded, pixels intact"] += intact
                counts_for[outcome] += 1
                known = tally.message_example.get((where, template))
                if known is None or simpler(mutant, known[0]):
                    tally.message_example[(where, template)] = (mutant, line)
        if problem is not None:
            self.finding(problem, mutant, detail, leaked or codec)
        if seconds > args.slow:
            self.finding(f"took {seconds:.2f} s", mutant, detail, leaked or codec)
        if grown > args.memory:
            self.finding(f"peak RSS grew by {grown:.0f} MB", mutant, detail, leaked or codec)
        if args.files_every and tally.examples % args.files_every == 0:
            self.files(mutant)
        faulthandler.cancel_dump_traceback_later()

    def raw_decode(self, data: bytes) -> tuple[str, np.ndarray | None]:
        """What the codecs print decoding `data` straight through OpenCV, as decode_photo does,
        and whether OpenCV returned pixels; whatever blurcli does with those lines. Skipped for a
        header that declares more than --max-pixels (decode_photo refuses it unread)."""
        size = image_size(data)
        if not data or (size is not None and size[0] * size[1] > self.args.max_pixels):
            return "", None
        raised = ""
        with self.catcher:
            try:
                pixels = cv2.imdecodeWithMetadata(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[0]
            except cv2.error as error:
                raised, pixels = f"cv2.error raised: {error}".replace("\n", " ") + "\n", None
        return self.catcher.text + raised, pixels if pixels is not None and pixels.size > 0 else None

    def original(self, mutant: Mutant) -> tuple[np.ndarray, set[str]]:
        """The undamaged image's pixels as OpenCV decodes them, and the message templates the codecs
        print for it (OpenCV's own 16-bit RGBA TIFF and the tests' ICC profile draw warnings)."""
        key = (mutant.fmt, mutant.width, mutant.height, mutant.seed)
        if key not in self.originals:
            with self.catcher:
                pixels = cv2.imdecode(np.frombuffer(mutant.base, np.uint8), cv2.IMREAD_UNCHANGED)
            templates = {message_template(line) for line in joined_lines(self.catcher.text)}
            self.originals[key] = (pixels, templates)
            for template in templates:
                self.tally.baseline[template].add(mutant.fmt)
        return self.originals[key]

    def files(self, mutant: Mutant) -> None:
        """blur_files and predict_files on the input: 'done', or 'failed' cleanly leaving nothing."""
        from blurcli import RunOptions, blur_files, predict_files

        options = RunOptions(max_pixels=self.args.max_pixels, jobs=1)
        with tempfile.TemporaryDirectory() as folder:
            source = Path(folder) / f"in{mutant.extension}"
            data = mutant.data
            source.write_bytes(data)
            for name, run in (("blur", blur_files), ("predict", predict_files)):
                out = Path(folder) / f"out-{name}"
                with self.catcher:
                    started = time.perf_counter()
                    try:
                        results = run([source], out, segmenter=self.segmenter, options=options)
                        problem = files_problem(results, source, out, data)
                    except Exception as error:
                        problem = f"{name}_files raised {type(error).__name__}: {error}".splitlines()[0]
                        results = []
                    seconds = time.perf_counter() - started
                status = results[0].status if len(results) == 1 else "?"
                self.tally.files[f"{name} {status}" if problem is None else f"{name} violation"] += 1
                for line in dict.fromkeys(joined_lines(self.catcher.text)):  # what reached the terminal
                    template = message_template(line)
                    self.tally.messages[(f"{name}_files", template)]["inputs"] += 1
                    self.tally.messages[(f"{name}_files", template)][status] += 1
                    known = self.tally.message_example.get((f"{name}_files", template))
                    if known is None or simpler(mutant, known[0]):
                        self.tally.message_example[(f"{name}_files", template)] = (mutant, line)
                if problem is not None:
                    self.finding(f"{name}_files: {problem}", mutant, "", self.catcher.text)
                if seconds > self.args.slow:
                    self.finding(f"{name}_files took {seconds:.2f} s", mutant, "", self.catcher.text)


def tiny_segmenter(weights: str | None) -> Segmenter:
    """The model for --files-every: --weights, or a tiny untrained one (robustness needs no skill)."""
    import torch

    from blurcli.checkpoint import Checkpoint, save_checkpoint
    from blurcli.model import UNet, UNetConfig

    if weights:
        return new_segmenter(weights, "cpu")
    torch.manual_seed(0)
    config = UNetConfig(width=4, depth=2, stem_stride=1)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tiny.pt"
        save_checkpoint(path, Checkpoint(config=config, state_dict=UNet(config).state_dict(), input_size=64))
        return new_segmenter(str(path), "cpu")


def report(fuzzer: Fuzzer, seconds: float) -> None:
    tally, args = fuzzer.tally, fuzzer.args
    print(
        f"{tally.examples} damaged images (seed {args.seed}, max_pixels {args.max_pixels:,}) "
        f"in {seconds:.1f} s; peak RSS {peak_rss_mb():.0f} MB"
    )
    if tally.slowest[1] is not None:
        print(f"slowest: {tally.slowest[0] * 1000:.0f} ms, {tally.slowest[1]!r}")
    columns = (
        "inputs",
        "decoded",
        "decoded, stderr",
        "decoded, pixels changed",
        "(of which silent)",
        "failed cleanly",
        "failed, stderr",
        "other",
        "slow",
        "max ms",
    )
    for title, key in (("format", 0), ("mutation", 1)):
        print()
        print(table_header(title, *columns))
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for pair, counts in tally.counts.items():
            groups[pair[key]].update({k: v for k, v in counts.items() if k != "ms_max"})
            groups[pair[key]]["ms_max"] = max(groups[pair[key]]["ms_max"], counts["ms_max"])
        for name in (FORMATS, KINDS)[key]:
            if name in groups:
                c = groups[name]
                inputs = sum(c[o] for o in OUTCOMES)
                row = (
                    c["decoded"],
                    c["decoded+stderr"],
                    c["decoded+changed"],
                    c["decoded+changed+silent"],
                    c["failed"],
                    c["failed+stderr"],
                    c["other"],
                )
                print(table_row(name, inputs, *row, c["slow"], c["ms_max"]))
    print()
    titles = {
        "codec": "What the codecs print decoding the same bytes straight through OpenCV",
        "leaked": "What reached stderr through decode_photo itself (not caught by blurcli)",
        "blur_files": "What reached stderr during blur_files (decode, model, encode, write)",
        "predict_files": "What reached stderr during predict_files",
    }
    for where, title in titles.items():
        found = {template: c for (w, template), c in tally.messages.items() if w == where}
        if where.endswith("_files") and not tally.files:
            continue
        print()
        print(f"{title}: {len(found)} distinct messages (N masks numbers)")
        if not found:
            continue
        ordered = sorted(found.items(), key=lambda item: -item[1]["inputs"])
        if where.endswith("_files"):
            print(table_header("inputs", "done", "failed", "message", "simplest"))
            for number, (template, c) in enumerate(ordered):
                mutant, line = tally.message_example[(where, template)]
                stem = f"{where}-{number:03d}-{mutant.fmt}"
                print(table_row(c["inputs"], c["done"], c["failed"], f"`{template}`", stem))
                if fuzzer.save:
                    fuzzer.write(stem, mutant, f"{where} stderr: {line}")
            continue
        print(
            table_header(
                "inputs",
                "cv2 decoded",
                "of which intact",
                "blurcli decoded",
                "blurcli failed",
                "message",
                "simplest",
            )
        )
        for number, (template, c) in enumerate(ordered):
            mutant, line = tally.message_example[(where, template)]
            stem = f"{where}-{number:03d}-{mutant.fmt}"
            failed = c["failed"] + c["other"]
            intact = c["cv2 decoded, pixels intact"]
            print(
                table_row(c["inputs"], c["cv2 decoded"], intact, c["decoded"], failed, f"`{template}`", stem)
            )
            if fuzzer.save:
                fuzzer.write(stem, mutant, f"{where} stderr: {line}")
    if tally.baseline:
        print()
        print("Printed for the undamaged images too (left out of the counts above):")
        for template, formats in sorted(tally.baseline.items()):
            print(f"- `{template}` ({', '.join(sorted(formats))})")
    if tally.files:
        print()
        print("blur_files / predict_files: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.files.items())))
    print()
    if not tally.findings:
        print("findings: none")
        return
    print(f"findings: {len(tally.findings)}" + (f" (reproducers in {fuzzer.save})" if fuzzer.save else ""))
    for what, count in Counter(message_template(what) for what, _ in tally.findings).most_common():
        print(f"  {count} x {what}")
    for what, mutant in tally.findings[:20]:
        print(f"- {what}: {mutant!r}")


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--examples", type=int, default=5000, help="damaged images to try")
    parser.add_argument("--seed", type=int, default=1, help="Hypothesis seed (the same run again)")
    parser.add_argument("--save", type=Path, help="folder for reproducers of findings and messages")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--max-pixels", type=int, default=4_000_000, help="decode_photo's bomb limit")
    parser.add_argument("--slow", type=float, default=1.0, help="seconds over which an input is a finding")
    parser.add_argument("--memory", type=float, default=50.0, help="peak RSS growth (MB) that is a finding")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds after which the run is stopped")
    parser.add_argument("--files-every", type=int, default=0, help="also run blur/predict_files on every Nth")
    parser.add_argument("--weights", help="checkpoint for --files-every (default: a tiny untrained one)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    fuzzer = Fuzzer(args)
    if args.files_every:
        fuzzer.segmenter = tiny_segmenter(args.weights)

    @seed(args.seed)
    @settings(
        max_examples=args.examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(mutants(args.formats, args.kinds))
    def run(mutant: Mutant) -> None:
        fuzzer.decode(mutant)

    started = time.perf_counter()
    run()
    report(fuzzer, time.perf_counter() - started)
    if fuzzer.save:
        (fuzzer.save / "current.py").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
