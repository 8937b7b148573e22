"""What the duty officer hears (pure): a new work order, its number digit by digit, its
category, as one ``&`` list of the shipped Mandarin prompts (``linkgw/zh/…``). Built
from catalogue ids and ASCII digits only: nothing an order holds reaches the dialplan."""

from __future__ import annotations

from gateway.catalogue import POLICE, Catalogue

SOUNDS = "linkgw/zh"


def category_prompt(catalogue: Catalogue, category_id: str) -> str:
    """``cat_<category>``: a police matter says the category it is near; an unknown one
    ``cat_other``."""
    matter = catalogue.police_matter(category_id)
    category = matter.category if matter else category_id
    if category != POLICE and catalogue.category(category) is None:
        return f"{SOUNDS}/cat_other"
    return f"{SOUNDS}/cat_{category}"


def announcement(ticket: str, order: dict[str, str], catalogue: Catalogue) -> str:
    digits = [f"{SOUNDS}/digit_{d}" for d in ticket if d in "0123456789"]
    return "&".join([f"{SOUNDS}/duty_new_order", *digits, f"{SOUNDS}/duty_category",
                     category_prompt(catalogue, order.get("category", ""))])
