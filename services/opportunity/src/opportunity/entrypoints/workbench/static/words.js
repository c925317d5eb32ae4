// The workbench's labels in Chinese (default) and English, and the timeline's and refusals'
// sentences: everything the page says in words lives here.
"use strict";
const WORDS = {
  zh: {
    title: "销售工作台", sign_in: "登录", sign_out: "退出", token: "令牌", language: "语言",
    token_hint: "粘贴开发令牌(oppstream up 会打印)。", refresh: "刷新",
    my_deals: "我的商机", all_deals: "全部商机", status: "状态", stage: "阶段", type: "类型", any: "全部",
    reclaim_in: "回收倒计时", no_reclaim: "不回收", overdue: "已到期", none: "无",
    deal: "商机", pick_a_deal: "从列表中选择一个商机。", owner: "负责人", team: "团队", amount: "金额",
    customer: "客户", guidance: "本阶段要做的事", next_reminder: "下次提醒", reclaim: "回收",
    rule: "规则", counted_from: "起算", timeline: "时间线", key_persons: "决策链",
    no_key_persons: "尚无关键人。", actions: "操作", cancel: "取消", submit: "提交", done: "已完成",
    pool: "团队公海", claim: "认领", standing: "库容", held: "持有", claims_today: "今日认领",
    reminders: "我的提醒", escalations: "升级提醒", reminders_unavailable: "提醒服务暂不可用",
    no_reminders: "没有提醒。", team_deals: "团队商机(按销售)", targets: "团队目标与达成",
    standings: "竞赛排名", no_competition: "暂无竞赛。", period: "周期", target: "目标", actual: "实际",
    attainment: "达成率", gap: "差距", refused: "被拒绝", read_only: "只读:查看者没有操作按钮。",
    days: "天", hours: "小时", empty: "没有商机。", reason: "原因", to_stage: "目标阶段",
    kind: "方式", note: "备注", until: "暂停至", revisit_on: "回访日期", contract_ref: "合同编号",
    contract_start_on: "合同开始", contract_end_on: "合同结束", competitor: "竞争对手",
    owner_id: "新负责人", override: "超出库容也分配", rank: "名次", value: "数值",
    cooling_until: "冷静期至", unavailable: "不可用",
    "cmd.advance": "推进", "cmd.revert": "回退", "cmd.follow-ups": "记录跟进", "cmd.pause": "暂停",
    "cmd.resume": "恢复", "cmd.defer": "延期", "cmd.reactivate": "重新激活", "cmd.win": "赢单",
    "cmd.lose": "输单", "cmd.void": "作废", "cmd.assign": "重新分配", "cmd.claim": "认领",
    "st.open": "进行中", "st.paused": "暂停", "st.deferred": "延期", "st.pooled": "公海",
    "st.won": "赢单", "st.lost": "输单", "st.voided": "作废",
    "ty.new": "新购", "ty.renewal": "续约", "ty.resale": "增购",
    "fu.call": "电话", "fu.visit": "拜访", "fu.meeting": "会议", "fu.email": "邮件", "fu.other": "其他",
    "tk.follow_up": "跟进提醒", "tk.stale_warning": "停滞预警", "tk.escalation": "升级给经理",
    "tk.reclaim_due": "回收", "tk.revisit_due": "回访", "tk.pause_ended": "暂停结束",
    "tk.renewal_due": "续约",
  },
  en: {
    title: "Sales workbench", sign_in: "Sign in", sign_out: "Sign out", token: "Token", language: "Language",
    token_hint: "Paste a dev token (oppstream up prints them).", refresh: "Refresh",
    my_deals: "My deals", all_deals: "All deals", status: "Status", stage: "Stage", type: "Type", any: "all",
    reclaim_in: "Reclaimed in", no_reclaim: "not reclaimed", overdue: "overdue", none: "none",
    deal: "Deal", pick_a_deal: "Pick a deal from a list.", owner: "Owner", team: "Team", amount: "Amount",
    customer: "Customer", guidance: "What to get done in this stage", next_reminder: "Next reminder",
    reclaim: "Reclaim", rule: "rule", counted_from: "counted from", timeline: "Timeline",
    key_persons: "Key persons", no_key_persons: "No key person yet.", actions: "Actions",
    cancel: "Cancel", submit: "Submit", done: "Done", pool: "Team pool", claim: "Claim",
    standing: "Standing", held: "held", claims_today: "claims today", reminders: "My reminders",
    escalations: "Escalations", reminders_unavailable: "reminders service unavailable",
    no_reminders: "No reminder.", team_deals: "Team's deals by rep", targets: "Team targets and attainment",
    standings: "Competition standings", no_competition: "No competition yet.", period: "Period",
    target: "target", actual: "actual", attainment: "attainment", gap: "gap", refused: "Refused",
    read_only: "Read-only: a viewer has no action buttons.", days: "d", hours: "h", empty: "No deal.",
    reason: "Reason", to_stage: "To stage", kind: "Kind", note: "Note", until: "Paused until",
    revisit_on: "Revisit on", contract_ref: "Contract ref", contract_start_on: "Contract start",
    contract_end_on: "Contract end", competitor: "Competitor", owner_id: "New owner",
    override: "Assign over max held", rank: "rank", value: "value", cooling_until: "cooling until",
    unavailable: "unavailable",
    "cmd.advance": "Advance", "cmd.revert": "Revert", "cmd.follow-ups": "Log follow-up",
    "cmd.pause": "Pause", "cmd.resume": "Resume", "cmd.defer": "Defer", "cmd.reactivate": "Reactivate",
    "cmd.win": "Win", "cmd.lose": "Lose", "cmd.void": "Void", "cmd.assign": "Reassign", "cmd.claim": "Claim",
    "st.open": "open", "st.paused": "paused", "st.deferred": "deferred", "st.pooled": "pooled",
    "st.won": "won", "st.lost": "lost", "st.voided": "voided",
    "ty.new": "new", "ty.renewal": "renewal", "ty.resale": "resale",
    "fu.call": "call", "fu.visit": "visit", "fu.meeting": "meeting", "fu.email": "email", "fu.other": "other",
    "tk.follow_up": "follow-up", "tk.stale_warning": "stale warning", "tk.escalation": "escalation to the manager",
    "tk.reclaim_due": "reclaim", "tk.revisit_due": "revisit", "tk.pause_ended": "pause ends",
    "tk.renewal_due": "renewal",
  },
};

