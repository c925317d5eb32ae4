"""The committed JSON Schemas and AsyncAPI document match the models they are generated from."""

import json
from pathlib import Path

from contracts import topics
from contracts.export import EVENT_PAYLOADS, export

COMMITTED = Path(__file__).resolve().parents[1] / "schemas"
REGENERATE = "contracts/schemas/ has drifted from the models: run `make schemas` and commit it"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_exported_files_are_the_committed_files_byte_for_byte(tmp_path: Path) -> None:
    export(tmp_path)
    exported, committed = _tree(tmp_path), _tree(COMMITTED)
    assert sorted(exported) == sorted(committed), (
        f"{REGENERATE}; only exported: {sorted(set(exported) - set(committed))}, "
        f"only committed (delete them): {sorted(set(committed) - set(exported))}"
    )
    changed = sorted(name for name in exported if exported[name] != committed[name])
    assert changed == [], f"{REGENERATE}; changed: {changed}"


def test_export_returns_the_written_paths_sorted(tmp_path: Path) -> None:
    written = export(tmp_path)
    assert written == sorted(written)
    assert sorted(written) == sorted(p for p in tmp_path.rglob("*") if p.is_file())


def test_export_writes_one_schema_per_event_type(tmp_path: Path) -> None:
    export(tmp_path)
    names = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert names == sorted(f"{event_type}.v1.schema.json" for event_type in EVENT_PAYLOADS)


def test_asyncapi_has_a_channel_for_every_topic(tmp_path: Path) -> None:
    export(tmp_path)
    document = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    assert document["asyncapi"] == "3.0.0"
    addresses = sorted(channel["address"] for channel in document["channels"].values())
    assert addresses == sorted(topics.ALL)


def test_asyncapi_events_channel_carries_each_event_type_with_its_payload_schema(
    tmp_path: Path,
) -> None:
    export(tmp_path)
    document = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    messages = document["components"]["messages"]
    events = next(
        channel
        for channel in document["channels"].values()
        if channel["address"] == topics.OPPORTUNITY_EVENTS
    )
    carried = {messages[name]["name"]: messages[name] for name in events["messages"]}
    assert sorted(carried) == sorted(EVENT_PAYLOADS)
    envelope, specifics = carried["StageAdvanced"]["payload"]["allOf"]
    assert envelope == {"$ref": "#/components/schemas/Envelope"}
    assert specifics["properties"]["event_type"] == {"const": "StageAdvanced"}
    assert specifics["properties"]["payload"] == {"$ref": "#/components/schemas/StageAdvancedV1"}


def test_asyncapi_operations_are_the_opportunity_services_sends_and_receives(
    tmp_path: Path,
) -> None:
    export(tmp_path)
    document = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))
    channels = document["channels"]
    actions = {
        channels[op["channel"]["$ref"].rsplit("/", 1)[1]]["address"]: op["action"]
        for op in document["operations"].values()
    }
    assert actions == {
        topics.OPPORTUNITY_EVENTS: "send",
        topics.OPPORTUNITY_WON: "send",
        topics.OPPORTUNITY_COMMANDS: "receive",
        topics.LEADS_QUALIFIED: "receive",
        topics.LEADS_QUALIFIED_DLQ: "send",
        topics.OPPORTUNITY_COMMANDS_DLQ: "send",
        topics.LEADS_REJECTED: "send",
    }


def test_asyncapi_keys_events_by_opportunity_and_leads_by_lead(tmp_path: Path) -> None:
    export(tmp_path)
    messages = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))["components"][
        "messages"
    ]

    def key(name: str) -> str:
        return str(messages[name]["bindings"]["kafka"]["key"]["description"])

    assert "opportunity id" in key("StageAdvancedEvent")
    assert "opportunity id" in key("OpportunityWon")
    assert "lead id" in key("QualifiedLead")
    assert "lead id" in key("RejectedLead")


def test_asyncapi_dlq_record_is_raw_bytes_with_the_error_in_headers(tmp_path: Path) -> None:
    export(tmp_path)
    refused = json.loads((tmp_path / "asyncapi.json").read_text(encoding="utf-8"))["components"][
        "messages"
    ]["RefusedRecord"]
    assert refused["contentType"] == "application/octet-stream"
    assert refused["payload"]["format"] == "binary"
    assert refused["headers"]["required"] == ["x-error"]
    assert "x-error-field" in refused["headers"]["properties"]
