// The dashboard's script (served beside dashboard.html, no CDN): reads the JSON endpoints with
// the signed-in bearer token and renders each panel; labels follow the language switch.
"use strict";
const FILTERS = ["type", "tier", "ownership", "team_id", "from", "to", "as_of"];
const DEFAULT_DAYS = 90;
const CATEGORIES = ["pipeline", "best_case", "commit", "closed"];
const WORDS = {
  zh: {company: "公司", team: "团队", rep: "销售", won_amount: "赢单金额", won_count: "赢单数",
       new_opportunities: "新建商机", advances: "推进次数", follow_ups: "跟进次数"},
  en: {company: "company", team: "team", rep: "rep", won_amount: "won amount", won_count: "won deals",
       new_opportunities: "new opportunities", advances: "advances", follow_ups: "follow-ups"},
};
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c]));
const pct = (v) => v == null ? "–" : (v * 100).toFixed(1) + "%";
const num = (v, d = 1) => v == null ? "–" : Number(v).toFixed(d);
const shown = (v) => v == null ? "–" : String(v);
const day = (instant) => instant ? instant.slice(0, 10) : "–";
const word = (key) => WORDS[$("lang").value][key] ?? key;

function isoDate(d) {
  return [d.getFullYear(), d.getMonth() + 1, d.getDate()].map((n) => String(n).padStart(2, "0")).join("-");
}

function currentQuarter(d) {
  return `${d.getFullYear()}-Q${Math.floor(d.getMonth() / 3) + 1}`;
}

function label(pipelineId, stageId) {
  const lang = $("lang").value;
  const pipeline = CONFIG.pipelines.find((p) => p.id === pipelineId);
  const stage = pipeline && pipeline.stages.find((s) => s.id === stageId);
  return stage ? stage.labels[lang] : stageId;
}

function asOf() {
  const value = $("f-as_of").value.trim();
  return value ? value + "T23:59:59+08:00" : "";
}

// The page's filters `names` (and `extra`), as the query string of one endpoint.
function query(names, extra = {}) {
  const params = new URLSearchParams();
  for (const name of names) {
    const value = name === "as_of" ? asOf() : $("f-" + name).value.trim();
    if (value) params.set(name, value);
  }
  for (const [name, value] of Object.entries(extra)) if (value) params.set(name, value);
  return params;
}

async function get(path, params = new URLSearchParams()) {
  const search = params.toString();
  const answer = await fetch(search ? path + "?" + search : path, {
    headers: {Authorization: "Bearer " + localStorage.getItem("oppstream-token")}});
  if (answer.status === 401) { signOut(); throw new Error("token refused"); }
  if (!answer.ok) {
    const body = await answer.json().catch(() => ({}));
    throw new Error(path + ": " + answer.status + " " + JSON.stringify(body.detail ?? body));
  }
  return answer.json();
}

function bars(rows, {value, max, format, standard, width = 480}) {
  const top = max ?? Math.max(1, ...rows.map((r) => Math.max(value(r) ?? 0, standard ? standard(r) ?? 0 : 0)));
  const h = 22, gap = 6, left = 150, w = width - left - 70;
  const parts = rows.map((r, i) => {
    const v = value(r) ?? 0, y = i * (h + gap), bw = (v / top) * w;
    const s = standard ? standard(r) : null;
    const marker = s == null ? "" : `<line x1="${left + (s / top) * w}" x2="${left + (s / top) * w}" y1="${y - 2}" y2="${y + h + 2}" stroke="var(--std)" stroke-width="3"><title>standard ${format(s)}</title></line>`;
    return `<text x="0" y="${y + 15}">${esc(r.name)}</text>
      <rect x="${left}" y="${y}" width="${Math.max(bw, 1)}" height="${h}" rx="3" fill="${r.below ? "var(--warn)" : "var(--bar)"}"></rect>
      ${marker}<text x="${left + bw + 6}" y="${y + 15}" class="value">${esc(format(value(r)))}</text>`;
  });
  return `<svg width="${width}" height="${rows.length * (h + gap)}" role="img">${parts.join("")}</svg>`;
}

function renderWindows(windows) {
  for (const name of ["cohort", "company"]) {
    const span = $("window-" + name), w = windows[name];
    span.dataset.from = w.from ?? "";
    span.dataset.to = w.to ?? "";
    span.textContent = `${day(w.from)} – ${day(w.to)}`;
  }
}

