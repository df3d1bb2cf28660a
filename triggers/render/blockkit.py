"""Slack's Block Kit limits, checked on a rendered message before Slack sees it.

Slack refuses a whole message (``invalid_blocks``) when one field is too long,
and it answers the webhook with a 400 that nobody reads at 3 a.m. Sync renders
every template with sample and hostile events and checks the result here, so
a template that could break in Slack fails the load instead. Lengths are
counted in characters (code points), as Slack's reference states them.
"""

from __future__ import annotations

from typing import Any

MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 4000  # Slack truncates at 40,000 and advises staying under 4,000
MAX_TEXT = 3000
MAX_HEADER = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTION_ELEMENTS = 25
MAX_ID = 255
BUTTON = {"text": 75, "value": 2000, "url": 3000}
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
TEXT_TYPES = {"plain_text", "mrkdwn"}
BLOCK_TYPES = {"section", "header", "context", "actions", "divider", "image", "rich_text"}


def is_message(value: Any) -> bool:
    """Whether a rendered payload looks like a Block Kit message (and so gets checked)."""
    return isinstance(value, dict) and isinstance(value.get("blocks"), list)


def violations(message: dict[str, Any]) -> list[str]:
    """Every way ``message`` breaks Slack's limits, each naming the JSON path."""
    found: list[str] = []
    text = message.get("text")
    if text is not None:
        _text_value(text, "text", MAX_MESSAGE_TEXT, found)
    blocks = message.get("blocks") or []
    if not text:
        found.append("text: missing; Slack shows it in notifications and needs it for blocks")
    if len(blocks) > MAX_BLOCKS:
        found.append(f"blocks: {len(blocks)} blocks, Slack's limit is {MAX_BLOCKS}")
    for index, block in enumerate(blocks):
        _block(block, f"blocks[{index}]", found)
    return found


def unescaped(message: dict[str, Any], marker: str) -> list[str]:
    """Paths of mrkdwn texts where ``marker`` (text from an event) arrived unescaped.

    A hostile sample puts ``<@U123>`` and the like in every string it can; if
    any mrkdwn text still holds it verbatim, an event can mention or link.
    """
    return [path for path, text in mrkdwn_texts(message) if marker in text]


def mrkdwn_texts(message: dict[str, Any]) -> list[tuple[str, str]]:
    """Every text Slack parses as mrkdwn (the fallback text too), with its path."""
    texts = [("text", str(message["text"]))] if message.get("text") else []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
                texts.append((path + ".text", value["text"]))
            for key, item in value.items():
                walk(item, f"{path}.{key}")
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}[{index}]")

    walk(message.get("blocks") or [], "blocks")
    return texts


def _too_long(value: str, path: str, limit: int, found: list[str]) -> None:
    if len(value) > limit:
        found.append(f"{path}: {len(value):,} characters, Slack's limit is {limit:,}")


def _text_value(value: Any, path: str, limit: int, found: list[str]) -> None:
    if not isinstance(value, str):
        found.append(f"{path}: expected a string, got {type(value).__name__}")
        return
    _too_long(value, path, limit, found)


def _text_object(
    value: Any, path: str, limit: int, found: list[str], plain_only: bool = False
) -> None:
    if not isinstance(value, dict):
        found.append(f"{path}: expected a text object {{type, text}}")
        return
    kind = value.get("type")
    allowed = {"plain_text"} if plain_only else TEXT_TYPES
    if kind not in allowed:
        found.append(f"{path}.type: {kind!r}, expected {' or '.join(sorted(allowed))}")
    text = value.get("text")
    if not text:
        found.append(f"{path}.text: empty; Slack refuses empty text")
        return
    _text_value(text, f"{path}.text", limit, found)


def _block(block: Any, path: str, found: list[str]) -> None:
    if not isinstance(block, dict):
        found.append(f"{path}: expected an object")
        return
    kind = block.get("type")
    if kind not in BLOCK_TYPES:
        found.append(f"{path}.type: {kind!r} is not a Block Kit block for messages")
    if "block_id" in block:
        _text_value(block["block_id"], f"{path}.block_id", MAX_ID, found)
    if kind == "header":
        _text_object(block.get("text"), f"{path}.text", MAX_HEADER, found, plain_only=True)
    elif kind == "section":
        _section(block, path, found)
    elif kind == "context":
        elements = block.get("elements") or []
        if not elements or len(elements) > MAX_CONTEXT_ELEMENTS:
            found.append(f"{path}.elements: {len(elements)}, Slack wants 1 to 10")
        for index, element in enumerate(elements):
            if isinstance(element, dict) and element.get("type") == "image":
                continue
            _text_object(element, f"{path}.elements[{index}]", MAX_TEXT, found)
    elif kind == "actions":
        elements = block.get("elements") or []
        if not elements or len(elements) > MAX_ACTION_ELEMENTS:
            found.append(f"{path}.elements: {len(elements)}, Slack wants 1 to 25")
        for index, element in enumerate(elements):
            _element(element, f"{path}.elements[{index}]", found)


def _section(block: dict[str, Any], path: str, found: list[str]) -> None:
    fields = block.get("fields") or []
    if "text" not in block and not fields:
        found.append(f"{path}: a section needs text or fields")
    if "text" in block:
        _text_object(block["text"], f"{path}.text", MAX_TEXT, found)
    if len(fields) > MAX_FIELDS:
        found.append(f"{path}.fields: {len(fields)} fields, Slack's limit is {MAX_FIELDS}")
    for index, field in enumerate(fields):
        _text_object(field, f"{path}.fields[{index}]", MAX_FIELD_TEXT, found)
    if "accessory" in block:
        _element(block["accessory"], f"{path}.accessory", found)


def _element(element: Any, path: str, found: list[str]) -> None:
    if not isinstance(element, dict) or element.get("type") != "button":
        return  # only buttons are used by the bundle; other elements go unchecked
    _text_object(element.get("text"), f"{path}.text", BUTTON["text"], found, plain_only=True)
    for key in ("value", "url"):
        if key in element:
            _text_value(element[key], f"{path}.{key}", BUTTON[key], found)
    if "action_id" in element:
        _text_value(element["action_id"], f"{path}.action_id", MAX_ID, found)
    if element.get("style") not in (None, "primary", "danger"):
        found.append(f"{path}.style: {element['style']!r}, expected primary or danger")
    confirm = element.get("confirm")
    if isinstance(confirm, dict):
        for key, limit in CONFIRM.items():
            _text_object(
                confirm.get(key),
                f"{path}.confirm.{key}",
                limit,
                found,
                plain_only=key != "text",
            )
