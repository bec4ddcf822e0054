// The app's words in zh-CN (the default) and English. Field and code labels come from the
// schemas (`title` / `x-title-en`, `x-enum-labels`); everything else the app says is here, the
// resident's screens' words in their own file.

import { PARTY_WORDS } from "./party/words.js";
import { RESIDENT_WORDS } from "./resident/words.js";

const WORDS = {
  ...RESIDENT_WORDS,
  ...PARTY_WORDS,
  app_name: ["邻里", "Linli"],
  switch_language: ["English", "中文"],
  switch_language_label: ["Switch to English", "切换到中文"],
  login_title: ["登录", "Log in"],
  login_again: ["登录已过期，请重新登录。未同步的记录仍保存在手机上。",
    "Your login has expired; please log in again. Unsynced records stay on this phone."],
  user_name: ["用户名或手机号", "User name or phone"],
  password: ["密码", "Password"],
  log_in: ["登录", "Log in"],
  log_out: ["退出登录", "Log out"],
  logging_in: ["正在登录…", "Logging in…"],
  login_locked: ["登录失败次数过多，请在 {time} 之后再试（约 {wait}）。",
    "Too many failed logins; try again after {time} (in about {wait})."],
  wait_minutes: ["{n} 分钟", "{n} min"],
  wait_seconds: ["{n} 秒", "{n} s"],
  login_needs_network: ["首次登录需要网络", "The first login needs a network connection"],
  synced: ["已同步", "Synced"],
  offline: ["离线", "Offline"],
  syncing: ["正在同步…", "Syncing…"],
  need_login: ["需要重新登录", "Log in again"],
  sync_failing: ["同步失败", "Sync failing"],
  sync_refused: ["有记录被退回", "Records refused"],
  sync_retry_at: ["{time} 自动重试。", "Retrying by itself at {time}."],
  sync_retrying: ["正在自动重试。", "Retrying by itself."],
  sync_problem_network: ["连不上服务器。记录都保存在手机上，可以继续工作。",
    "Cannot reach the server. Records are kept on this phone; keep working."],
  sync_problem_busy: ["服务器暂时不可用（{detail}）。记录都保存在手机上，可以继续工作。",
    "The server is unavailable for now ({detail}). Records are kept on this phone; keep working."],
  sync_problem_server: ["服务器出错（{detail}）。记录都保存在手机上；若一直如此，请告诉管理员。",
    "The server failed ({detail}). Records are kept on this phone; if this goes on, tell your administrator."],
  sync_problem_forbidden: ["服务器拒绝同步本网格（{detail}）。记录都保存在手机上；请联系管理员确认您负责的网格。",
    "The server refuses to sync this grid ({detail}). Records are kept on this phone; ask your administrator to check your grids."],
  sync_problem_missing: ["服务器上没有您的这个网格（{detail}），可能您已不再负责它。记录都保存在手机上；请联系管理员确认您负责的网格。",
    "The server has no such grid of yours ({detail}); it may no longer be yours. Records are kept on this phone; ask your administrator to check your grids."],
  sync_problem_document: ["有一条记录无法同步，同步停在这里（{detail} {id}）。请把这条信息告诉管理员。",
    "A record cannot be synced and the sync stops at it ({detail} {id}). Tell your administrator this message."],
  sync_problem_failed: ["同步出错（{detail}）。记录都保存在手机上；若一直如此，请告诉管理员。",
    "Sync failed ({detail}). Records are kept on this phone; if this goes on, tell your administrator."],
  last_sync: ["上次同步", "Last sync"],
  never: ["从未", "never"],
  waiting: ["待上传", "Waiting to send"],
  refused: ["被退回", "Refused"],
  refused_title: ["服务器退回的记录", "Records the server refused"],
  refused_help: ["请修改后重新保存，记录会自动重新上传。",
    "Correct and save again; the record is sent again by itself."],
  no_refused: ["没有被退回的记录", "No refused records"],
  storage_low: ["手机存储空间不足，请尽快同步并清理空间", "Storage is running low; sync soon and free some space"],
  storage_not_persisted: ["浏览器可能在空间不足时清除数据，请尽快同步",
    "The browser may clear data when space runs low; sync soon"],
  update_ready: ["新版本已就绪。未同步的记录不受影响。", "A new version is ready. Unsynced records are kept."],
  update_now: ["立即更新", "Update now"],
  my_grids: ["我的网格", "My grids"],
  search: ["搜索地址或姓名", "Search address or name"],
  search_label: ["搜索住户", "Search households"],
  no_results: ["没有找到", "Nothing found"],
  buildings: ["楼栋", "Buildings"],
  building: ["幢", "Building"],
  unit: ["单元", "Unit"],
  room: ["室", "Room"],
  households: ["户", "households"],
  household: ["住户", "Household"],
  progress_visits: ["户情排摸", "Household visits"],
  progress_census: ["人口普查", "Census"],
  progress_screening: ["入户排查", "Screening"],
  visited: ["已走访", "Visited"],
  to_visit: ["待走访", "To visit"],
  refused_visit: ["拒绝", "Refused"],
  enumerated: ["已登记", "Enumerated"],
  screened: ["已排查", "Screened"],
  of: ["共", "of"],
  members: ["家庭成员", "Members"],
  visits: ["走访记录", "Visits"],
  verdicts: ["督导意见", "Supervisor's verdicts"],
  no_members: ["还没有成员", "No members yet"],
  no_visits: ["还没有走访", "No visits yet"],
  record_visit: ["记录走访", "Record a visit"],
  edit_household: ["住户调查", "Household survey"],
  add_member: ["添加成员", "Add a member"],
  census_form: ["人口普查登记", "Census form"],
  edit: ["修改", "Edit"],
  screen: ["排查", "Screen"],
  remove_member: ["移出", "Remove"],
  remove_reason: ["移出原因", "Reason for removal"],
  save: ["保存", "Save"],
  cancel: ["取消", "Cancel"],
  back: ["返回", "Back"],
  saved: ["已保存，将在联网时上传", "Saved; it will be sent when online"],
  fix_fields: ["请修改标出的内容", "Please correct the marked fields"],
  draft_restored: ["已恢复未保存的草稿", "Unsaved draft restored"],
  choose: ["请选择", "Choose"],
  yes: ["是", "Yes"],
  no: ["否", "No"],
  not_found: ["找不到这条记录", "Record not found"],
  merged_note: ["此记录与他人的修改合并过", "This record was merged with someone else's edit"],
  state_waiting: ["待上传", "waiting"],
  state_refused: ["被退回", "refused"],
  loading: ["正在加载…", "Loading…"],
  first_sync: ["首次同步中，请保持联网…", "First sync; please stay online…"],
  no_grids: ["您没有分配网格", "You have no grid assigned"],
  masked_only: ["您的账号没有查看完整身份证号、电话和特殊人群信息的权限，网格记录不同步到本机；请在审核、冲突和统计页面查看（已遮盖）。",
    "Your account may not see ID numbers, phones and special groups unmasked, so grid records are not kept on this phone; see them masked in the review, conflicts and dashboard screens."],
  screen_of: ["排查", "Screening of"],
  decision: ["结论", "Decision"],
  // merges of concurrent edits, as the worker sees them ({name}s are filled in by tf)
  merges: ["修改合并", "Merged edits"],
  merged_with: ["与 {names} 的修改已合并", "Merged with {names}'s edits"],
  merged_among: ["{names} 的修改已合并", "Edits by {names} were merged"],
  merged_own: ["您在几台手机上的修改已合并", "Your edits from more than one phone were merged"],
  merged_unknown: ["同时进行的修改已合并", "Edits made at the same time were merged"],
  both_changed_open: ["{field} {sides}都改了，暂用 {who} 的值（{value}），等待督导员决定",
    "{field} was changed {sides}; {who}'s value ({value}) stands until a supervisor decides"],
  sides_two: ["两人", "on both sides"],
  sides_many: ["{n} 人", "by {n} people"],
  decided_field: ["督导员 {who} 已决定：{field} = {value}", "Supervisor {who} decided: {field} = {value}"],
  rule_field: ["{field}：{rule}，采用 {who} 的值（{value}）", "{field}: {rule}; {who}'s value is kept ({value})"],
  rule_field_merged: ["{field}：{rule}（{value}）", "{field}: {rule} ({value})"],
  merged_quietly: ["其他自动合并的字段：{fields}", "Merged automatically: {fields}"],
  deletion_lost: ["删除未生效：有人同时修改了这条记录",
    "The deletion did not take effect: someone edited this record at the same time"],
  other_values: ["其他值", "Other values"],
  your_edit: ["您的修改", "Your edit"],
  you: ["您", "you"],
  a_supervisor: ["督导员", "a supervisor"],
  someone: ["他人", "someone"],
  value_absent: ["（空）", "(empty)"],
  // the supervisor's queue of conflicts
  conflict_queue: ["待决定的冲突", "Conflicts to decide"],
  server_links: ["管理", "Supervision"],
  conflicts_help: ["两人同时修改了同一字段。请为每个字段选定一个值，或另填一个值。",
    "Two people changed the same field at the same time. Choose a value for each field, or type one."],
  no_conflicts: ["没有待决定的冲突", "No conflicts to decide"],
  needs_network: ["需要网络", "Needs a network connection"],
  conflicts_unavailable: ["服务器暂不提供冲突处理", "The server does not offer conflict decisions yet"],
  supervisors_only: ["只有督导员和管理员可以决定冲突", "Only supervisors and administrators decide conflicts"],
  type_value: ["另填一个值", "Type a value"],
  provisional: ["暂用", "standing"],
  decide: ["确定", "Decide"],
  deciding: ["正在提交…", "Sending…"],
  decided: ["已决定", "Decided"],
  choose_each: ["请为每个字段选定一个值", "Choose a value for each field"],
  type_something: ["请填写一个值", "Type a value"],
  changed_meanwhile: ["记录已有新的修改，列表已刷新", "The record changed meanwhile; the list was reloaded"],
  received_at: ["服务器收到", "received"],
  resolved_at: ["处理时间", "Resolved"],
  open_household: ["查看住户", "Open the household"],
  // the supervisors' dashboard (figures from the server's aggregates)
  dashboard: ["统计看板", "Dashboard"],
  breadcrumbs: ["区域层级", "Area levels"],
  print: ["打印", "Print"],
  headline: ["主要数字", "Headline figures"],
  level_city_all: ["全市", "The city"],
  level_city: ["市", "City"],
  level_district: ["区", "District"],
  level_street: ["街道", "Street"],
  level_community: ["社区", "Community"],
  level_grid: ["网格", "Grid"],
  area: ["区域", "Area"],
  fig_households: ["住户", "Households"],
  fig_covered: ["已覆盖", "Covered"],
  fig_coverage: ["走访覆盖率", "Survey coverage"],
  fig_census: ["普查登记率", "Census enumerated"],
  fig_persons: ["人口", "Persons"],
  fig_screenings: ["排查人次", "Screenings"],
  fig_conflicts: ["待决定冲突", "Open conflicts"],
  fig_reviewed: ["已审核", "Reviewed"],
  withheld: ["已隐藏", "withheld"],
  chart_coverage: ["各区域走访覆盖率", "Survey coverage by area"],
  table_coverage: ["各区域走访覆盖率（数据）", "Survey coverage by area (data)"],
  drill_help: ["点击区域名称查看下一级", "Choose an area to see the areas below it"],
  chart_screenings: ["每日排查人次", "Screenings per day"],
  chart_screenings_label: ["每日排查人次：{first} 至 {last} 共 {n} 天，合计 {total}，最多 {max}（{day}）",
    "Screenings per day: {n} days from {first} to {last}, {total} in all, at most {max} ({day})"],
  table_screenings: ["每日排查人次（数据）", "Screenings per day (data)"],
  no_screenings: ["还没有排查记录", "No screenings yet"],
  date: ["日期", "Date"],
  chart_review: ["审核结果", "Review verdicts"],
  table_review: ["审核结果（数据）", "Review verdicts (data)"],
  verdict: ["结果", "Verdict"],
  records: ["记录数", "Records"],
  verdict_approved: ["通过", "Approved"],
  verdict_has_issues: ["有问题", "Has issues"],
  verdict_rejected: ["驳回", "Rejected"],
  dashboard_forbidden: ["只有督导员和管理员可以查看统计看板", "Only supervisors and administrators see the dashboard"],
  no_such_area: ["没有这个区域", "No such area"],
  dashboard_slow: ["服务器暂未算好统计数字，请稍后再试", "The server has not worked out the figures yet; try again shortly"],
  retry: ["重试", "Try again"],
  // the supervisors' review of synced records (pwa/review.js)
  review_queue: ["审核", "Review"],
  review_help: ["网格员同步的走访、普查和排查记录：可一次通过多条，或写明问题退回修改。",
    "Visits, census forms and screenings the grid workers synced: approve many at once, or say what is wrong."],
  review_download: ["下载此列表", "Download this list"],
  review_forbidden: ["只有督导员和管理员可以审核", "Only supervisors and administrators review records"],
  review_filters: ["筛选", "Filters"],
  filter_grid: ["网格", "Grid"],
  filter_type: ["类型", "Type"],
  filter_state: ["审核状态", "Review state"],
  filter_worker: ["网格员", "Worker"],
  filter_from: ["日期从", "Date from"],
  filter_to: ["日期至", "Date to"],
  filter_all: ["全部", "All"],
  apply_filters: ["查询", "Show"],
  rv_received: ["待审核", "Received"],
  rv_approved: ["通过", "Approved"],
  rv_has_issues: ["有问题", "Has issues"],
  rv_edited: ["已修改待复核", "Edited"],
  rv_rejected: ["不通过", "Rejected"],
  review_caption: ["记录 {n} 条", "{n} records"],
  review_truncated: ["只列出了前 {n} 条，请缩小筛选范围", "Only the first {n} are listed; narrow the filters"],
  no_review_records: ["没有符合条件的记录", "No records match"],
  select_all: ["全选已显示的记录", "Select all records shown"],
  select_record: ["选择 {record}", "Select {record}"],
  col_record: ["记录", "Record"],
  col_worker: ["网格员", "Worker"],
  col_state: ["状态", "State"],
  show_more: ["显示更多", "Show more"],
  selected_n: ["已选 {n} 条", "{n} selected"],
  give_approved: ["通过", "Approve"],
  give_has_issues: ["有问题", "Has issues"],
  give_rejected: ["不通过", "Reject"],
  comment: ["意见", "Comment"],
  comment_help: ["选“有问题”或“不通过”时必须填写", "Needed for “Has issues” and “Reject”"],
  comment_needed: ["请填写意见", "Please write a comment"],
  select_first: ["请先选择记录", "Select records first"],
  verdicts_given: ["已提交 {n} 条审核意见", "{n} verdicts given"],
  review_record: ["记录", "Record"],
  record_fields: ["记录内容", "The record"],
  masked_note: ["身份证号、电话已部分隐藏，特殊人群已隐藏", "ID and phone numbers are partly hidden, special groups hidden"],
  show_unmasked: ["显示完整信息（将记入审计日志）", "Show in full (written to the audit log)"],
  no_verdicts: ["还没有审核意见", "No verdicts yet"],
  just_received: ["刚收到", "just received"],
  device_time: ["手机时间 {time}（仅供参考）", "phone's time {time} (as the phone said)"],
  verdict_on: ["针对第 {n} 版", "on revision {n}"],
  history: ["修改历史", "History"],
  revision_n: ["第 {n} 版", "Revision {n}"],
  current: ["当前", "current"],
  not_kept: ["内容未保留", "not kept"],
  not_kept_help: ["数据库已压缩，这一版的内容不再保留", "The database was compacted; this revision's content is no longer kept"],
  deleted_rev: ["已删除", "deleted"],
  sender_unknown: ["提交人不详", "sender unknown"],
  changes_since: ["与第 {n} 版相比的修改", "Changes since revision {n}"],
  first_kept: ["最早保留的内容", "The earliest content kept"],
  no_changes: ["内容没有变化", "No field changed"],
  field: ["字段", "Field"],
  before: ["原值", "Before"],
  after: ["新值", "After"],
  value: ["值", "Value"],
  older_revisions: ["另有 {n} 个更早的版本未列出", "{n} older revisions not listed"],
  record_conflicts: ["这条记录有待决定的冲突", "This record has conflicts to decide"],
  review_slow: ["服务器暂未响应，请稍后重试", "The server has not answered yet; try again shortly"],
  // Notices (公告, pwa/notices.js)
  notices: ["公告", "Notices"],
  notice_visits: ["公告催办", "Notices to follow up"],
  notice_new: ["写公告", "Write a notice"],
  no_notices: ["还没有公告", "No notices yet"],
  // Volunteer tasks for their organiser (pwa/volunteering.js)
  ot_tasks: ["志愿任务", "Volunteer tasks"],
  ot_new: ["发布任务", "Publish a task"],
  ot_none: ["还没有志愿任务", "No volunteer tasks yet"],
  ot_places: ["名额 {n} 人", "{n} places"],
  ot_counts: ["已占 {confirmed} · 候补 {waiting}", "{confirmed} held · {waiting} waiting"],
  ot_title: ["标题", "Title"],
  ot_description: ["任务说明", "Description"],
  ot_place: ["地点", "Place"],
  ot_community: ["社区", "Community"],
  ot_starts: ["开始时间（北京时间）", "Starts (Beijing time)"],
  ot_ends: ["结束时间（北京时间）", "Ends (Beijing time)"],
  ot_deadline: ["报名截止（可不填：开始前都可报名）", "Claims close (optional: until the start)"],
  ot_places_label: ["名额", "Places"],
  ot_open_to: ["报名范围", "Open to"],
  ot_open_residents: ["本社区全体居民", "All residents of the community"],
  ot_open_volunteers: ["已注册的志愿者", "Registered volunteers"],
  ot_approval: ["报名须组织者审核", "I approve each place holder"],
  ot_publish: ["发布", "Publish"],
  ot_published: ["任务已发布", "Task published"],
  ot_show_code: ["显示签到码", "Show the check-in code"],
  ot_no_claims: ["还没有人报名", "No claims yet"],
  ot_approve: ["通过", "Approve"],
  ot_reject: ["不通过", "Reject"],
  ot_confirm_hours: ["确认时长", "Confirm hours"],
  ot_done: ["已提交", "Done"],
  ot_code_title: ["签到码", "Check-in code"],
  ot_code_until: ["有效至 {time}（北京时间），之后自动换新", "Valid until {time} (Beijing time), then renewed"],
  ot_code_kept: ["签到码已保存在本机：没有网络也能显示", "Kept on this phone: shows without a network too"],
  ot_code_offline: ["离线显示：签到码由本机生成", "Offline: the code is made on this phone"],
  ot_code_need_once: ["第一次显示签到码需要联网", "Showing the code the first time needs a network"],
  ot_code_help: ["请志愿者在自己手机的“签到签退”中输入这 6 位数字，没有网络也可以。",
    "Volunteers type these 6 digits in Check in and out on their phone, offline too."],
  ot_back_task: ["返回任务", "Back to the task"],
  withdrawn: ["已撤回", "Withdrawn"],
  withdraw: ["撤回", "Withdraw"],
  withdraw_confirm: ["撤回后，居民手机上的这条公告将在下次同步时删除。确定撤回？",
    "Once withdrawn, the notice leaves residents' phones at their next sync. Withdraw it?"],
  pinned: ["置顶", "Pinned"],
  needs_confirmation: ["须确认", "Please confirm"],
  read_count: ["已读 {read} 人", "read by {read}"],
  read_confirmed: ["已读 {read} 人，已确认 {confirmed} 人", "read by {read}, confirmed by {confirmed}"],
  notice_title: ["标题", "Title"],
  notice_body: ["正文", "Body"],
  notice_body_hint: ["纯文本，段落之间空一行；不能含 HTML", "Plain text, a blank line between paragraphs; no HTML"],
  audience: ["发布范围", "Audience"],
  audience_which: ["选择范围", "Which ones"],
  audience_none: ["没有可选的范围", "Nothing to choose"],
  audience_tags: ["只发给（可不选）", "Only to (optional)"],
  building_grid: ["楼幢所在网格", "Grid of the buildings"],
  level_city: ["全市", "The city"],
  level_street: ["街道", "Streets"],
  level_community: ["社区", "Communities"],
  level_grid: ["网格", "Grids"],
  level_building: ["楼幢", "Buildings"],
  tag_elderly_alone: ["独居老人", "Elderly living alone"],
  tag_hardship: ["困难家庭", "Hardship"],
  tag_disability: ["残疾人", "Disability"],
  tag_health_needs: ["健康需求", "Health needs"],
  tag_owner: ["业主", "Owners"],
  tag_tenant: ["租户", "Tenants"],
  expires_at: ["有效期至（可不填）", "Expires (optional)"],
  images: ["图片", "Images"],
  images_hint: ["最多 {n} 张 JPEG、PNG 或 WebP，每张不超过 {kb} KB（大照片会自动缩小）",
    "At most {n} JPEG, PNG or WebP images of {kb} KB each (large photos are scaled down)"],
  images_at_most: ["最多 {n} 张图片", "At most {n} images"],
  image_type: ["只接受 JPEG、PNG 或 WebP", "Only JPEG, PNG or WebP"],
  image_too_big: ["图片太大（最大 {kb} KB）", "The image is too large (at most {kb} KB)"],
  remove_image: ["移除", "Remove"],
  uploading: ["上传进度", "Upload progress"],
  preview: ["预览", "Preview"],
  publish: ["发布", "Publish"],
  publishing: ["正在发布…", "Publishing…"],
  published: ["已发布", "Published"],
  fill_in: ["请填写“{field}”", "Please fill in {field}"],
  follow_up: ["阅读和确认情况", "Who has read and confirmed"],
  follow_counts: ["未读 {unread} 户 · 已读未确认 {unconfirmed} 户 · 无居民账号 {without_account} 户 · 已完成 {done} 户",
    "unread {unread} · read, not confirmed {unconfirmed} · no resident account {without_account} · done {done}"],
  state_unread: ["未读", "Unread"],
  state_unconfirmed: ["未确认", "Not confirmed"],
  state_without_account: ["需上门告知", "Tell at the door"],
  all_done: ["全部完成", "All done"],
  not_listed: ["发给特殊人群的公告，住户名单只给本网格网格员看", "A notice to a special group: its households are listed to the grid's worker only"],
  read_only_notice: ["无需确认", "No confirmation asked"],
  no_households: ["范围内还没有住户", "No household in the audience yet"],
  no_visits: ["没有需要上门的公告", "No notice to follow up door to door"],
  visits_as_of: ["更新于 {time}", "As of {time}"],
  visits_offline: ["离线：显示 {time} 的清单", "Offline: the list as of {time}"],
  near_match: ["近似", "Near match"],
  no_exact: ["没有完全相符的门牌，以下是近似的：", "No exact address; these are near:"],
  // the admin's accounts screen (pwa/users.js)
  users_link: ["用户管理", "Accounts"],
  users_title: ["用户管理", "Staff accounts"],
  users_hint: ["停用后此人立即退出登录，启用后可重新登录；删除不可恢复，其名字仍保留在其记录上。",
    "Disabling logs the person out at once; enabling lets them log in again. Removing is for good; their name stays on what they wrote."],
  role_worker: ["网格员", "Grid worker"],
  role_supervisor: ["督导员", "Supervisor"],
  role_secretary: ["党支部书记", "Party branch secretary"],
  role_admin: ["管理员", "Administrator"],
  role_property: ["物业", "Property company"],
  role_department: ["联络部门", "Liaison department"],
  user_state_active: ["使用中", "Active"],
  user_state_disabled: ["已停用", "Disabled"],
  user_state_removed: ["已删除", "Removed"],
  user_disable: ["停用", "Disable"],
  user_enable: ["启用", "Enable"],
  user_remove: ["删除", "Remove"],
  user_disable_label: ["停用 {name}", "Disable {name}"],
  user_enable_label: ["启用 {name}", "Enable {name}"],
  user_remove_label: ["删除 {name}", "Remove {name}"],
  user_remove_confirm: ["删除 {name}？删除后不能恢复，此用户名也不能再用。",
    "Remove {name}? This cannot be undone, and the name cannot be used again."],
  user_disable_done: ["已停用 {name}，其登录已全部结束", "{name} disabled; their sessions have ended"],
  user_enable_done: ["已启用 {name}", "{name} enabled"],
  user_remove_done: ["已删除 {name}", "{name} removed"],
};

