"""`hf-sqa`: one entry point; every subcommand is a thin wrapper over a documented Python function."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

from .audio import find_audio_files

SCORE_COLUMNS = ["path", "mos", "error", "silent", "duration_s", "lowest_mos", "p10_mos"]
SEGMENT_COLUMNS = ["path", "segment", "start_s", "end_s", "mos", "error", "silent", "lowest_mos", "p10_mos"]


def _expand_inputs(paths: list[str], file_list: str | None, recursive: bool) -> list[str]:
    """Folders become the audio files inside them; a file list adds one path per line (blank lines and
    lines starting with # are skipped). Missing paths stay in the list and fail as bad inputs."""
    inputs: list[str] = []
    for path in paths:
        if Path(path).is_dir():
            found = find_audio_files(path, recursive=recursive)
            if not found:
                print(f"hf-sqa: warning: no audio files in folder {path}", file=sys.stderr)
            inputs.extend(str(p) for p in found)
        else:
            inputs.append(path)
    if file_list:
        lines = Path(file_list).read_text().splitlines()
        inputs.extend(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    return inputs


def _parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N), 0 <= I < N; ValueError naming what is wrong otherwise."""
    index, slash, count = text.partition("/")
    try:
        index_value, count_value = int(index), int(count)
    except ValueError:
        index_value = count_value = -1
    if not slash or count_value < 1 or not 0 <= index_value < count_value:
        raise ValueError(f"expected I/N with 0 <= I < N (part I of N, 0 = first; e.g. 0/4), got {text!r}")
    return index_value, count_value


def _format_mos(value: float) -> str:
    return "" if value != value else f"{value:.4f}"  # NaN -> empty


class _ResultWriter:
    """Streams results to CSV / JSONL as they come (so a long run's output is usable while it runs),
    or collects them for a table on stdout. With segments, each window's row is written as soon as it is
    scored (a long file's first rows appear while it is being scored) and the file's row follows them."""

    def __init__(self, output: str | None, segments: bool, below: float | None = None, append: bool = False):
        self.segments = segments
        self.below = below  # adds the share_below column
        self.rows: list = []
        self.handle = None
        self.format = None
        self.windows_written: dict[int, int] = {}  # input index -> its window rows so far
        if output:
            suffix = Path(output).suffix.lower()
            if suffix not in (".csv", ".jsonl"):
                raise SystemExit(f"hf-sqa: --output must end in .csv or .jsonl, got {output}")
            Path(output).parent.mkdir(parents=True, exist_ok=True)
            append = append and Path(output).is_file() and Path(output).stat().st_size > 0
            self.handle = open(output, "a" if append else "w", newline="")
            self.format = suffix[1:]
            if self.format == "csv":
                self.csv = csv.writer(self.handle)
                if not append:
                    self.csv.writerow(_columns(segments, below))

    def segment(self, result, segment) -> None:
        """One window of `result`, just scored."""
        if not self.segments or self.handle is None:
            return
        k = self.windows_written.get(result.index, 0)
        self.windows_written[result.index] = k + 1
        if self.format == "jsonl":
            self.handle.write(json.dumps({"path": result.source, "segment": k, "start_s": segment.start,
                                          "end_s": segment.end, "mos": segment.mos}) + "\n")
        else:
            self.csv.writerow([result.source, k, f"{segment.start:.3f}", f"{segment.end:.3f}",
                               _format_mos(segment.mos), "", result.is_silent])
        self.handle.flush()

    def write(self, result) -> None:
        summary = [_format_mos(result.lowest_mos), _format_mos(result.p10_mos)]
        if self.below is not None:
            summary.append("" if result.share_below != result.share_below else f"{result.share_below:.4f}")
        if self.handle is None:
            self.rows.append(result)
        elif self.format == "jsonl":
            record = {
                "path": result.source, "mos": None if result.error else result.mos, "error": result.error,
                "silent": result.is_silent, "duration_s": None if result.error else result.duration,
                "lowest_mos": None if result.error else result.lowest_mos,
                "p10_mos": None if result.error else result.p10_mos,
            }
            if self.below is not None:
                record["share_below"] = None if result.error else result.share_below
            if self.segments:
                record["windows"] = len(result.segments)
            self.handle.write(json.dumps(record) + "\n")
        elif self.segments:
            self.csv.writerow([result.source, "", "", "", _format_mos(result.mos), result.error or "", result.is_silent,
                               *summary])
        else:
            self.csv.writerow([result.source, _format_mos(result.mos), result.error or "", result.is_silent,
                               "" if result.error else f"{result.duration:.3f}", *summary])
        if self.handle is not None:
            self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            return
        from .scoring import quality_band  # the MOS's P.800 verbal category ("good", "poor", ...), as in the Space

        width = max([len(r.source) for r in self.rows] + [4])
        print(f"{'path':<{width}}  {'mos':>6}  {'quality':<9}  note")
        for result in self.rows:
            note = result.error or ("digital silence" if result.is_silent else "")
            print(f"{result.source:<{width}}  {_format_mos(result.mos):>6}  {quality_band(result.mos):<9}  {note}".rstrip())
            if self.segments:
                for segment in result.segments:
                    print(f"{'':<{width}}  {segment.mos:6.4f}  {quality_band(segment.mos):<9}  "
                          f"window {segment.start:.2f}-{segment.end:.2f} s")


def _columns(segments: bool, below: float | None) -> list[str]:
    """A CSV output's columns (a JSONL file record has the same keys, + `windows` with segments)."""
    return (SEGMENT_COLUMNS if segments else SCORE_COLUMNS) + (["share_below"] if below is not None else [])


def _finished_inputs(output: str, segments: bool, below: float | None) -> dict[str, float | None]:
    """--resume: the inputs an earlier run of the same command finished in `output` (path -> its MOS, None for
    an input that failed). Their rows stay as written (a file's row and its window rows); what a killed run
    left half written goes: a last line cut short, and the window rows of a file whose own row never came (it
    is scored again). The kept rows are rewritten atomically before the run appends to them."""
    target = Path(output)
    csv_output = target.suffix.lower() == ".csv"
    if not target.is_file() or target.stat().st_size == 0 or target.suffix.lower() not in (".csv", ".jsonl"):
        return {}  # nothing to resume (a wrong suffix is refused by the writer)
    text = target.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a kill mid-write leaves a last line without its newline
    if csv_output:  # rows as lists, path first; a window's row has its segment number and fewer columns
        columns = _columns(segments, below)
        header, *rows = list(csv.reader(complete.splitlines())) or [[]]
        rows = [row for row in rows if 0 < len(row) <= len(columns)]
        mos_at, error_at = columns.index("mos"), columns.index("error")
        file_rows = [(row[0], float(row[mos_at]) if row[mos_at] and not row[error_at] else None) for row in rows
                     if len(row) == len(columns) and not (segments and row[1])]
        path_of = lambda row: row[0]  # noqa: E731
    else:  # a file's record: the score columns (+ share_below, + windows with segments); a window's has "segment"
        columns = _columns(False, below) + (["windows"] if segments else [])
        rows = []
        for number, line in enumerate(complete.splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise SystemExit(f"hf-sqa: --resume: line {number} of {output} is not JSON ({error})") from None
        file_records = [record for record in rows if "segment" not in record]
        header = list(file_records[0]) if file_records else columns
        file_rows = [(record["path"], None if record["error"] else record["mos"]) for record in file_records]
        path_of = lambda record: record["path"]  # noqa: E731
    if header != columns:
        raise SystemExit(f"hf-sqa: --resume: {output} has the columns {header}, this command writes {columns} "
                         "(resume with the options that wrote it: --segments, --below)")
    finished = dict(file_rows)
    kept = [row for row in rows if path_of(row) in finished]
    partial = target.with_name(target.name + ".resume")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        if csv_output:
            csv.writer(handle).writerows([columns, *kept])
        else:
            handle.writelines(json.dumps(record) + "\n" for record in kept)
    partial.replace(target)
    return finished


def _check_same_scoring(finished: dict[str, float | None], model, args) -> None:
    """--resume: the shortest of (up to 100 of) the output's scored files, scored again by this command, must
    get the MOS the output holds for it (within 0.01: bf16 and fp32 agree to a few thousandths, models differ by
    more), or the output was written by another model or other options and mixing them is refused."""
    from .scoring import iter_scores

    scored = [path for path, mos in finished.items() if mos is not None][:100]
    durations = {path: _declared_seconds(path) for path in scored}
    scored = [path for path in scored if durations[path] > 0]
    if not scored:
        return
    probe = min(scored, key=durations.get)
    result = next(iter_scores([probe], model, batch_size=1, channel=args.channel, num_workers=1,
                              precision=args.precision, window_hop=args.hop, below=args.below))
    if not result.ok or abs(result.mos - finished[probe]) > 0.01:
        now = f"{result.mos:.4f}" if result.ok else f"fails ({result.error})"
        raise SystemExit(f"hf-sqa: --resume: {probe} scores {now} with this command but {finished[probe]:.4f} in "
                         f"{args.output}: it was written by another model or other options (--model, --channel, "
                         "--hop, --precision); resume with the command that wrote it, or give another --output")


def _declared_seconds(path: str) -> float:
    """A file's duration from its header (0 when it cannot be read: it fails later, with its reason)."""
    from .audio import AudioError, AudioStream

    try:
        with AudioStream(path) as stream:
            return stream.declared_duration
    except AudioError:
        return 0.0


class _AudioProgress:
    """A tqdm bar in seconds of audio (a long file moves it window by window) showing x real time."""

    def __init__(self, seconds: list[float], quiet: bool):
        from tqdm import tqdm

        self.seconds = seconds
        self.done: dict[int, float] = {}  # input index -> seconds of it counted
        self.start = time.perf_counter()
        self.bar = tqdm(total=math.fsum(seconds), desc="scoring", unit="s", file=sys.stderr, disable=quiet,
                        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of audio [{elapsed}<{remaining}{postfix}]")

    def advance(self, index: int, upto: float) -> None:
        """Input `index` is scored up to `upto` seconds (its whole length when done or failed)."""
        upto = min(upto, self.seconds[index])
        if upto > self.done.get(index, 0.0):
            self.done[index] = upto
            # the exact sum of what is done, not a running sum of steps (whose rounding ends a bar a hair
            # short of its total, or past it)
            self.bar.n = math.fsum(self.done.values())
            self.bar.update(0)
            self.bar.set_postfix_str(f"{self.bar.n / max(time.perf_counter() - self.start, 1e-9):.0f}x real time",
                                     refresh=False)

    def close(self) -> None:
        self.bar.close()


def cmd_score(args) -> int:
    import torch

    from .scoring import iter_scores, load_model, window_hop_samples

    inputs = _expand_inputs(args.paths, args.file_list, args.recursive)
    if not inputs:
        print("hf-sqa: nothing to score (give files, folders or --file-list)", file=sys.stderr)
        return 2
    if args.resume and not args.output:
        print("hf-sqa: --resume continues an --output file; give --output", file=sys.stderr)
        return 2
    if args.shard is not None:
        try:
            index, count = _parse_shard(args.shard)
        except ValueError as error:
            print(f"hf-sqa: --shard: {error}", file=sys.stderr)
            return 2
        # every N-th input from the I-th: shards of a sorted folder get files of all kinds and lengths alike
        total, inputs = len(inputs), inputs[index::count]
        print(f"hf-sqa: shard {index}/{count}: {len(inputs)} of {total} inputs", file=sys.stderr)
        if not inputs:
            return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"hf-sqa: --device {args.device} requested but CUDA is not available", file=sys.stderr)
        return 2
    model = load_model(args.model, device=args.device)
    if args.hop is not None:
        try:
            window_hop_samples(args.hop, model.config)
        except ValueError as error:
            print(f"hf-sqa: --hop: {error}", file=sys.stderr)
            return 2
    finished: dict[str, float | None] = {}
    if args.resume:
        finished = _finished_inputs(args.output, args.segments, args.below)
        _check_same_scoring(finished, model, args)
        total = len(inputs)
        inputs = [path for path in inputs if path not in finished]
        print(f"hf-sqa: resuming {args.output}: {total - len(inputs)} of {total} inputs already scored",
              file=sys.stderr)
    writer = _ResultWriter(args.output, args.segments, args.below, append=args.resume)
    progress = _AudioProgress([_declared_seconds(path) for path in inputs], args.quiet)

    def on_segment(result, segment) -> None:
        writer.segment(result, segment)
        progress.advance(result.index, segment.end)

    failures = sum(mos is None for mos in finished.values())  # an earlier run's bad inputs still count
    try:
        for result in iter_scores(inputs, model, batch_size=args.batch_size, channel=args.channel,
                                  num_workers=args.workers, precision=args.precision, window_hop=args.hop,
                                  below=args.below, on_segment=on_segment):
            failures += not result.ok
            writer.write(result)
            progress.advance(result.index, float("inf"))
    finally:
        writer.close()
        progress.close()
    if failures:
        print(f"hf-sqa: {failures} of {len(inputs) + len(finished)} inputs could not be scored", file=sys.stderr)
    return 1 if failures else 0


def cmd_convert(args) -> int:
    if args.source == "distillmos":
        from .convert import convert_distillmos

        model = convert_distillmos(args.output_dir, weights=args.weights)
    else:
        from .convert import convert_xls_r_sqa

        model = convert_xls_r_sqa(args.head_weights, args.output_dir, backbone=args.backbone, layers=args.layers)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {type(model).__name__} ({params / 1e6:.2f} M parameters) to {args.output_dir}")
    return 0


def cmd_presets(args) -> int:
    from .models import STUDENT_PRESETS, ConvTransformerForMOSRegression, student_config

    print(f"{'preset':<14} {'parameters':>11}")
    for name in STUDENT_PRESETS:
        model = ConvTransformerForMOSRegression(student_config(name))
        print(f"{name:<14} {sum(p.numel() for p in model.parameters()):>11,}")
    return 0


def cmd_degrade(args) -> int:
    from .data.degrade import write_degraded_shards

    paths = write_degraded_shards(args.clean, args.output, args.num, noise=args.noise, rirs=args.rirs,
                                  catalogue=args.catalogue, seed=args.seed, num_proc=args.num_proc,
                                  shard_size=args.shard_size, progress=not args.quiet)
    print(f"{args.num} degraded clips in {len(paths)} shard(s) in {args.output}")
    return 0


def cmd_train_online(args) -> int:
    from .training.fast_student import train_online_student

    catalogues = {}
    for item in args.catalogue:
        name, _, weight = item.partition("=")
        catalogues[name] = float(weight or 1.0)
    final = train_online_student(
        args.clean, args.output, init=args.init, preset=args.preset, teacher=args.teacher, noise=args.noise,
        catalogues=catalogues or None, max_steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.learning_rate, dense_weight=args.dense_weight, freeze_batchnorm=args.freeze_batchnorm,
        heldout=args.heldout, eval_steps=args.eval_steps, num_workers=args.workers, seed=args.seed,
        time_limit_s=args.time_limit and args.time_limit * 60)
    print(f"student in {final}")
    return 0


def cmd_pseudo_label(args) -> int:
    from .data.pseudo_label import pseudo_label
    from .distributed import finish_processes

    paths = pseudo_label(args.teacher, args.data, args.output, batch_size=args.batch_size,
                         shard_size=args.shard_size, num_shards=args.num_shards, shard_index=args.shard_index,
                         device=args.device, precision=args.precision, progress=not args.quiet)
    finish_processes()  # under `accelerate launch`: the ranks end together
    print(f"{len(paths)} shard(s) of {args.output} done by this process")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluation import evaluate_models, format_report, plot_scatter, write_report

    report, scores = evaluate_models(args.model, args.data, batch_size=args.batch_size, device=args.device,
                                     precision=args.precision, n_boot=args.bootstrap)
    print(format_report(report))
    write_report(report, args.output)
    if args.plot:
        plot_scatter(scores, args.plot)
    return 0


def cmd_compare(args) -> int:
    import numpy as np

    from .evaluation import model_agreement

    inputs = _expand_inputs(args.paths, args.file_list, args.recursive)
    if len(inputs) < 3:
        print(f"hf-sqa: compare needs at least 3 inputs, got {len(inputs)} (give files, folders or --file-list)",
              file=sys.stderr)
        return 2
    if args.sample < 3:
        print(f"hf-sqa: --sample must be at least 3, got {args.sample}", file=sys.stderr)
        return 2
    try:
        found = model_agreement(inputs, args.model, args.reference, sample=args.sample, seed=args.seed,
                                batch_size=args.batch_size, device=args.device, precision=args.precision,
                                channel=args.channel)
    except ValueError as error:
        print(f"hf-sqa: {error}", file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, "w", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["path", "mos", "reference_mos", "error"])
            for path, ours, theirs, error in zip(found.inputs, found.model_mos, found.reference_mos, found.errors):
                rows.writerow([path, _format_mos(ours), _format_mos(theirs), error or ""])
    m, failed = found.metrics, sum(error is not None for error in found.errors)
    speeds = {role: found.audio_seconds / max(spent, 1e-9) for role, spent in found.seconds.items()}
    print(f"{args.model} against {args.reference} on {len(found.inputs)} of {found.total} inputs (random sample, "
          f"seed {args.seed}){f'; {failed} could not be scored' if failed else ''}:")
    print(f"  PCC {m['pcc']:.3f} (95 % CI {m['pcc_ci_low']:.3f} to {m['pcc_ci_high']:.3f}), SRCC {m['srcc']:.3f} "
          f"({m['srcc_ci_low']:.3f} to {m['srcc_ci_high']:.3f}), RMSE {m['rmse']:.3f} MOS, mean difference "
          f"{found.mean_difference:+.3f} MOS (model - reference)")
    # a correlation is only as high as the sample's spread allows: a narrow range (all clean, all bad) gives
    # low PCC even at a small RMSE
    reference = found.reference_mos[np.isfinite(found.reference_mos) & np.isfinite(found.model_mos)]
    print(f"  {args.reference}'s scores of the sample: mean {reference.mean():.2f}, SD {reference.std():.2f}, "
          f"range {reference.min():.2f} to {reference.max():.2f}")
    print(f"  {args.model} {found.seconds['model']:.1f} s ({speeds['model']:.1f}x real time), {args.reference} "
          f"{found.seconds['reference']:.1f} s ({speeds['reference']:.1f}x): "
          f"{found.seconds['reference'] / max(found.seconds['model'], 1e-9):.2f}x the reference's speed")
    return 1 if failed else 0


def cmd_prune(args) -> int:
    from .pruning import prune_checkpoint

    report = prune_checkpoint(
        args.model, args.calib, args.output, target_params=args.target_params, target_ratio=args.target_ratio,
        eval_data=args.eval_data, device=args.device, method=args.method, steps=args.steps,
        importance_loss=args.importance_loss, calib_clips=args.calib_clips, batch_size=args.batch_size,
        finetune_steps=args.finetune_steps, final_finetune_steps=args.final_finetune_steps,
        finetune_data=args.finetune_data, frame_weight=args.frame_weight, learning_rate=args.learning_rate,
        final_learning_rate=args.final_learning_rate, l0_steps=args.l0_steps, seed=args.seed,
        eval_clips=args.eval_clips, eval_every=args.eval_every,
        group_sizes=dict(args.group_size) if args.group_size else None,
        recalibrate_batchnorm=not args.no_recalibrate_batchnorm, freeze_batchnorm=not args.train_batchnorm,
    )
    before, after, comparison = report["before"], report["after"], report["evaluation"]["pruned_vs_unpruned"]
    print(f"parameters {before['parameters']:,} -> {after['parameters']:,} ({report['parameter_ratio']:.3f}); "
          f"GMAC/s {before['macs_per_second'] / 1e9:.3f} -> {after['macs_per_second'] / 1e9:.3f}")
    print(f"pruned vs. unpruned on {report['evaluation']['clips']} clips: PCC {comparison['pcc']:.3f} "
          f"({comparison['pcc_ci_low']:.3f}, {comparison['pcc_ci_high']:.3f}) SRCC {comparison['srcc']:.3f} "
          f"({comparison['srcc_ci_low']:.3f}, {comparison['srcc_ci_high']:.3f}) RMSE {comparison['rmse']:.3f}")
    curves = [(f"step {record['step']}", record["finetune_curve"]) for record in report["steps"]]
    if report["final_finetune"]:
        curves.append(("final fine-tuning", report["final_finetune"]["finetune_curve"]))
    for name, curve in curves:
        if curve:
            print(f"{name}: PCC with the unpruned model along the fine-tuning: "
                  + ", ".join(f"{point['pcc']:.3f} @ {point['step']}" for point in curve))
    print(f"wrote {args.output} and {args.output}/pruning_report.json")
    return 0


def _group_size(text: str) -> tuple[str, int]:
    name, eq, size = text.partition("=")
    if not eq or not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected GROUP=N, got {text!r}")
    return name, int(size)


def cmd_push(args) -> int:
    from .hub import push_checkpoint

    if args.dry_run and not args.output_dir:
        raise ValueError("--dry-run needs --output-dir DIR (where the files that would be uploaded go)")
    dataset_ids = {}
    for item in args.dataset_id:
        corpus, eq, dataset_id = item.partition("=")
        if not eq or "/" not in dataset_id:
            raise ValueError(f"--dataset-id takes CORPUS=OWNER/NAME, got {item!r}")
        dataset_ids[corpus] = dataset_id
    result = push_checkpoint(
        args.model_dir, args.repo_id, private=args.private, revision=args.revision,
        dry_run_dir=args.output_dir if args.dry_run else None, token=args.token, eval_report=args.eval_report,
        model_key=args.model_key, kind=args.kind, language=args.language, dataset_ids=dataset_ids,
        measure_speed=args.measure_speed,
    )
    where = result.get("folder") or result.get("commit_url")
    print(f"{len(result['files'])} files {'written to' if args.dry_run else 'uploaded:'} {where}")
    for name in result["files"]:
        print(f"  {name}")
    return 0


def cmd_clean_speech(args) -> int:
    from .data.synth import write_clean_speech

    count = write_clean_speech(args.output, espeak=args.espeak, asterisk=tuple(args.asterisk), seed=args.seed)
    print(f"{count} clean clips in {args.output}")
    return 0


def cmd_corpora(args) -> int:
    from .data.corpora import PREPARERS, format_corpus_table

    if not args.prepare:
        print(format_corpus_table())
        return 0
    name, root = args.prepare
    if name not in PREPARERS:
        print(f"hf-sqa: can prepare {', '.join(PREPARERS)}, not {name}", file=sys.stderr)
        return 2
    print(f"wrote {PREPARERS[name](root)}; use {root} as a SPEC")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-sqa", description="Speech quality assessment (MOS) on the Hugging Face stack.")
    commands = parser.add_subparsers(dest="command", required=True)

    score = commands.add_parser("score", help="predict MOS for audio files")
    score.add_argument("paths", nargs="*", help="audio files or folders")
    score.add_argument("--model", default="distillmos", help="built-in name (distillmos, fast), checkpoint folder or Hub id (default: distillmos)")
    score.add_argument("--recursive", action="store_true", help="look for audio in subfolders of folders too")
    score.add_argument("--file-list", help="text file with one audio path per line")
    score.add_argument("--output", help="write results to OUT.csv or OUT.jsonl (default: table on stdout)")
    score.add_argument("--batch-size", type=int, default=8, help="clips per model forward (default 8)")
    score.add_argument("--segments", action="store_true", help="also report every 7.68 s window's score")
    score.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    score.add_argument("--channel", type=int, default=None, help="score channel N (0 = first) instead of the mono mix")
    score.add_argument("--workers", type=int, default=2, help="background decoding threads (default 2)")
    score.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                       help="fp32: exact (default); bf16: bfloat16 autocast, several times faster on AMX CPUs "
                            "and GPUs, scores within about 1e-3")
    score.add_argument("--hop", type=float, metavar="SECONDS",
                       help="seconds between window starts at most (default: the model's own rule, 1 s for "
                            "distillmos); larger hops score long recordings with fewer windows")
    score.add_argument("--below", type=float, metavar="MOS",
                       help="add share_below: the share of each file's time whose MOS is below this")
    score.add_argument("--resume", action="store_true",
                       help="continue an interrupted run of the same command: keep the rows --output has, score "
                            "only the inputs it lacks (a file a kill cut short is scored again)")
    score.add_argument("--shard", metavar="I/N",
                       help="score only part I of N (0 = first): every N-th input from the I-th, to split a job "
                            "across processes, GPUs or machines, each with its own --output")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(func=cmd_score)

    convert = commands.add_parser("convert", help="import released weights as an hf_sqa checkpoint")
    sources = convert.add_subparsers(dest="source", required=True)
    distillmos = sources.add_parser("distillmos", help="Distill-MOS v7 (pip distillmos)")
    distillmos.add_argument("output_dir")
    distillmos.add_argument("--weights", help="distill_mos_v7.pt (default: the installed distillmos wheel's)")
    xlsr = sources.add_parser("xls-r-sqa", help="an XLS-R-SQA head (lcn-kul/xls-r-analysis-sqa) on its XLS-R backbone")
    xlsr.add_argument("head_weights", help="released head file, e.g. model_300m_lay21_full.pt")
    xlsr.add_argument("output_dir")
    xlsr.add_argument("--backbone", help="Hub id or folder of the wav2vec 2.0 / XLS-R backbone (default from the file name)")
    xlsr.add_argument("--layers", type=int, nargs="+", help="hidden layers the head reads (default from the file name)")
    convert.set_defaults(func=cmd_convert)

    presets = commands.add_parser("presets", help="list the student presets and their sizes")
    presets.set_defaults(func=cmd_presets)

    degrade = commands.add_parser("degrade", help="write degraded speech as parquet shards")
    degrade.add_argument("--clean", required=True, help="SPEC of clean speech")
    degrade.add_argument("--output", required=True, help="folder for the shards (a SPEC afterwards)")
    degrade.add_argument("--num", type=int, required=True, help="number of degraded clips")
    degrade.add_argument("--noise", help="SPEC of noise recordings (adds the NoiseFromClips option)")
    degrade.add_argument("--rirs", help="SPEC of room impulse responses (used instead of synthetic ones)")
    degrade.add_argument("--catalogue", help="degradation catalogue: a shipped one by name (default, mild, "
                         "vocoder) or a YAML / JSON file (default: default)")
    degrade.add_argument("--seed", type=int, default=0)
    degrade.add_argument("--num-proc", type=int, default=1, help="worker processes")
    degrade.add_argument("--shard-size", type=int, default=500, help="clips per shard (default 500)")
    degrade.add_argument("--quiet", action="store_true", help="no progress bar")
    degrade.set_defaults(func=cmd_degrade)

    online = commands.add_parser("train-online", help="distil a fast student on clean speech degraded and "
                                 "labelled by the teacher in every step (GPU when available; resumable)")
    online.add_argument("--clean", required=True, nargs="+", help="folder(s) of clean speech")
    online.add_argument("--output", required=True, help="run folder (checkpoints; the student in OUTPUT/final)")
    online.add_argument("--init", help="start from this checkpoint (fast student or ConvTransformer; default: "
                        "random, --preset)")
    online.add_argument("--preset", default="fast", help="layer sizes of a random start (default fast)")
    online.add_argument("--teacher", default="distillmos", help="built-in name, checkpoint folder or Hub id")
    online.add_argument("--noise", help="SPEC of noise recordings, e.g. a folder (adds the NoiseFromClips option)")
    online.add_argument("--catalogue", nargs="*", default=[], metavar="NAME=WEIGHT",
                        help="degradation catalogues and their shares (default: default=1)")
    online.add_argument("--steps", type=int, default=2000)
    online.add_argument("--batch-size", type=int, default=64)
    online.add_argument("--learning-rate", type=float, default=3e-4)
    online.add_argument("--dense-weight", type=float, default=1.0, help="weight of the teacher's window scores")
    online.add_argument("--freeze-batchnorm", action="store_true", help="keep --init's BatchNorm statistics")
    online.add_argument("--heldout", nargs="*", help="packed held-out set(s) scored every --eval-steps")
    online.add_argument("--eval-steps", type=int, default=500, help="steps between checkpoints (and evaluations)")
    online.add_argument("--workers", type=int, default=2, help="DataLoader processes degrading speech")
    online.add_argument("--seed", type=int, default=0)
    online.add_argument("--time-limit", type=float, help="minutes of training after which the run stops and saves")
    online.set_defaults(func=cmd_train_online)

    label = commands.add_parser("pseudo-label", help="add a teacher's MOS to every example (resumable)")
    label.add_argument("--teacher", default="distillmos", help="built-in name, checkpoint folder or Hub id")
    label.add_argument("--data", required=True, help="SPEC to label")
    label.add_argument("--output", required=True, help="folder for the labelled shards (a SPEC afterwards)")
    label.add_argument("--batch-size", type=int, default=8)
    label.add_argument("--shard-size", type=int, default=500, help="examples per output shard (default 500)")
    label.add_argument("--num-shards", type=int, help="split the work over n processes (default: the "
                       "processes of accelerate launch, else 1)")
    label.add_argument("--shard-index", type=int, help="which of the n parts this process does")
    label.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    label.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    label.add_argument("--quiet", action="store_true", help="no progress bar")
    label.set_defaults(func=cmd_pseudo_label)

    evaluate = commands.add_parser("evaluate", help="PCC/SRCC/KTAU/RMSE of models on labelled SPECs")
    evaluate.add_argument("--model", action="append", required=True, help="model (repeat for several)")
    evaluate.add_argument("--data", action="append", required=True, help="labelled SPEC (repeat for several)")
    evaluate.add_argument("--output", required=True, help="report.json")
    evaluate.add_argument("--plot", help="scatter plot of predicted vs. human MOS (e.g. scatter.png)")
    evaluate.add_argument("--batch-size", type=int, default=8)
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the CIs")
    evaluate.add_argument("--device", default=None)
    evaluate.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    evaluate.set_defaults(func=cmd_evaluate)

    compare = commands.add_parser("compare", help="how closely a model follows a reference model on a random "
                                                  "sample of your audio (PCC/SRCC with CIs, speed of each)")
    compare.add_argument("paths", nargs="*", help="audio files or folders")
    compare.add_argument("--recursive", action="store_true", help="look for audio in subfolders of folders too")
    compare.add_argument("--file-list", help="text file with one audio path per line")
    compare.add_argument("--model", default="fast", help="the model to check (default: fast)")
    compare.add_argument("--reference", default="distillmos", help="the model it should follow (default: distillmos)")
    compare.add_argument("--sample", type=int, default=200, help="inputs scored, drawn at random (default 200)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the sample and of the bootstrap CIs")
    compare.add_argument("--output", help="per-input scores: path,mos,reference_mos,error (CSV)")
    compare.add_argument("--batch-size", type=int, default=8)
    compare.add_argument("--device", default=None)
    compare.add_argument("--channel", type=int, default=None, help="score channel N (0 = first) instead of the mix")
    compare.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    compare.set_defaults(func=cmd_compare)

    prune = commands.add_parser("prune", help="data-driven structured pruning to a parameter target")
    prune.add_argument("--model", required=True, help="built-in name, checkpoint folder or Hub id")
    prune.add_argument("--calib", required=True, help="SPEC of calibration clips (importance scores)")
    prune.add_argument("--output", required=True, help="folder for the pruned checkpoint and pruning_report.json")
    target = prune.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-ratio", type=float, help="keep this share of the parameters (0 < r < 1)")
    target.add_argument("--target-params", type=int, help="keep at most this many parameters")
    prune.add_argument("--method", choices=["taylor", "l0"], default="taylor",
                       help="taylor: Gauss-Newton Taylor importance (default); l0: HardConcrete gates")
    prune.add_argument("--steps", type=int, default=3, help="pruning steps, geometric towards the target")
    prune.add_argument("--importance-loss", choices=["distill", "mos"], default="distill",
                       help="loss the importance refers to: distillation from the unpruned model, or human MOS")
    prune.add_argument("--calib-clips", type=int, default=64, help="calibration clips used (default 64)")
    prune.add_argument("--finetune-steps", type=int, default=300, help="distillation steps after each pruning step")
    prune.add_argument("--final-finetune-steps", type=int, default=1200,
                       help="distillation steps after the last pruning step, on the final structure (default 1200)")
    prune.add_argument("--finetune-data", help="SPEC for the fine-tuning (default: the calibration SPEC)")
    prune.add_argument("--frame-weight", type=float, default=1.0,
                       help="weight of the fine-tuning's hidden-state target: the pruned head's hidden states "
                            "against the unpruned one's, layer by layer (0: the MOS alone)")
    prune.add_argument("--eval-data", help="SPEC to compare pruned and unpruned on (default: --eval-clips clips of "
                       "the calibration SPEC held out from calibration and fine-tuning)")
    prune.add_argument("--eval-clips", type=int, default=64, help="clips held out when --eval-data is not given")
    prune.add_argument("--eval-every", type=int, default=0,
                       help="also compare with the unpruned model every N fine-tuning steps (curve in the report)")
    prune.add_argument("--group-size", type=_group_size, action="append", metavar="GROUP=N",
                       help="fix a unit group's final size, e.g. frontend.convs.1=32 (repeat); the parameter "
                       "target is met from the other groups")
    prune.add_argument("--no-recalibrate-batchnorm", action="store_true",
                       help="keep the unpruned model's BatchNorm statistics after each step")
    prune.add_argument("--train-batchnorm", action="store_true",
                       help="let fine-tuning update BatchNorm statistics (default: fixed after recalibration)")
    prune.add_argument("--batch-size", type=int, default=8)
    prune.add_argument("--learning-rate", type=float, default=3e-4, help="the steps' fine-tuning learning rate")
    prune.add_argument("--final-learning-rate", type=float, default=1e-4,
                       help="learning rate of the final structure's fine-tuning (default 1e-4)")
    prune.add_argument("--l0-steps", type=int, default=100, help="gate training steps per step of --method l0")
    prune.add_argument("--device", default=None)
    prune.add_argument("--seed", type=int, default=0)
    prune.set_defaults(func=cmd_prune)

    push = commands.add_parser("push", help="upload a checkpoint with its model card to the Hub")
    push.add_argument("model_dir", help="checkpoint folder")
    push.add_argument("repo_id", help="Hub model repo, owner/name")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", help="branch to push to (created if needed)")
    push.add_argument("--dry-run", action="store_true", help="write the files to --output-dir, upload nothing")
    push.add_argument("--output-dir", help="folder for --dry-run")
    push.add_argument("--eval-report", help="an hf-sqa evaluate report.json for the card's results")
    push.add_argument("--model-key", help="which model of the report this checkpoint is (if it has several)")
    push.add_argument("--kind", choices=["teacher", "student", "pruned", "imported"],
                      help="card template (default: detected from the checkpoint)")
    push.add_argument("--language", nargs="*", help="ISO 639 codes of the speech the model was trained on")
    push.add_argument("--dataset-id", nargs="*", default=[], metavar="CORPUS=OWNER/NAME",
                      help="Hub benchmark dataset of a corpus in the report (writes .eval_results/CORPUS.yaml)")
    push.add_argument("--measure-speed", action="store_true",
                      help="time scoring on this CPU (2 threads) and state it in the card")
    push.add_argument("--token", help="Hub token (default: the logged-in one)")
    push.set_defaults(func=cmd_push)

    clean = commands.add_parser("clean-speech", help="make a folder of clean speech (espeak-ng, Asterisk prompts)")
    clean.add_argument("--output", required=True)
    clean.add_argument("--espeak", type=int, default=0, help="random espeak-ng utterances to synthesise")
    clean.add_argument("--asterisk", nargs="*", default=[], metavar="LANG",
                       help="add the recorded prompts of asterisk-core-sounds-LANG-g722 (en, es, fr, it, ru)")
    clean.add_argument("--seed", type=int, default=0)
    clean.set_defaults(func=cmd_clean_speech)

    corpora = commands.add_parser("corpora", help="list the public MOS corpora: where, scale, licence")
    corpora.add_argument("--prepare", nargs=2, metavar=("NAME", "ROOT"),
                         help="write labels.csv into a downloaded corpus folder (supported: nisqa)")
    corpora.set_defaults(func=cmd_corpora)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as error:
        print(f"hf-sqa: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