// One line of the timeline for an event envelope of /opportunities/{id}/history.
const EVENT_LINES = {
  OpportunityCreated: {zh: (p) => `创建,阶段 ${p.stage}`, en: (p) => `created in ${p.stage}`},
  StageAdvanced: {zh: (p) => `推进 ${p.from_stage} → ${p.to_stage}`, en: (p) => `advanced ${p.from_stage} → ${p.to_stage}`},
  StageReverted: {zh: (p) => `回退 ${p.from_stage} → ${p.to_stage}:${p.reason}`, en: (p) => `reverted ${p.from_stage} → ${p.to_stage}: ${p.reason}`},
  FollowUpLogged: {zh: (p) => `跟进(${p.kind}):${p.note}`, en: (p) => `follow-up (${p.kind}): ${p.note}`},
  InfoUpdated: {zh: (p) => `更新 ${Object.keys(p.changes ?? {}).join(", ")}`, en: (p) => `updated ${Object.keys(p.changes ?? {}).join(", ")}`},
  KeyPersonAdded: {zh: (p) => `新增关键人 ${p.name}`, en: (p) => `key person ${p.name} added`},
  CompetitorRecorded: {zh: (p) => `记录竞争对手 ${p.name}`, en: (p) => `competitor ${p.name} recorded`},
  DocumentAttached: {zh: (p) => `附加文档 ${p.name}`, en: (p) => `document ${p.name} attached`},
  OpportunityPaused: {zh: (p) => `暂停:${p.reason}${p.until ? ",至 " + p.until : ""}`, en: (p) => `paused: ${p.reason}${p.until ? ", until " + p.until : ""}`},
  OpportunityResumed: {zh: () => "恢复", en: () => "resumed"},
  OpportunityDeferred: {zh: (p) => `延期:${p.reason},回访 ${p.revisit_on}`, en: (p) => `deferred: ${p.reason}, revisit on ${p.revisit_on}`},
  OpportunityReactivated: {zh: () => "重新激活", en: () => "reactivated"},
  OpportunityReclaimed: {zh: (p) => `回收到公海(自 ${p.previous_owner_id ?? "–"}):${p.reason}`, en: (p) => `reclaimed to the pool from ${p.previous_owner_id ?? "–"}: ${p.reason}`},
  OpportunityAssigned: {zh: (p) => `分配给 ${p.owner_id}(原 ${p.previous_owner_id ?? "公海"})`, en: (p) => `assigned to ${p.owner_id} (was ${p.previous_owner_id ?? "the pool"})`},
  OpportunityWon: {zh: (p) => `赢单 ${p.amount} ${p.currency},合同 ${p.contract_ref}`, en: (p) => `won ${p.amount} ${p.currency}, contract ${p.contract_ref}`},
  OpportunityLost: {zh: (p) => `输单:${p.reason}`, en: (p) => `lost: ${p.reason}`},
  OpportunityVoided: {zh: (p) => `作废:${p.reason}`, en: (p) => `voided: ${p.reason}`},
};

