"""The Mandarin prompts: every default prompt is a shipped file that Asterisk plays best
(8 kHz mono 16-bit WAV), the notice's length is what the config waits for, the text
file parses strictly, and the shipped files are exactly what the text makes."""

from __future__ import annotations

import shutil
import wave
from dataclasses import fields
from pathlib import Path

import pytest

from gateway.config import TransferConfig
from gateway.lab.prompts import OUT, TEXT, PromptError, main, parse

REPO = Path(__file__).resolve().parents[2]
SOUNDS = REPO / "dialplan/sounds"


def seconds(path: Path) -> float:
    with wave.open(str(path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (8000, 1, 2)
        return float(wav.getnframes() / 8000)


def test_every_default_prompt_is_a_shipped_8khz_mono_file() -> None:
    defaults = TransferConfig()
    named = {f.name: getattr(defaults, f.name) for f in fields(defaults)
             if f.name.endswith(("_prompt", "_tone")) and getattr(defaults, f.name)}
    assert set(named) == {"refusal_prompt", "emergency_prompt", "error_tone", "code_prompt",
                          "notice_prompt", "failed_prompt", "return_prompt", "decline_prompt"}
    for key, name in named.items():
        assert name.startswith("linkgw/zh/"), key
        assert 0.5 < seconds(SOUNDS / f"{name}.wav") < 4.0, key
    assert seconds(SOUNDS / "linkgw/zh/recording.wav") > 0.5  # for recording_prompt


def test_the_key_waits_the_shipped_notice_out() -> None:
    length = seconds(SOUNDS / f"{TransferConfig().notice_prompt}.wav")
    assert length <= TransferConfig().notice_seconds <= length + 0.2


def test_the_text_file_names_each_shipped_prompt_once() -> None:
    prompts = parse(TEXT.read_text(encoding="utf-8"))
    assert sorted(prompts) == sorted(p.stem for p in OUT.glob("*.wav"))
    assert prompts["notice"] == "正在转接幺二三四五，请稍候。"


@pytest.mark.parametrize(("text", "says"), [
    ("notice 正在转接\n", ":1: want name<TAB>words"),
    ("Notice\t正在转接\n", ":1: want name<TAB>words"),
    ("# c\nnotice\t\n", ":2: notice: the words must be printable"),
    ("notice\t正在\u2028转接\n", ":1: notice: the words must be printable"),
    ("notice\t正在\x1b[31m转接\n", ":1: notice: the words must be printable"),
    ("notice\ta\nnotice\tb\n", ":2: notice given twice"),
])
def test_a_broken_text_file_names_the_line(text: str, says: str) -> None:
    with pytest.raises(PromptError, match=says.replace("[", r"\[")):
        parse(text, "prompts.zh.tsv")


def test_the_shipped_prompts_are_what_the_text_makes() -> None:
    """espeak-ng and sox are installed by make setup; the same text gives the same
    bytes, so a changed text without make prompts fails here."""
    assert shutil.which("espeak-ng") and shutil.which("sox"), "make setup installs them"
    assert main(["--check"]) == 0
