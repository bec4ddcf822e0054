// Property fees (物业费, 智缴, docs/fees.md): an owner's bills, paid and owed, read from GET
// /api/fees/bills and kept on the phone (apicopy.js: a local document that never replicates), so
// the list, the history and each receipt open offline and say how old the copy is. Paying is
// queued on the phone (outbox.js) with its own request id, so a retry is the same order; the
// screen says 待发送 until the server has it, then 待确认 until the payment provider confirms.
// A bill is shown paid only when the server says so: never because this phone started paying.

import { callApi } from "../api.js";
import { el } from "../dom.js";
import { t, tf } from "../i18n.js";
import { ApiCopy, dateOf, requestId } from "./apicopy.js";
import { ratingSection } from "./ratings.js";
import { backLink, heading } from "./ui.js";

const COPY = "_local/linli-fees";

function yuan(fen) {
  const n = Number(fen) || 0;
  return `¥${Math.floor(n / 100)}.${String(n % 100).padStart(2, "0")}`;
}

async function copyOf(app) {
  const r = app.resident;
  if (!r.fees) r.fees = await ApiCopy.open(r.store.db, COPY, { bills: [] });
  return r.fees;
}

async function refresh(app) {
  const copy = await copyOf(app);
  const changed = await copy.refresh(async (c) => {
    const reply = await callApi("/api/fees/bills");
    if (!reply.ok) return false;
    c.data = { bills: reply.body.bills || [] };
    return true;
  });
  if (changed) app.resident.sync.dataChanged();
}

function queued(app, bill) {
  return app.resident.store.outbox.items.filter((i) => i.kind === "fee_pay" && i.shown.bill === bill);
}

// paid (the server says so), queued (on this phone), started (sent, not confirmed), owed
function stateOf(app, bill) {
  if (bill.state === "paid" || bill.state === "exempt") return bill.state;
  const mine = queued(app, bill.bill);
  if (mine.some((i) => i.refused)) return "refused";
  if (mine.length) return "queued";
  return (app.resident.feesStarted || new Set()).has(bill.bill) ? "started" : "owed";
}

function chip(state) {
  const kind = { paid: "chip-visited", exempt: "chip-visited", owed: "chip-refused", refused: "chip-refused" }[state]
    || "chip-waiting";
  return el("span", { class: `chip ${kind}`, "data-state": state }, t(`fe_${state}`));
}

export async function feesView(app) {
  const copy = await copyOf(app);
  refresh(app);
  const bills = copy.data.bills || [];
  const owed = bills.filter((b) => b.state !== "paid").reduce((sum, b) => sum + b.owed, 0);
  return [
    backLink("#/"),
    heading(t("fe_title")),
    el("p", { class: "hint", id: "fe-copy" }, copy.at ? `${t("r_copy_of")}：${dateOf(new Date(copy.at).toISOString())}`
      : t("fe_never_read")),
    el("p", { id: "fe-owed", "data-fen": String(owed) }, tf("fe_owed_total", { amount: yuan(owed) })),
    bills.length ? el("ul", { class: "list", id: "fe-list" }, bills.map((b) => el("li", { "data-bill": b.bill },
      el("a", { href: `#/fee/${encodeURIComponent(b.bill)}` },
        el("span", { class: "main" }, `${b.period} · ${b.unit}`), chip(stateOf(app, b)),
        el("span", { class: "meta" }, b.state === "paid" ? tf("fe_paid_on", { amount: yuan(b.paid.amount),
          date: dateOf(b.paid.paid_at) }) : b.state === "exempt" ? t("fe_exempt_about")
          : tf("fe_due", { amount: yuan(b.owed), date: b.due_date }))))))
      : el("p", { class: "hint", id: "fe-none" }, t("fe_none")),
  ];
}

function receipt(bill) {
  const rows = [["fe_compound", bill.compound], ["fe_unit", bill.unit], ["fe_period", bill.period],
    ["fe_principal", yuan(bill.principal)], ["fe_amount_paid", yuan(bill.paid.amount)],
    ["fe_paid_at", dateOf(bill.paid.paid_at)], ["fe_order", bill.paid.order],
    ["fe_transaction", bill.paid.transaction]];
  const print = el("button", { type: "button", id: "fe-print" }, t("fe_print"));
  print.addEventListener("click", () => window.print());
  return el("section", { id: "fe-receipt", class: "receipt" }, el("h3", {}, t("fe_receipt")),
    bill.paid.test ? el("p", { id: "fe-test-provider", class: "warn", role: "note" }, t("fe_test_provider")) : null,
    el("dl", {}, rows.flatMap(([k, v]) => [el("dt", {}, t(k)), el("dd", {}, String(v))])),
    el("div", { class: "actions" }, print));
}

export async function feeView(app, id) {
  const copy = await copyOf(app);
  refresh(app);
  const bill = (copy.data.bills || []).find((b) => b.bill === id);
  if (!bill) return [backLink("#/fees"), heading(t("not_found"))];
  const state = stateOf(app, bill);
  const nodes = [backLink("#/fees"), heading(`${bill.period} · ${bill.unit}`), chip(state),
    el("p", { id: "fe-state", role: "status" }, t(`fe_${state}_about`))];
  if (bill.state === "paid") return [...nodes, await ratingSection(app, bill), receipt(bill)];
  if (bill.state === "exempt") return [...nodes, await ratingSection(app, bill)];
  nodes.push(el("p", {}, tf("fe_breakdown", { principal: yuan(bill.principal), late: yuan(bill.late_fee),
    amount: yuan(bill.owed) })));
  if (state === "owed" || state === "refused") {
    const pay = el("button", { type: "button", id: "fe-pay", class: "primary" }, t("fe_pay"));
    pay.addEventListener("click", async () => {
      pay.disabled = true;
      await app.resident.sync.send({ kind: "fee_pay", key: `fee_pay:${bill.bill}`, replaces: true,
        path: `/api/fees/bills/${encodeURIComponent(bill.bill)}/pay`, body: { request: requestId() },
        shown: { bill: bill.bill } });
      (app.resident.feesStarted ||= new Set()).add(bill.bill);
    });
    nodes.push(el("div", { class: "actions" }, pay));
  }
  return nodes;
}