// A pool rule's refusal (SPEC §8.3) as a sentence with its figures.
const POOL_RULES = {
  "pool.previous_owner_cooldown": {
    zh: (d) => `冷静期:该商机是从你手上回收的,按公海规则 ${d.rule_id},${when(d.until)} 之后才能认领回来。`,
    en: (d) => `Cooldown: it was reclaimed from you; pool rule ${d.rule_id} lets you claim it back from ${when(d.until)}.`,
  },
  "pool.claim_limit_per_day": {
    zh: (d) => `每日认领上限:今天已认领 ${d.count} 个,公海规则 ${d.rule_id} 每天最多 ${d.limit} 个。`,
    en: (d) => `Daily claim limit: you claimed ${d.count} today; pool rule ${d.rule_id} allows ${d.limit} a day.`,
  },
  "pool.max_held": {
    zh: (d) => `库容已满:持有 ${d.count} 个活跃商机,公海规则 ${d.rule_id} 最多 ${d.limit} 个。`,
    en: (d) => `Capacity: the owner holds ${d.count} active opportunities; pool rule ${d.rule_id} allows ${d.limit}.`,
  },
};

// A refusal (403/409/412/422 …) in words: the rule or the field, and the figures it carries.
function refusalText(status, body, lang) {
  const detail = body && body.detail;
  const pool = detail && POOL_RULES[detail.rule];
  if (pool) return `${status} ${detail.rule} · ${pool[lang](detail)}`;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc ?? []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  if (detail && typeof detail === "object") {
    const rule = detail.rule ?? detail.error ?? "";
    const figures = ["rule_id", "limit", "count", "until", "allowed_commands"]
      .filter((k) => detail[k] != null)
      .map((k) => `${k}=${Array.isArray(detail[k]) ? detail[k].join(",") : detail[k]}`);
    const until = detail.until ? (lang === "zh" ? `(冷静期至 ${when(detail.until)})` : ` (cooling until ${when(detail.until)})`) : "";
    return `${status} ${rule}: ${detail.message ?? ""}${until}${figures.length ? " [" + figures.join(" ") + "]" : ""}`;
  }
  if (status === 412) return lang === "zh" ? "412 版本已变化,请刷新后再试" : "412 the deal changed meanwhile; refresh and try again";
  return `${status} ${typeof detail === "string" ? detail : JSON.stringify(body ?? {})}`;
}

// An instant in the browser's time zone (YYYY-MM-DD HH:MM); a date alone stays as it is.
function when(instant) {
  if (!instant) return "–";
  if (/^\d{4}-\d{2}-\d{2}$/.test(instant)) return instant;
  const d = new Date(instant);
  const two = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}`;
}

function countdown(instant, lang, now = Date.now()) {
  if (!instant) return WORDS[lang].no_reclaim;
  const left = new Date(instant).getTime() - now;
  if (left <= 0) return WORDS[lang].overdue;
  const days = Math.floor(left / 86_400_000), hours = Math.floor((left % 86_400_000) / 3_600_000);
  return `${days} ${WORDS[lang].days} ${hours} ${WORDS[lang].hours}`;
}
