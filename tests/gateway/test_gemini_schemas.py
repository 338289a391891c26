"""Response schemas against a simulator that refuses what Gemini refuses (annotator/simulator/schema_rules.py),
over the real google-genai SDK and HTTP: every stage's own schema is accepted, what Gemini refuses is refused
with its texts, and the engine sends what Gemini accepts of a schema pydantic writes with `$ref` siblings."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel, Field

from annotator.gateway import Gateway
from annotator.gateway.base import ModelRequest
from annotator.gateway.gemini import GeminiBackend
from annotator.gateway.preflight import check_prompt, probe, stage_schemas
from annotator.gateway.structured import answer_schema
from annotator.simulator.server import SimulatorServer
from tests.support.gateway import KEY, MODELS, settings_for


@pytest.fixture(scope="module")
def server(play):
    with SimulatorServer(play) as running:
        yield running


def client(server: SimulatorServer) -> genai.Client:
    return genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=server.base_url))


def ask(server: SimulatorServer, **config) -> types.GenerateContentResponse:
    config = types.GenerateContentConfig(response_mime_type="application/json", **config)
    gemini = client(server)  # held: a client nobody references closes its connections
    return gemini.models.generate_content(model=MODELS["gemini"], contents="hello", config=config)


def test_every_stage_schema_is_accepted_by_the_strict_simulator(server):
    """The check's call per stage schema (the stage's request shape, its schema as the gateway sends it)."""
    settings = settings_for(server)
    backend = Gateway(settings).backend("gemini")
    for stage, schemas in stage_schemas().items():
        for schema in schemas:
            found = probe(backend, settings, stage, MODELS["gemini"], schema)
            assert found.outcome == "ok", (stage, schema.__name__, found)
    assert server.check_count() == sum(len(s) for s in stage_schemas().values())


def test_an_unknown_keyword_in_response_schema_is_refused_with_the_proto_parser_text(server):
    """responseSchema is a protobuf message: additionalProperties and $defs are unknown names (400)."""
    schema = {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "additionalProperties": False}
    gemini = client(server)
    with pytest.raises(errors.ClientError) as caught:
        gemini.models.generate_content(
            model=MODELS["gemini"],
            contents="hello",
            config={"response_mime_type": "application/json", "response_schema": schema},
        )
    assert caught.value.code == 400 and caught.value.status == "INVALID_ARGUMENT"
    assert (
        "Unknown name" in caught.value.message and "generation_config.response_schema" in caught.value.message
    )
    assert "Cannot find field." in caught.value.message


def test_a_ref_with_siblings_and_a_dangling_ref_are_refused(server):
    sibling = {
        "type": "object",
        "properties": {"sub": {"$ref": "#/$defs/Sub", "title": "Sub field"}},
        "$defs": {"Sub": {"type": "object", "properties": {"a": {"type": "string"}}}},
    }
    with pytest.raises(errors.ClientError, match="only description and default can be set alongside it"):
        ask(server, response_json_schema=sibling)
    dangling = {
        "type": "object",
        "properties": {"sub": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Gone"}]}},
    }
    with pytest.raises(
        errors.ClientError, match=r"reference to undefined schema at properties\.sub\.anyOf\.1"
    ):
        ask(server, response_json_schema=dangling)
    described = {**sibling, "properties": {"sub": {"$ref": "#/$defs/Sub", "description": "a sub"}}}
    assert ask(server, response_json_schema=described).text  # description (and default) may sit beside $ref


def test_a_schema_too_large_to_serve_is_refused(server):
    """Long bounded arrays nested in each other: the "too many states" 400; many array bounds: the bare 400."""
    leaf = {"type": "object", "properties": {f"property_number_{i}": {"type": "string"} for i in range(20)}}
    nested = {"type": "array", "maxItems": 30, "items": {"type": "array", "maxItems": 30, "items": leaf}}
    with pytest.raises(errors.ClientError, match="too many states for serving"):
        ask(server, response_json_schema={"type": "object", "properties": {"rows": nested}})
    bounded = {
        f"list_{i}": {"type": "array", "maxItems": 100, "items": {"type": "string"}} for i in range(10)
    }
    with pytest.raises(errors.ClientError, match="Request contains an invalid argument"):
        ask(server, response_json_schema={"type": "object", "properties": bounded})
    unknown = {"type": "object", "properties": {"a": {"type": "string", "x-unknown": 1}}, "not": {}}
    assert ask(server, response_json_schema=unknown).text  # unsupported keywords are ignored, not refused


class _Sub(BaseModel):
    text: str = ""


class _Titled(BaseModel):
    """A model whose field carries a title and examples beside its `$ref`, as pydantic writes it."""

    sub: _Sub = Field(default_factory=_Sub, title="The sub", examples=[{"text": "x"}], description="a sub")


def test_the_gateway_sends_what_gemini_accepts_of_a_pydantic_schema(server):
    """Before for_gemini() the `$ref` went with its title and examples, and Gemini refused the request."""
    backend = GeminiBackend(settings_for(server))
    schema = answer_schema(_Titled)
    assert set(schema["properties"]["sub"]) > {"$ref", "description"}  # what pydantic writes
    request = ModelRequest(
        stage="check",
        model=MODELS["gemini"],
        prompt=check_prompt("plot", _Titled).text,
        prompt_version="t",
        response_schema=schema,
        schema_name="_Titled",
        max_output_tokens=256,
    )
    answer = backend.generate(request)
    assert _Titled.model_validate_json(answer.text)
    assert schema["properties"]["sub"]["title"] == "The sub"  # the cached stage schema is left as it was
