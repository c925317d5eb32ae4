// The small form each command opens: its fields, their choices (from /pipelines), and the
// JSON body sent to POST /opportunities/{id}/{command} (SPEC §4.1).
"use strict";
const FOLLOW_UP_KINDS = ["call", "visit", "meeting", "email", "other"];

function stageChoices(app, deal, later) {
  const stages = app.stagesOf(deal.pipeline_id);
  const at = stages.findIndex((s) => s.id === deal.stage);
  const picked = later ? stages.slice(at + 1) : stages.slice(0, Math.max(at, 0)).reverse();
  return picked.map((s) => ({value: s.id, label: s.labels[app.lang]}));
}

function reasonChoices(app, reasons) {
  return reasons.map((r) => ({value: r.id, label: r.labels[app.lang]}));
}

// Per command: [name, kind, required, choices?]; kind is select, text, textarea, date, number
// or checkbox.
function formFields(app, deal, command) {
  const fields = {
    advance: [["to_stage", "select", true, stageChoices(app, deal, true)]],
    revert: [["to_stage", "select", true, stageChoices(app, deal, false)], ["reason", "text", true]],
    "follow-ups": [
      ["kind", "select", true, FOLLOW_UP_KINDS.map((k) => ({value: k, label: app.t("fu." + k)}))],
      ["note", "textarea", true],
    ],
    pause: [["reason", "text", true], ["until", "date", false]],
    defer: [
      ["reason", "select", true, reasonChoices(app, app.deferralReasons)],
      ["revisit_on", "date", true],
      ["note", "textarea", false],
    ],
    win: [
      ["amount", "number", true], ["contract_ref", "text", true],
      ["contract_start_on", "date", false], ["contract_end_on", "date", false],
    ],
    lose: [["reason", "select", true, reasonChoices(app, app.lostReasons)], ["competitor", "text", false]],
    void: [["reason", "text", true]],
    assign: [["owner_id", "select", true, app.teamReps().map((r) => ({value: r, label: r}))], ["override", "checkbox", false]],
  }[command] ?? [];
  return fields.map(([name, kind, required, choices]) => ({name, kind, required, choices: choices ?? []}));
}

function initialValues(fields, deal) {
  const values = {};
  for (const f of fields) {
    if (f.kind === "checkbox") values[f.name] = false;
    else if (f.kind === "select") values[f.name] = f.choices.length ? f.choices[0].value : "";
    else if (f.name === "amount") values[f.name] = deal.amount ?? "";
    else values[f.name] = "";
  }
  return values;
}

// Only what was filled in: an optional field left empty is not sent.
function commandBody(fields, values) {
  const body = {};
  for (const f of fields) {
    const value = values[f.name];
    if (f.kind === "checkbox") { if (value) body[f.name] = true; continue; }
    const text = String(value ?? "").trim();
    if (text !== "") body[f.name] = text;
  }
  return body;
}