function renderFunnel(data) {
  $("as-of").textContent = "as of " + data.as_of;
  renderWindows(data.standard_windows);
  $("funnel").innerHTML = data.pipelines.map((p) => {
    const rows = p.stages.map((s) => ({...s, name: label(p.pipeline_id, s.stage), below: s.below_standard}));
    const chart = bars(rows.concat([{name: "赢单 won", reached: p.won}]), {value: (r) => r.reached, format: (v) => String(v ?? 0), width: 560});
    const table = `<table data-pipeline="${esc(p.pipeline_id)}"><tr><th>stage</th><th>reached</th><th>→ next</th><th>industry</th><th>company</th><th>days</th><th>work days</th><th>open</th></tr>` +
      rows.map((s) => `<tr data-stage="${esc(s.stage)}"><td>${esc(s.name)}</td><td class="reached">${s.reached}</td>
        <td class="rate ${s.below_standard ? "below" : ""}">${pct(s.conversion_rate)}</td>
        <td>${pct(s.standard && s.standard.industry)}</td><td>${pct(s.standard && s.standard.company)}</td>
        <td>${num(s.conversion_days)}</td><td class="working-days">${num(s.conversion_working_days)}</td><td>${s.open_visits && s.open_visits.count != null ? s.open_visits.count : esc(s.open_visits)}</td></tr>`).join("") +
      `<tr><td>赢单 won</td><td class="won">${p.won}</td><td colspan="6"></td></tr></table>`;
    return `<h3>${esc(p.pipeline_id)} <span class="muted">(${esc(p.type)})</span></h3><div style="display:flex;gap:24px;flex-wrap:wrap">${chart}${table}</div>`;
  }).join("");
}

function renderDwell(data) {
  $("dwell").innerHTML = data.pipelines.map((p) => `<h3>${esc(p.pipeline_id)}</h3>` + bars(
    p.stages.map((s) => ({...s, name: label(p.pipeline_id, s.stage), below: s.below_standard})),
    {value: (r) => r.conversion_days, standard: (r) => r.standard && r.standard.industry, format: (v) => num(v) + " d"})).join("");
}

function renderWinRates(data) {
  $("win-rates").innerHTML = data.pipelines.map((p) => `<h3>${esc(p.pipeline_id)} <span class="muted">${pct(p.win_rate)} overall</span></h3>` + bars(
    p.stages.map((s) => ({...s, name: label(p.pipeline_id, s.stage), below: s.below_standard})),
    {value: (r) => r.win_rate, max: 1, standard: (r) => r.standard && r.standard.industry, format: pct})).join("");
}

function renderForecast(data) {
  const months = data.months || [];
  $("forecast").innerHTML = months.length ? bars(months.map((m) => ({...m, name: m.month})),
    {value: (m) => Number(m.weighted), format: (v) => Math.round(v).toLocaleString() + " " + (data.currency || "")})
    : "<p class='muted'>no open opportunity with an expected close month</p>";
  renderCategories(months, data.currency);
}

function renderCategories(months, currency) {
  if (!months.length) { $("forecast-categories").innerHTML = "<p class='muted'>–</p>"; return; }
  const head = CATEGORIES.map((c) => `<th>${esc(c.replace("_", " "))}</th>`).join("");
  $("forecast-categories").innerHTML = `<table data-forecast-categories><tr><th>month (${esc(currency)})</th>${head}</tr>` +
    months.map((m) => `<tr data-month="${esc(m.month)}"><td>${esc(m.month)}</td>` + CATEGORIES.map((c) => {
      const figure = m.categories[c];
      return `<td class="${c.replace("_", "-")}"><span class="amount">${esc(figure.amount)}</span><span class="count">(${figure.count})</span></td>`;
    }).join("") + "</tr>").join("") + "</table>";
}

function renderLeaderboard(data) {
  const period = (data.periods || []).slice(-1)[0];
  if (!period) { $("leaderboard").innerHTML = "<p class='muted'>no won opportunity yet</p>"; return; }
  $("leaderboard").innerHTML = `<p class="muted">${esc(period.period)}</p><table><tr><th>owner</th><th>team</th><th>won</th><th>amount</th></tr>` +
    period.owners.slice(0, 10).map((o) => `<tr><td>${esc(o.owner_id)}</td><td>${esc(o.team_id)}</td><td>${o.won_count ?? o.count ?? ""}</td><td>${esc(o.won_amount ?? o.amount ?? "")}</td></tr>`).join("") + "</table>";
}

function renderAttainment(data) {
  const items = data.items || [];
  if (!items.length) { $("attainment").innerHTML = `<p class="muted">${esc(data.period)}: –</p>`; return; }
  $("attainment").innerHTML = `<table data-attainment="${esc(data.period)}"><tr><th>scope</th><th>metric</th><th>target</th><th>actual</th><th>attainment</th><th>gap</th><th>weighted open</th></tr>` +
    items.map((i) => `<tr data-scope="${esc(i.scope)}" data-scope-id="${esc(i.scope_id)}" data-metric="${esc(i.metric)}">
      <td>${esc(word(i.scope))} ${esc(i.scope_id)}</td><td>${esc(word(i.metric))}</td>
      <td class="target">${esc(shown(i.target))}</td><td class="actual">${esc(shown(i.actual))}</td>
      <td class="attainment ${i.attainment != null && i.attainment < 1 ? "below" : ""}">${pct(i.attainment)}</td>
      <td class="gap">${esc(shown(i.gap))}</td><td class="weighted-open">${esc(shown(i.weighted_open))}</td></tr>`).join("") + "</table>";
}

