// The workbench's state and its calls to the public HTTP API (opportunity service on this
// origin, projections and reminders where /app/config.json says): one Alpine.js component.
"use strict";
const TOKEN_KEY = "oppstream-workbench-token";
const LANG_KEY = "oppstream-workbench-lang";
const STATUSES = ["open", "paused", "deferred", "pooled", "won", "lost", "voided"];
const TYPES = ["new", "renewal", "resale"];
const ACTIONS = ["advance", "revert", "follow-ups", "pause", "resume", "defer", "reactivate", "win", "lose", "void", "assign"];

class Refused extends Error {
  constructor(status, body) { super(String(status)); this.status = status; this.body = body; }
}

function currentQuarter(d = new Date()) {
  return `${d.getFullYear()}-Q${Math.floor(d.getMonth() / 3) + 1}`;
}

function byReclaim(a, b) {
  // Soonest reclaim first; deals no rule reclaims last.
  const at = (d) => d.reclaim_at ? new Date(d.reclaim_at).getTime() : Infinity;
  return at(a) - at(b);
}

function chart(id, option) {
  const el = document.getElementById(id);
  if (!el || typeof echarts === "undefined") return;
  (echarts.getInstanceByDom(el) ?? echarts.init(el)).setOption(option, true);
}

function orgTree(customer, persons) {
  const node = (p, seen) => ({
    name: `${p.name}${p.title ? " · " + p.title : ""}${p.role ? " (" + p.role + ")" : ""}`,
    children: persons.filter((c) => c.reports_to === p.id && !seen.has(c.id))
      .map((c) => node(c, new Set([...seen, c.id]))),
  });
  const ids = new Set(persons.map((p) => p.id));
  const tops = persons.filter((p) => !p.reports_to || !ids.has(p.reports_to));
  return {name: customer, children: tops.map((p) => node(p, new Set([p.id])))};
}

