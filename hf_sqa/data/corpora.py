"""Registry of public MOS corpora used to train and evaluate speech quality models.

None of these corpora is on the Hugging Face Hub in a form hf_sqa can rely on, so each entry says where
the corpus lives, how its ratings are scaled and how to map them to MOS 1-5; once downloaded and written
in the MOS folder format (labels.csv with path,mos,...), a corpus is used as a SPEC.

Facts here were checked against the cited source (`source`). Where a fact could not be checked here
(no network beyond package registries), the field says "unverified" rather than guess: look it up on the
download page before relying on it, in particular the licence.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

UNVERIFIED = "unverified"


@dataclass(frozen=True)
class RatingScale:
    """A corpus' rating scale and its linear map to MOS 1-5."""

    name: str
    low: float
    high: float

    def to_mos(self, value: float) -> float:
        if not self.low <= value <= self.high:
            raise ValueError(f"rating {value} is outside the {self.name} scale {self.low:g}..{self.high:g}")
        return 1.0 + 4.0 * (value - self.low) / (self.high - self.low)


ACR_1_TO_5 = RatingScale("ACR 1-5 (ITU-T P.800/P.808)", 1.0, 5.0)
MUSHRA_0_TO_100 = RatingScale("0-100 (ITU-R BS.1534 / MUSHRA-style)", 0.0, 100.0)


@dataclass(frozen=True)
class Corpus:
    name: str
    description: str
    location: str  # Hub id or download page
    label_column: str
    scale: RatingScale
    licence: str
    source: str  # where the facts above were checked

    def to_mos(self, value: float) -> float:
        return self.scale.to_mos(value)


_CS2022 = "ConferencingSpeech 2022 challenge, 'Training/Dev datasets' README (github.com/ConferencingSpeech/ConferencingSpeech2022)"

CORPORA: dict[str, Corpus] = {
    corpus.name: corpus
    for corpus in (
        Corpus(
            name="nisqa",
            description="NISQA Corpus: >14,000 clips, simulated (codecs, packet loss, noise) and live (phone, "
            "Zoom, Skype, WhatsApp) conditions; overall quality plus noisiness, coloration, discontinuity, "
            "loudness; ~5 valid votes per clip (P.808 crowdsourcing)",
            location="https://depositonce.tu-berlin.de/bitstream/11303/13012.5/9/NISQA_Corpus.zip "
            "(description: https://github.com/gabrielmittag/NISQA/wiki/NISQA-Corpus)",
            label_column="NISQA_corpus_file.csv: mos (dimensions noi, col, dis, loud), audio filepath_deg "
            "(relative to the corpus folder), subset db",
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source=_CS2022 + "; NISQA's config/train_nisqa_cnn_sa_ap.yaml (github.com/gabrielmittag/NISQA)",
        ),
        Corpus(
            name="pstn",
            description="PSTN corpus (Mittag et al., Interspeech 2020): 58,709 degraded 10 s clips over "
            "telephone networks, 40,739 from noisy and 17,970 from clean references (P.808)",
            location="ConferencingSpeech 2022 datasets page (part of the PSTN training set)",
            label_column=UNVERIFIED,
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source=_CS2022,
        ),
        Corpus(
            name="tencent",
            description="Tencent corpus: ~10k Chinese clips with simulated online-conferencing impairments "
            "without reverberation, ~4k simulated and live-recorded clips with reverberation (P.808)",
            location="https://www.dropbox.com/s/ocmn78uh2lu5iwg/TencentCorups.zip (mirror: share.weiyun.com/B4IS0l3z)",
            label_column=UNVERIFIED,
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source=_CS2022,
        ),
        Corpus(
            name="iub",
            description="IU Bloomington corpus (Dong & Williamson, Interspeech 2020): 36,000 real-world "
            "clips of 3-6 s (16 kHz, 16-bit mono) from COSINE and VOiCES, ~45 h, crowdsourced ratings",
            location="Google Drive folder linked from the ConferencingSpeech 2022 datasets page",
            label_column=UNVERIFIED,
            scale=MUSHRA_0_TO_100,
            licence=UNVERIFIED,
            source=_CS2022,
        ),
        Corpus(
            name="conferencingspeech2022",
            description="ConferencingSpeech 2022 challenge compilation of Tencent, NISQA, PSTN (and IUB as "
            "extra material): ~86,000 training/development clips, 7,200 evaluation clips; Chinese, English, "
            "German",
            location="https://github.com/ConferencingSpeech/ConferencingSpeech2022",
            label_column="per sub-corpus",
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source=_CS2022,
        ),
        Corpus(
            name="somos",
            description="SOMOS (Maniati et al., Interspeech 2022): 20K synthetic utterances of the LJ Speech "
            "voice from 200 neural TTS systems (LPCNet vocoder), naturalness MOS from Amazon Mechanical Turk",
            location=UNVERIFIED,
            label_column=UNVERIFIED,
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source="arXiv 2204.03040 abstract",
        ),
        Corpus(
            name="bvcc",
            description="BVCC, the VoiceMOS Challenge 2022 main-track data: samples of 187 text-to-speech and "
            "voice-conversion systems spanning a decade, rated for naturalness",
            location=UNVERIFIED,
            label_column=UNVERIFIED,
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source="The VoiceMOS Challenge 2022, arXiv 2203.11389 abstract",
        ),
        Corpus(
            name="tcd-voip",
            description="TCD-VoIP (Trinity College Dublin): VoIP degradations (e.g. chopped and clipped speech)",
            location=UNVERIFIED,
            label_column=UNVERIFIED,
            scale=ACR_1_TO_5,
            licence=UNVERIFIED,
            source=UNVERIFIED,
        ),
        *(
            Corpus(name=name, description="listed in issue #3 among the paper's corpora; not identified from "
                   "the sources reachable here", location=UNVERIFIED, label_column=UNVERIFIED, scale=ACR_1_TO_5,
                   licence=UNVERIFIED, source=UNVERIFIED)
            for name in ("tub", "genspeech")
        ),
    )
}


