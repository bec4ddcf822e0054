// Deliberation (议事协商, docs/deliberation.md): the topics of the resident's compound, read from
// GET /api/deliberation/topics and kept on the phone (a local document that never replicates),
// so the screens open offline and say how old their copy is. Support (附议) and comments are
// queued on the phone (outbox.js) and sent when the network is there: a comment with its own
// request id, a support by the account, so the server takes each once however often it is
// sent; until then the screen says 待发送. The support counted is the server's, never this
// phone's.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { cityTime, message, t, tf } from "../i18n.js";
import { ApiCopy, dateOf, requestId } from "./apicopy.js";
import { backLink, heading } from "./ui.js";

const CACHE = "_local/linli-deliberation";
const MAX_COMMENT = 500;

// The phone's copy: {list, details: {id: {topic, comments}}}, opened once per session.
async function cache(app) {
  const r = app.resident;
  r.topics ||= await ApiCopy.open(r.store.db, CACHE, { list: [], details: {} });
  return r.topics;
}

// Read again from the server (the list, and one topic's comments), then redraw.
async function refresh(app, id = null, force = false) {
  const copy = await cache(app);
  const changed = await copy.refresh(async () => {
    const listed = await callApi("/api/deliberation/topics");
    if (!listed.ok) return false;
    copy.data.list = listed.body.topics || [];
    if (id) {
      const one = await callApi(`/api/deliberation/topics/${encodeURIComponent(id)}`);
      if (one.ok) copy.data.details[id] = one.body;
      else if (one.status === 404) delete copy.data.details[id];
    }
    return true;
  }, force);
  if (changed) app.resident.sync.dataChanged();
}

function queued(app, id, kind) {
  return app.resident.store.outbox.items.filter((i) => i.kind === kind && i.shown.topic === id);
}

function statusChip(topic) {
  const cls = { open: "chip-waiting", agenda: "chip-open", decided: "chip-visited" }[topic.status] || "";
  return el("span", { class: `chip ${cls}`, "data-status": topic.status }, t(`dl_${topic.status}`));
}

function supportLine(topic) {
  return el("span", { class: "meta", "data-support": String(topic.support) },
    tf("dl_support_of", { n: topic.support, threshold: topic.threshold }));
}

function copyLine(topics) {
  return el("p", { class: "hint", id: "dl-copy" },
    topics.at ? `${t("r_copy_of")}：${cityTime(topics.at, { date: true })}` : t("dl_never_read"));
}

export async function topicsView(app) {
  const copy = await cache(app);
  const topics = { ...copy.data, at: copy.at };
  refresh(app);
  return [
    backLink("#/"),
    heading(t("dl_topics")),
    copyLine(topics),
    topics.list.length ? el("ul", { class: "list topics", id: "dl-list" }, topics.list.map((topic) => el("li", { "data-id": topic.id },
      el("a", { href: `#/topic/${encodeURIComponent(topic.id)}` },
        el("span", { class: "main" }, topic.title), statusChip(topic),
        el("span", { class: "meta" }, `${topic.author || ""} · ${dateOf(topic.created_at)}`),
        supportLine(topic))))) :
      el("p", { class: "hint", id: "dl-none" }, t("dl_none")),
  ];
}

function supportButton(app, topic) {
  const waiting = queued(app, topic.id, "support");
  if (topic.supported) return el("p", { class: "hint", id: "dl-supported" }, t("dl_supported"));
  if (waiting.length) {
    const item = waiting[0];
    return el("p", { class: `hint${item.refused ? " error" : ""}`, id: "dl-support-waiting",
      "data-status": item.refused ? "refused" : "waiting" },
    item.refused ? `${t("dl_not_taken")}：${message(item.refused.reason)}` : t("dl_support_waiting"));
  }
  const button = el("button", { type: "button", class: "primary", id: "dl-support" }, t("dl_support"));
  button.addEventListener("click", async () => {
    await app.resident.sync.send({ kind: "support", key: `support:${topic.id}`,
      path: `/api/deliberation/topics/${encodeURIComponent(topic.id)}/support`, body: {},
      shown: { topic: topic.id } });
    app.resident.sync.dataChanged();
    setTimeout(() => refresh(app, topic.id, true), 1500);
  });
  return el("p", { class: "actions" }, button);
}

