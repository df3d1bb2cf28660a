"""``sync.py --render``: one template rendered with its samples, as Slack will get it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from triggers.render import sandbox
from triggers.render.check import (
    automation_context,
    load_samples,
    render_checked,
    sample_file,
    template_line,
    variants,
)
from triggers.spec.template import TemplateRef, looks_like_json


@dataclass
class Rendered:
    """What ``--render`` shows: each sample's rendering, and the problems found."""

    rendered: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def preview(template: Path, events: Path | None, root: Path) -> Rendered:
    """Render one template file with a sample file, and check it like sync would.

    The hostile and long variants are checked too, but only the given samples
    are shown. Raises ValueError (unreadable template or samples) for people.
    """
    if not template.resolve().is_relative_to(root.resolve()):
        root = template.parent  # a template of its own, with its macros beside it
    name = str(template.resolve().relative_to(root.resolve()))
    ref = TemplateRef(template=name)
    try:
        ref.load(root)
    except OSError as exc:
        raise ValueError(f"cannot read {template}: {exc.strerror or exc}") from exc
    error = sandbox.syntax_error(ref.source)
    if error:
        file, line = ref.origin(template_line(error))
        raise ValueError(f"{file}:{line}: {error}")
    samples_path = events or sample_file(root / name)
    samples = (
        load_samples(samples_path)
        if samples_path.is_file() or events
        else [sandbox.sample_event("janitor.sample", "janitor.sample")]
    )
    as_json = looks_like_json(ref.source, name)
    result = Rendered()
    context = automation_context(None)
    for which, event, hostile in variants(samples, as_json):

        def report(message: str, hint: str) -> None:
            result.problems.append(f"{message} ({hint})")

        rendered = render_checked(ref.source, event, context, as_json, hostile, which, report)
        if rendered is not None and not hostile:
            pretty = json.dumps(json.loads(rendered), indent=2, ensure_ascii=False)
            result.rendered.append((which, pretty if as_json else rendered))
    return result