const STORE_KEY = "linli.lang";
let current = localStorage.getItem(STORE_KEY) === "en" ? "en" : "zh";

export function lang() {
  return current;
}

export function setLang(value) {
  current = value === "en" ? "en" : "zh";
  localStorage.setItem(STORE_KEY, current);
  document.documentElement.lang = current === "en" ? "en" : "zh-CN";
}

// A word of the app.
export function t(key) {
  const pair = WORDS[key];
  if (!pair) return key;
  return current === "en" ? pair[1] : pair[0];
}

// A word of the app with its {placeholders} filled in.
export function tf(key, values) {
  return t(key).replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

// A [zh, en] pair, as the schemas' x-enum-labels hold them.
export function pick(pair) {
  if (!Array.isArray(pair)) return String(pair ?? "");
  return current === "en" ? pair[1] : pair[0];
}

// A field's label from its schema.
export function fieldLabel(schema, name) {
  if (!schema) return name;
  return current === "en" ? schema["x-title-en"] || schema.title || name : schema.title || name;
}

// A "中文 / English" message from the server or the validator, in the current language.
export function message(text) {
  if (typeof text !== "string") return String(text ?? "");
  const parts = text.split(" / ");
  if (parts.length < 2) return text;
  // "zh：… / en: …" pairs joined by "；" when several problems are reported.
  return text
    .split("；")
    .map((one) => {
      const i = one.indexOf(" / ");
      if (i < 0) return one;
      return current === "en" ? one.slice(i + 3) : one.slice(0, i);
    })
    .join(current === "en" ? "; " : "；");
}

// A clock time of today (hours and minutes, seconds when it is near), in the phone's own zone.
export function clockTime(ms, seconds = false) {
  return new Date(ms).toLocaleTimeString(current === "en" ? "en-GB" : "zh-CN", {
    hour: "2-digit", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}),
  });
}

export function formatTime(ms) {
  if (!ms) return t("never");
  const d = new Date(ms);
  return d.toLocaleString(current === "en" ? "en-GB" : "zh-CN", {
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
  });
}

// The city's time (Asia/Shanghai, 北京时间) whatever the phone's zone, for what the server
// decides: a pause after wrong codes, a notice's dates, when a request was answered.
export function cityTime(ms, { date = false, seconds = false } = {}) {
  if (!ms) return t("never");
  return new Date(ms).toLocaleString(current === "en" ? "en-GB" : "zh-CN", {
    timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
    ...(seconds ? { second: "2-digit" } : {}),
    ...(date ? { year: "numeric", month: "2-digit", day: "2-digit" } : {}),
  });
}

setLang(current);