function renderCompetitions(data) {
  const select = $("competition"), chosen = select.value;
  const listed = data.competitions || [];
  select.innerHTML = listed.map((c) => `<option value="${esc(c.id)}">${esc(c.name)} · ${esc(word(c.metric))} · ${day(c.from)} – ${day(c.to)}</option>`).join("");
  if (listed.some((c) => c.id === chosen)) select.value = chosen;
  return select.value;
}

function renderStandings(data) {
  if (!data) { $("standings").innerHTML = "<p class='muted'>no competition yet</p>"; return; }
  $("standings").innerHTML = `<table data-standings="${esc(data.id)}"><tr><th>rank</th><th>rep</th><th>team</th><th>${esc(word(data.metric))}</th></tr>` +
    data.standings.map((s) => `<tr data-owner="${esc(s.owner_id)}"><td class="rank">${s.rank}</td><td>${esc(s.owner_id)}</td>
      <td>${esc(s.team_id)}</td><td class="value">${esc(s.value)}</td></tr>`).join("") + "</table>";
}

function renderDeferrals(data) {
  const lang = $("lang").value;
  $("deferral-window").textContent = `${day(data.from)} – ${day(data.to)}`;
  $("deferrals").innerHTML = `<table data-deferrals><tr><th>reason</th><th>deferred</th><th>reactivated</th><th>won after</th><th>lost</th><th>still deferred</th><th>ended otherwise</th><th>median days</th></tr>` +
    data.reasons.map((r) => `<tr data-reason="${esc(r.reason)}"><td>${esc(r.label ? r.label[lang] : r.reason)}</td>
      <td class="deferred">${r.deferred}</td><td class="reactivated">${r.reactivated}</td>
      <td class="won-after">${r.won_after_reactivation}</td><td class="lost">${r.lost}</td>
      <td class="still-deferred">${r.still_deferred}</td><td class="ended-otherwise">${r.ended_otherwise}</td>
      <td class="median-days">${num(r.median_days_deferred)}</td></tr>`).join("") + "</table>";
}

async function loadStandings() {
  const chosen = renderCompetitions(await get("/competitions"));
  renderStandings(chosen ? await get(`/competitions/${encodeURIComponent(chosen)}/standings`, query(["as_of"])) : null);
}

let staleItems = [];
function renderStale(data) {
  staleItems = data.items || [];
  tickStale();
}
function tickStale() {
  const now = Date.now();
  $("stale").innerHTML = `<table><tr><th>customer</th><th>stage</th><th>owner</th><th>idle days</th><th>reclaim in</th></tr>` +
    staleItems.slice(0, 15).map((s) => {
      const left = s.reclaim_at ? (Date.parse(s.reclaim_at) - now) / 1000 : null;
      const countdown = left == null ? "–" : left <= 0 ? "<span class='below'>due</span>" :
        `${Math.floor(left / 86400)}d ${Math.floor(left % 86400 / 3600)}h ${Math.floor(left % 3600 / 60)}m ${Math.floor(left % 60)}s`;
      return `<tr><td>${esc(s.customer_name)}</td><td>${esc(label(s.pipeline_id, s.stage))}</td><td>${esc(s.owner_id)}</td><td>${num(s.idle_days)}</td><td>${countdown}</td></tr>`;
    }).join("") + "</table>";
}

async function refresh() {
  $("error").textContent = "";
  const period = $("attainment-period").value.trim();
  const views = [
    () => get("/funnel", query(FILTERS)).then(renderFunnel),
    () => get("/dwell", query(FILTERS)).then(renderDwell),
    () => get("/win-rates", query(FILTERS)).then(renderWinRates),
    () => get("/forecast", query(FILTERS)).then(renderForecast),
    () => get("/leaderboard", query(FILTERS)).then(renderLeaderboard),
    () => get("/stale", query(FILTERS)).then(renderStale),
    () => get("/attainment", query(["as_of"], {period})).then(renderAttainment),
    () => get("/deferrals", query(FILTERS)).then(renderDeferrals),
    loadStandings,
  ];
  await Promise.all(views.map(async (view) => {
    try { await view(); } catch (error) { $("error").textContent = error.message; }
  }));
  document.body.dataset.loaded = String(Date.now());
}

function signOut() { localStorage.removeItem("oppstream-token"); $("app").hidden = true; $("login").hidden = false; }
function signIn() { $("login").hidden = true; $("app").hidden = false; refresh(); }

const today = new Date();
$("f-from").value = isoDate(new Date(today.getFullYear(), today.getMonth(), today.getDate() - DEFAULT_DAYS));
$("attainment-period").value = currentQuarter(today);
$("login-form").addEventListener("submit", (e) => {
  e.preventDefault(); localStorage.setItem("oppstream-token", $("token").value.trim()); signIn();
});
for (const name of FILTERS) $("f-" + name).addEventListener("change", refresh);
for (const id of ["lang", "attainment-period", "competition"]) $(id).addEventListener("change", refresh);
$("refresh").addEventListener("click", refresh);
setInterval(tickStale, 1000);
if (localStorage.getItem("oppstream-token")) signIn(); else signOut();