function workbench() {
  return {
    lang: sessionStorage.getItem(LANG_KEY) || "zh",
    tokenInput: "", signedIn: false, signInError: "", me: null, config: null,
    pipelines: [], lostReasons: [], deferralReasons: [],
    filters: {status: "", stage: "", type: ""},
    deals: [], teamDeals: [], pool: [], standing: null,
    deal: null, history: [], keyPersons: [], form: null, refusal: "", poolRefusal: "", problem: "", done: "",
    reminders: {items: [], failed: false}, escalations: {items: [], failed: false},
    period: currentQuarter(), attainment: [], targets: [], competition: null, standings: [],
    loaded: 0, statuses: STATUSES, types: TYPES,

    t(key) { return WORDS[this.lang][key] ?? key; },
    when(instant) { return when(instant); },
    countdown(instant) { return countdown(instant, this.lang); },
    get role() { return this.me ? this.me.role : ""; },
    get viewer() { return this.role === "viewer"; },
    get manages() { return this.role === "manager" || this.role === "admin"; },
    // Managers, admins and viewers see the team (or every team) beyond their own deals.
    get oversees() { return this.role !== "" && this.role !== "rep"; },
    get stageChoices() {
      const seen = new Map();
      for (const p of this.pipelines) for (const s of p.stages) if (!seen.has(s.id)) seen.set(s.id, s.labels[this.lang]);
      return [...seen].map(([value, label]) => ({value, label}));
    },
    get byRep() {
      const groups = {};
      for (const d of this.teamDeals) (groups[d.owner_id ?? "–"] ??= []).push(d);
      return Object.entries(groups).sort(([a], [b]) => a.localeCompare(b));
    },

    async init() {
      this.$watch("lang", (lang) => { sessionStorage.setItem(LANG_KEY, lang); this.drawCharts(); });
      if (sessionStorage.getItem(TOKEN_KEY)) await this.start();
    },
    async signIn() {
      sessionStorage.setItem(TOKEN_KEY, this.tokenInput.trim());
      this.tokenInput = "";
      await this.start();
    },
    signOut() {
      sessionStorage.removeItem(TOKEN_KEY);
      Object.assign(this, {signedIn: false, me: null, deal: null, deals: [], teamDeals: [], form: null});
    },
    async start() {
      try {
        this.me = await this.call("/me");
        this.config = await (await fetch("config.json")).json();
        const rules = await this.call("/pipelines");
        this.pipelines = rules.pipelines;
        this.lostReasons = rules.lost_reasons;
        this.deferralReasons = rules.deferral_reasons;
        this.signedIn = true;
        this.signInError = "";
        await this.refresh();
      } catch (e) {
        this.signInError = e instanceof Refused ? refusalText(e.status, e.body, this.lang) : String(e);
        if (e instanceof Refused && e.status === 401) sessionStorage.removeItem(TOKEN_KEY);
      }
    },

    async call(path, {method = "GET", body, base = "", version} = {}) {
      const headers = {Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY)};
      if (body !== undefined) headers["Content-Type"] = "application/json";
      if (version !== undefined) headers["If-Match"] = String(version);
      const answer = await fetch(base + path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body)});
      const parsed = await answer.json().catch(() => null);
      if (!answer.ok) throw new Refused(answer.status, parsed);
      return parsed;
    },
    query(params) {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
      return q.toString();
    },

    async refresh() {
      this.problem = "";
      try {
        await this.load();
      } catch (e) {
        this.problem = e instanceof Refused ? refusalText(e.status, e.body, this.lang) : String(e);
      }
      this.loaded += 1;
    },
    async load() {
      const mine = this.role === "rep" ? {owner_id: this.me.id} : this.manages && this.me.team_id ? {team_id: this.me.team_id} : {};
      const listed = await this.call("/opportunities?" + this.query({...mine, ...this.filters, limit: "500"}));
      this.deals = listed.items.sort(byReclaim);
      const team = this.me.team_id ? {team_id: this.me.team_id} : {};
      this.pool = (await this.call("/opportunities?" + this.query({...team, status: "pooled", limit: "200"}))).items.sort(byReclaim);
      this.standing = this.role === "rep" ? await this.call("/pool/standing").catch(() => null) : null;
      if (this.oversees) this.teamDeals = (await this.call("/opportunities?" + this.query({...team, limit: "500"}))).items;
      await Promise.all([this.loadReminders(), this.loadPlanning()]);
      if (this.deal) await this.openDeal(this.deal.id);
    },
    async inbox(params) {
      try {
        const found = await this.call("/reminders?" + this.query({...params, limit: "50"}), {base: this.config.reminders_url});
        return {items: found.reminders ?? [], failed: false};
      } catch {
        return {items: [], failed: true};
      }
    },
    async loadReminders() {
      const whose = this.role === "rep" ? {owner_id: this.me.id} : this.me.team_id ? {team_id: this.me.team_id} : {};
      this.reminders = await this.inbox(whose);
      if (this.oversees) this.escalations = await this.inbox({...whose, kind: "escalation"});
    },
    async loadPlanning() {
      if (this.role === "rep") return;
      const projections = {base: this.config.projections_url};
      try {
        const team = this.me.team_id;
        const targets = (await this.call("/targets?" + this.query({period: this.period}))).targets;
        this.targets = targets.filter((x) => !team || x.scope_id === team || x.team_id === team);
        const reps = new Set([...this.teamDeals.map((d) => d.owner_id), ...this.targets.map((x) => x.scope_id)]);
        const items = (await this.call("/attainment?" + this.query({period: this.period}), projections)).items;
        this.attainment = items.filter((i) => !team || (i.scope === "team" && i.scope_id === team) || (i.scope === "rep" && reps.has(i.scope_id)));
        const listed = (await this.call("/competitions", projections)).competitions;
        this.competition = listed.length ? listed[0] : null;
        this.standings = this.competition ? (await this.call(`/competitions/${this.competition.id}/standings`, projections)).standings : [];
      } catch (e) {
        this.problem = e instanceof Refused ? refusalText(e.status, e.body, this.lang) : `${this.t("unavailable")}: ${e}`;
      }
      this.$nextTick(() => this.drawCharts());
    },

    stagesOf(pipelineId) {
      const found = this.pipelines.find((p) => p.id === pipelineId);
      return found ? found.stages : [];
    },
    stageLabel(deal) {
      const found = this.stagesOf(deal.pipeline_id).find((s) => s.id === deal.stage);
      return found ? found.labels[this.lang] : deal.stage;
    },
    get currentStage() {
      return this.deal ? this.stagesOf(this.deal.pipeline_id).find((s) => s.id === this.deal.stage) : null;
    },
    teamReps() {
      return [...new Set(this.teamDeals.map((d) => d.owner_id).filter(Boolean))].sort();
    },
    explain(timer) {
      if (!timer) return this.t("none");
      const span = timer.field ? ` ${timer.field} ${timer.after}` : "";
      const from = timer.counted_from ? `, ${this.t("counted_from")} ${when(timer.counted_from)}` : "";
      return `${this.t("rule")} ${timer.rule_id}:${span}${from}`;
    },
    timelineLine(event) {
      const line = EVENT_LINES[event.event_type];
      const payload = {...(event.payload ?? {})};
      const stages = this.stagesOf(this.deal.pipeline_id);
      for (const key of ["stage", "from_stage", "to_stage"]) {
        const found = stages.find((s) => s.id === payload[key]);
        if (found) payload[key] = found.labels[this.lang];
      }
      if (event.event_type === "FollowUpLogged") payload.kind = this.t("fu." + payload.kind);
      return `${when(event.occurred_at)} · ${event.actor ?? "–"} · ${line ? line[this.lang](payload) : event.event_type}`;
    },
    reminderLine(r) {
      const sent = (r.deliveries ?? []).map((d) => `${d.channel_id} ${d.status}`).join(", ");
      const deal = [...this.deals, ...this.teamDeals].find((d) => d.id === r.opportunity_id);
      const name = deal ? deal.title || deal.customer.name : String(r.opportunity_id).slice(0, 8);
      return `${when(r.fired_at ?? r.due_at)} · ${this.t("tk." + r.kind)} · ${name} · ${this.t("rule")} ${r.rule_id}${sent ? " · " + sent : ""}`;
    },
    actionsFor(deal) {
      if (!deal || this.viewer || !this.me) return [];
      const mine = deal.owner_id === this.me.id || this.manages;
      if (!mine) return [];
      return ACTIONS.filter((c) => deal.allowed_commands.includes(c) && (c !== "assign" || this.manages));
    },
    canClaim(deal) {
      return this.role === "rep" && deal.allowed_commands.includes("claim");
    },

    async show(id) {
      await this.openDeal(id);
      document.getElementById("deal").scrollIntoView({block: "start"});
    },
    async openDeal(id) {
      this.deal = await this.call(`/opportunities/${id}`);
      this.history = (await this.call(`/opportunities/${id}/history`)).events;
      const uscc = this.deal.customer.uscc;
      const record = await this.call(`/customers/${encodeURIComponent(uscc)}`).catch(() => null);
      this.keyPersons = record ? record.key_persons : this.deal.key_persons ?? [];
      this.$nextTick(() => this.drawOrgChart());
    },
    openForm(command) {
      const fields = formFields(this, this.deal, command);
      this.form = {command, fields, values: initialValues(fields, this.deal)};
      this.refusal = "";
      this.done = "";
      this.$nextTick(() => document.querySelector("#command-form input, #command-form select, #command-form textarea, #command-form button")?.focus());
    },
    async submitForm() {
      const {command, fields, values} = this.form;
      try {
        await this.call(`/opportunities/${this.deal.id}/${command}`, {method: "POST", body: commandBody(fields, values), version: this.deal.version});
        this.form = null;
        this.done = command;
        await this.refresh();
      } catch (e) {
        this.refusal = e instanceof Refused ? refusalText(e.status, e.body, this.lang) : String(e);
      }
    },
    async claim(deal) {
      this.poolRefusal = "";
      try {
        await this.call(`/opportunities/${deal.id}/claim`, {method: "POST", body: {}, version: deal.version});
        this.done = "claim";
        await this.refresh();
      } catch (e) {
        this.poolRefusal = e instanceof Refused ? refusalText(e.status, e.body, this.lang) : String(e);
      }
    },

    drawOrgChart() {
      if (!this.deal || !this.keyPersons.length) return;
      chart("org-chart", {series: [{type: "tree", data: [orgTree(this.deal.customer.name, this.keyPersons)],
        orient: "TB", symbolSize: 10, label: {position: "top", fontSize: 12}, expandAndCollapse: false}]});
    },
    drawCharts() {
      this.drawOrgChart();
      if (this.attainment.length) {
        const rows = this.attainment;
        chart("attainment-chart", {tooltip: {}, legend: {data: [this.t("target"), this.t("actual")]},
          xAxis: {type: "category", data: rows.map((r) => `${r.scope_id} ${r.metric}`)}, yAxis: {type: "value"},
          series: [{name: this.t("target"), type: "bar", data: rows.map((r) => Number(r.target ?? 0))},
                   {name: this.t("actual"), type: "bar", data: rows.map((r) => Number(r.actual ?? 0))}]});
      }
      if (this.standings.length) {
        chart("standings-chart", {tooltip: {}, xAxis: {type: "category", data: this.standings.map((s) => s.owner_id)},
          yAxis: {type: "value"}, series: [{name: this.t("value"), type: "bar", data: this.standings.map((s) => Number(s.value))}]});
      }
    },
  };
}
