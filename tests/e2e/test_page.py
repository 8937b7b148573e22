"""The supervisor's page in a real headless browser (Debian's Chromium driven by
Playwright) during a live lab call: the token prompt, the bridge appearing with its
number masked and its state changing, the charts drawn, a wrong or no token refused.
In Chinese by default (drawn with Debian's Noto CJK font), English with ``?lang=en``;
both axes in order; no JSON shown; times in the centre's zone; screenshots at a desk's
1280×800 and a wall's 1920×1080 kept in the test's folder.

FastAGI only: process mode has no HTTP API (no page)."""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from gateway.lab.lab import ONEKEY, Lab
from tests.e2e.helpers import TIMEOUT, answering, citizen, finish, settled
from tests.e2e.test_records import http


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    assert executable, "Debian's chromium is installed by `make setup`"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


def open_page(browser: Browser, lab: Lab, answer: str | None, query: str = "",
              size: tuple[int, int] = (1280, 800)) -> tuple[Page, list[str]]:
    """The page, its prompt answered with ``answer`` (None: cancelled); the console's
    errors (a CSP violation shows there) are collected."""
    page = browser.new_context(viewport={"width": size[0], "height": size[1]}).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    def on_dialog(dialog: Dialog) -> None:
        if answer is None:
            dialog.dismiss()
        else:
            dialog.accept(answer)

    page.on("dialog", on_dialog)
    page.goto(f"http://127.0.0.1:{lab.http_port}/{query}")
    return page, errors


def test_the_page_shows_the_live_bridge_its_state_and_the_charts(
        lab: Lab, browser: Browser, tmp_path: Path) -> None:
    agent = answering(lab, "12345", hold_ms=30000)
    seat = answering(lab, "seat1", hold_ms=7000, key=ONEKEY)
    caller = citizen(lab, hold_ms=14000, number="13500135111")
    page, errors = open_page(browser, lab, lab.role_tokens["supervisor"])
    row = page.locator("#live tr", has_text="135****5111")  # the supervisor's view: masked
    row.wait_for(timeout=TIMEOUT * 1000)
    page.screenshot(path=str(tmp_path / "page-live-1280x800.png"), full_page=True)
    bridge_id = row.locator("td").nth(0).inner_text()
    states: list[str] = []  # as the page shows them, every change once
    deadline = time.monotonic() + TIMEOUT
    while row.count() and time.monotonic() < deadline:
        try:  # the page may drop the row between count() and this read
            state = row.get_attribute("data-state", timeout=1000) or ""
        except PlaywrightTimeout:
            continue
        if not states or states[-1] != state:
            states.append(state)
        page.wait_for_timeout(100)
    # the call-taker left: the bridge ended handed_off (the plain call needs no
    # bridge), and the page took it off the live table. Each state shown once, in the
    # table's order; three_party lasts seconds, the others may pass between two polls
    # (handed_off lasts until Asterisk reports the plain call: a loaded machine shows it)
    order = ["requested", "answered", "dialing", "three_party", "handed_off", "ended"]
    assert row.count() == 0 and "three_party" in states and len(states) >= 2, states
    assert states == sorted(states, key=order.index), states
    record, _ = settled(lab, bridge_id)
    assert record["outcome"] == "handed_off"
    # the charts: 24 hours today, this bridge among them; categories; answer bands;
    # four rates drawn on a 0..1 scale
    hours = page.locator("#chart-hour rect")
    assert hours.count() == 24
    assert sum(int(hours.nth(i).get_attribute("data-value") or 0) for i in range(24)) >= 1
    assert page.locator("#chart-category rect").count() >= 1
    assert page.locator("#chart-answer rect").count() == 6
    rates = page.locator("#chart-rates rect")
    assert [rates.nth(i).get_attribute("data-label") for i in range(4)] == \
        ["15秒内接听", "20秒内接听", "110按时反馈", "工单按时答复"]
    # in Chinese, both axes in order, nothing cut, no JSON, local times, a CJK font
    assert page.locator("thead").first.locator("th").all_inner_texts() == [
        "转接编号", "方向", "方式", "状态", "市民号码", "席位", "对方", "事项", "开始时间"]
    assert [hours.nth(i).get_attribute("data-label") for i in range(24)] == \
        [f"{h:02d}" for h in range(24)]
    assert page.locator("#chart-hour text.label").all_text_contents() == \
        [f"{h:02d}" for h in range(24)]
    bands = page.locator("#chart-answer rect")
    assert [bands.nth(i).get_attribute("data-label") for i in range(6)] == \
        ["0-5", "5-10", "10-15", "15-20", "20-30", "30+"]
    categories = page.locator("#chart-month-category text.label").all_text_contents()
    assert categories and all(re.search(r"[\u4e00-\u9fff]", c) for c in categories)
    text = page.locator("body").inner_text()
    assert "{" not in text and "}" not in text
    assert "转接总数" in text and "按小时" in text and "00 " in text
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text)  # no ISO times shown
    assert page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '转接')")
    page.screenshot(path=str(tmp_path / "page-1280x800.png"), full_page=True)
    wall, _ = open_page(browser, lab, lab.role_tokens["supervisor"], size=(1920, 1080))
    wall.locator("#chart-hour rect").first.wait_for(state="attached", timeout=TIMEOUT * 1000)
    wall.screenshot(path=str(tmp_path / "page-1920x1080.png"))
    english, _ = open_page(browser, lab, lab.role_tokens["supervisor"], "?lang=en")
    english.locator("#chart-rates rect").first.wait_for(state="attached",
                                                        timeout=TIMEOUT * 1000)
    assert english.locator("thead th").all_inner_texts()[:4] == \
        ["bridge", "direction", "mode", "state"]
    assert (tmp_path / "page-1280x800.png").stat().st_size > 10_000
    assert finish(caller, seat, agent) == {"citizen": 0, "seat1": 0, "12345": 0}
    assert page.evaluate("sessionStorage.getItem('linkgw-token')") == \
        lab.role_tokens["supervisor"]
    assert errors == []  # no script error, nothing the content security policy blocked