function commentForm(app, topic, parent = null) {
  const id = parent ? `dl-reply-${parent.slice(-8)}` : "dl-comment";
  const text = el("textarea", { id: `${id}-text`, rows: "3", maxlength: String(MAX_COMMENT),
    "aria-describedby": `${id}-error` });
  const problem = el("p", { class: "error", id: `${id}-error`, role: "alert" });
  const form = el("form", { id, class: "dl-comment-form" },
    el("label", { for: `${id}-text` }, parent ? t("dl_reply") : t("dl_comment")), text, problem,
    el("p", { class: "actions" }, el("button", { type: "submit", id: `${id}-send` }, t("dl_send"))));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = text.value.trim();
    if (!body) {
      problem.textContent = t("dl_empty");
      return;
    }
    const request = requestId();
    await app.resident.sync.send({ kind: "comment", key: `comment:${topic.id}:${request}`,
      path: `/api/deliberation/topics/${encodeURIComponent(topic.id)}/comments`,
      body: { request, body, ...(parent ? { parent } : {}) }, shown: { topic: topic.id, body, parent } });
    form.reset();
    document.activeElement?.blur();
    app.resident.sync.dataChanged();
    setTimeout(() => refresh(app, topic.id, true), 1500);
  });
  return form;
}

function commentItem(comment) {
  if (comment.hidden && comment.body === undefined) {
    return el("li", { "data-id": comment.id, "data-hidden": "true" }, el("span", { class: "meta" }, t("dl_hidden")));
  }
  return el("li", { "data-id": comment.id, "data-hidden": String(Boolean(comment.hidden)) },
    el("span", { class: "meta" }, `${comment.author || ""} · ${dateOf(comment.created_at)}`),
    el("span", { class: "main" }, comment.body),
    comment.hidden ? el("span", { class: "chip chip-refused" }, tf("dl_hidden_mine", { reason: comment.hidden_reason || "" })) : null);
}

function thread(app, topic, comments, open) {
  const replies = new Map();
  for (const c of comments) if (c.parent) replies.set(c.parent, [...(replies.get(c.parent) || []), c]);
  const rows = comments.filter((c) => !c.parent).map((c) => el("li", { class: "dl-thread" },
    el("ul", { class: "list" }, commentItem(c), (replies.get(c.id) || []).map((r) => commentItem(r))),
    open && !c.hidden ? el("details", {}, el("summary", {}, t("dl_reply")), commentForm(app, topic, c.id)) : null));
  for (const item of queued(app, topic.id, "comment")) {
    rows.push(el("li", { "data-status": item.refused ? "refused" : "waiting" },
      el("span", { class: "main" }, item.shown.body),
      el("span", { class: `chip ${item.refused ? "chip-refused" : "chip-waiting"}` },
        item.refused ? `${t("dl_not_taken")}：${message(item.refused.reason)}` : t("dl_waiting"))));
  }
  return el("section", { class: "card", id: "dl-comments" }, el("h3", {}, t("dl_comments")),
    rows.length ? el("ul", { class: "list" }, rows) : el("p", { class: "hint" }, t("dl_no_comments")));
}

export async function topicView(app, id) {
  const copy = await cache(app);
  const topics = { ...copy.data, at: copy.at };
  refresh(app, id, !topics.details[id]);  // a topic not read yet is read at once
  const detail = topics.details[id];
  const topic = detail?.topic || topics.list.find((x) => x.id === id);
  if (!topic) return [backLink("#/topics"), heading(t("not_found")), copyLine(topics)];
  const open = topic.status !== "decided";
  const council = topic.council;
  return [
    backLink("#/topics", t("dl_topics")),
    heading(topic.title),
    el("p", { class: "meta" }, `${topic.author || ""} · ${dateOf(topic.created_at)}`, " ", statusChip(topic)),
    el("article", { class: "notice-body" }, String(topic.body || "").split(/\n\s*\n/).map((p) => el("p", {}, p))),
    el("p", { class: "hint", id: "dl-support-count" }, supportLine(topic)),
    copyLine(topics),
    open ? supportButton(app, topic) : null,
    council ? el("section", { class: "card", id: "dl-council" }, el("h3", {}, t("dl_council")),
      el("p", { class: "main" }, t(`dl_outcome_${council.outcome}`)),
      el("article", { class: "notice-body" }, String(council.minutes || "").split(/\n\s*\n/).map((p) => el("p", {}, p)))) : null,
    detail ? thread(app, topic, detail.comments || [], open) : el("p", { class: "hint" }, t("dl_need_online")),
    open && detail ? commentForm(app, topic) : null,
  ];
}