def get_corpus(name: str) -> Corpus:
    key = name.lower()
    if key not in CORPORA:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(CORPORA)}")
    return CORPORA[key]


def format_corpus_table() -> str:
    """The registry as a plain-text table (what `hf-sqa corpora` prints)."""
    lines = []
    for corpus in CORPORA.values():
        lines += [
            f"{corpus.name}",
            f"  {corpus.description}",
            f"  where:   {corpus.location}",
            f"  labels:  {corpus.label_column}; scale {corpus.scale.name} -> MOS = 1 + 4 * (x - "
            f"{corpus.scale.low:g}) / {corpus.scale.high - corpus.scale.low:g}",
            f"  licence: {corpus.licence}",
            f"  checked: {corpus.source}",
        ]
    return "\n".join(lines)


NISQA_DIMENSIONS = ("noi", "col", "dis", "loud")


def prepare_nisqa(root: str | Path) -> Path:
    """Write labels.csv (hf_sqa's MOS folder format) into an unpacked NISQA Corpus folder, so the folder
    is a SPEC. Reads NISQA_corpus_file.csv; keeps the quality dimensions; `corpus` is the NISQA subset
    (db column, e.g. NISQA_TRAIN_SIM). Rows whose MOS is missing or not a number are refused."""
    root = Path(root)
    source = root / "NISQA_corpus_file.csv"
    if not source.is_file():
        raise FileNotFoundError(f"{source}: not an unpacked NISQA Corpus (NISQA_corpus_file.csv is missing)")
    with open(source, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"filepath_deg", "mos", "db"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{source}: missing column(s) {sorted(missing)}")
        dimensions = [d for d in NISQA_DIMENSIONS if d in reader.fieldnames]
        rows, bad = [], []
        for line, record in enumerate(reader, start=2):
            try:
                mos = ACR_1_TO_5.to_mos(float(record["mos"]))
            except ValueError as error:
                bad.append(f"line {line}: {record['mos']!r}: {error}")
                continue
            rows.append([record["filepath_deg"], f"{mos:.6g}", record["db"]] + [record[d] for d in dimensions])
    if bad:
        raise ValueError(f"{source}: {len(bad)} row(s) with unusable MOS:\n  " + "\n  ".join(bad[:20]))
    target = root / "labels.csv"
    with open(target, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "mos", "corpus"] + dimensions)
        writer.writerows(rows)
    return target


PREPARERS = {"nisqa": prepare_nisqa}