def test_the_page_shows_what_the_shift_hands_over(lab: Lab, browser: Browser,
                                                  tmp_path: Path) -> None:
    """A work order 12345 dispatched is on the handover section, in Chinese, with its
    category's name, status and local times; the shift and what it saw above it."""
    ticket = "20261203" + f"{secrets.randbelow(10 ** 5):05d}"
    status, _ = http(lab, "POST", "workorders", {
        "ticket": ticket, "category": "noise", "summary": "广场舞噪声"},
        lab.role_tokens["12345"], operator="G12345-07")
    assert status == 200
    page, errors = open_page(browser, lab, lab.role_tokens["supervisor"])
    row = page.locator("#handover tr[data-list=open_workorders]", has_text=ticket)
    row.wait_for(timeout=TIMEOUT * 1000)
    cells = row.locator("td").all_inner_texts()
    assert cells[:4] == ["未办结工单", ticket, "噪声扰民", "收到"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", c) for c in cells[4:]), cells
    assert page.locator("#handover").locator("xpath=..").locator("th").all_inner_texts() \
        == ["事项类型", "编号", "事项", "状态", "时间", "期限"]
    shift = page.locator("#shift").inner_text()
    assert shift.startswith("本班 ") and "本班收到工单" in shift and "Asia/Shanghai" in shift
    page.screenshot(path=str(tmp_path / "page-handover-1280x800.png"), full_page=True)
    assert errors == []


def test_a_wrong_token_is_refused_and_not_kept_and_no_token_asks_again(
        lab: Lab, browser: Browser) -> None:
    page, _ = open_page(browser, lab, "wrong-token-0123456789")
    page.locator("#err", has_text="令牌被拒绝（403）").wait_for(timeout=TIMEOUT * 1000)
    assert page.evaluate("sessionStorage.getItem('linkgw-token')") is None
    assert page.locator("#live tr").count() == 0
    page, _ = open_page(browser, lab, None)  # the prompt cancelled
    page.locator("#err", has_text="没有 API 令牌").wait_for(timeout=TIMEOUT * 1000)
    assert page.evaluate("sessionStorage.getItem('linkgw-token')") is None
