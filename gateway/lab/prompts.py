"""The shipped Mandarin prompts, made from ``dialplan/sounds/prompts.zh.tsv``.

``python -m gateway.lab.prompts`` (``make prompts``) speaks each line with espeak-ng's
Mandarin voice (Debian's ``espeak-ng``), then ``sox`` makes it what Asterisk plays best:
8 kHz, mono, 16-bit WAV, the silence before and after trimmed, no dither, so the same
text gives the same bytes every time. ``--check`` makes them in a temporary folder and
says whether the shipped files are exactly those.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEXT = REPO / "dialplan/sounds/prompts.zh.tsv"
OUT = REPO / "dialplan/sounds/linkgw/zh"
VOICE, SPEED = "cmn", "220"
TRIM = ["silence", "1", "0.02", "0.5%", "reverse", "silence", "1", "0.02", "0.5%", "reverse"]


class PromptError(ValueError):
    pass


def parse(text: str, source: str = str(TEXT)) -> dict[str, str]:
    """``name<TAB>words`` per line; ``#`` comments and blank lines skipped."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        name, tab, words = line.partition("\t")
        if not tab or not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", name):
            raise PromptError(f"{source}:{number}: want name<TAB>words, name of a-z 0-9 _")
        if not words.strip() or not words.isprintable():
            raise PromptError(f"{source}:{number}: {name}: the words must be printable text")
        if name in out:
            raise PromptError(f"{source}:{number}: {name} given twice")
        out[name] = words.strip()
    return out


def make(prompts: dict[str, str], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    made = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, words in prompts.items():
            spoken = Path(tmp) / f"{name}.wav"
            subprocess.run(["espeak-ng", "-v", VOICE, "-s", SPEED, "-w", str(spoken), words],
                           check=True, timeout=60)
            target = out / f"{name}.wav"
            subprocess.run(["sox", "-D", "-V1", str(spoken), "-r", "8000", "-c", "1", "-b",
                            "16", str(target), *TRIM, "vol", "0.8"], check=True, timeout=60)
            made.append(target)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.lab.prompts",
                                     description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="only say whether the shipped files are what the text makes")
    args = parser.parse_args(argv)
    prompts = parse(TEXT.read_text(encoding="utf-8"))
    if not args.check:
        for path in make(prompts, OUT):
            print(path.relative_to(REPO))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        differ = [p.name for p in make(prompts, Path(tmp))
                  if not (OUT / p.name).exists() or (OUT / p.name).read_bytes() != p.read_bytes()]
    extra = sorted(p.name for p in OUT.glob("*.wav") if p.stem not in prompts)
    for name in differ:
        print(f"{OUT / name}: not what {TEXT.name} makes (run make prompts)")
    for name in extra:
        print(f"{OUT / name}: no line in {TEXT.name}")
    return 1 if differ or extra else 0


if __name__ == "__main__":
    sys.exit(main())
