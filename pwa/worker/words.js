// The handler's queue's words (问题办理, pwa/worker/reports.js), zh-CN first, English second.
// The labels of the form are the server's (新状态, 办理说明, 承办单位, 照片), so a refusal naming
// a field by its label names what the handler sees.

export const HANDLER_WORDS = {
  hq_link: ["问题办理", "Reports to handle"],
  hq_title: ["问题办理", "Reports to handle"],
  hq_none: ["没有需要您办理的问题", "No report is routed to you"],
  hq_copy_of: ["手机上的副本：{time}", "Copy on this phone: {time}"],
  hq_never: ["尚未下载，联网后自动获取", "Not downloaded yet: fetched when online"],
  hq_overdue: ["已超期", "Overdue"],
  hq_to: ["新状态", "New state"],
  hq_note: ["办理说明", "Note"],
  hq_assignee: ["承办单位", "Assignee"],
  hq_after_photos: ["照片（办理后，最多 {n} 张）", "Photos (after, at most {n})"],
  hq_photos_n: ["{n} 张照片", "{n} photo(s)"],
  hq_submit: ["提交", "Submit"],
  hq_send_again: ["改正后重新提交", "Correct and send again"],
};
