"""Record ids follow what shapes the answers: each stage's backend, model, prompt template content,
temperature, thinking and media resolution, and the proxy's fps. Changing any of them gives new ids, so the
changed pipeline annotates again instead of keeping the old records."""

from __future__ import annotations

import string

import pytest

from annotator import prompting
from annotator.pricing import Price
from annotator.settings import ModelSettings
from workers.context import RunContext
from workers.splitter.settings import ProxySettings, SplitSettings

CTX = RunContext(
    job_id="job",
    db_url="sqlite://",
    out_dir="out",
    models=ModelSettings(_env_file=None),
    split=SplitSettings(_env_file=None),
)


def version(ctx: RunContext = CTX, proxy: ProxySettings | None = None, **values) -> str:
    split = SplitSettings(_env_file=None, proxy=proxy or ProxySettings())
    return ctx.model_copy(
        update={"models": ModelSettings(_env_file=None, **values), "split": split}
    ).pipeline_version()


@pytest.mark.parametrize(
    "values",
    [
        {"script_model": "gemini-4-hydrogen"},
        {"distill_backend": "gemini", "distill_model": "gemini-3.8-flash"},
        {"temperature": 0.7},
        {"plot_media_resolution": "low"},
        {"script_media_resolution": "high"},
        {
            "prices": {
                "gemini-3.8-flash": Price(thinking={"control": "level", "levels": ["low"], "default": "low"})
            }
        },
    ],
)
def test_a_setting_that_shapes_answers_changes_the_ids(values):
    assert version(**values) != version()


def test_the_proxys_size_and_fps_change_the_ids():
    assert version(proxy=ProxySettings(fps=2.0)) != version()
    assert version(proxy=ProxySettings(height=240)) != version()


@pytest.mark.parametrize("stage", ["script", "distill", "plot_next"])
def test_an_edited_prompt_template_changes_the_ids(monkeypatch, stage):
    before = version()
    real = prompting.template

    def edited(name: str, number: int = 1) -> string.Template:
        text = real(name, number).template
        return string.Template(text + "\nOne more instruction." if name == stage else text)

    monkeypatch.setattr(prompting, "template", edited)
    assert version() != before


def test_the_same_settings_give_the_same_ids():
    assert version() == version()
