// The liaison screens' words (执法进小区), zh-CN first, English second: a resident's officers
// and messages (pwa/liaison/officers.js), the officer's patrols (pwa/liaison/patrol.js).

export const LIAISON_WORDS = {
  lo_title: ["联系执法联络员", "Liaison officers"],
  lo_intro: ["小区的执法部门联络员，在应用中留言联系，不公开电话。",
    "Your compound's enforcement liaison officers: write to them in the app; no phone number is shown."],
  lo_none: ["您的小区还没有联络员。", "Your compound has no liaison officers yet."],
  lo_officer: ["联络员：{name}", "Officer: {name}"],
  lo_write: ["留言内容", "Your message"],
  lo_send: ["发送", "Send"],
  lo_refused: ["未能发送：{reason}", "Not sent: {reason}"],
  lo_online: ["联络员和留言需要联网查看。", "Liaison officers and messages need the network."],
  pt_title: ["巡查", "Patrols"],
  pt_none: ["还没有巡查路线（联网后会更新）。", "No patrol routes yet (updated when online)."],
  pt_copy_at: ["路线更新于 {at}", "Routes as of {at}"],
  pt_copy_none: ["路线需要联网获取一次。", "The routes need the network once."],
  pt_points: ["{n} 个巡查点 · 每周 {w} 次", "{n} checkpoints · {w} a week"],
  pt_ok: ["正常", "OK"],
  pt_problem: ["发现问题", "Problem found"],
  pt_problem_details: ["问题类别和描述（发现问题时填写）", "Category and description (for a problem)"],
  pt_category: ["问题类别", "Category"],
  pt_description: ["问题描述", "Description"],
  pt_photo: ["现场照片", "Photo"],
  pt_queued: ["已记录，待发送", "Recorded, waiting to be sent"],
  pt_sent: ["已发送", "Sent"],
  pt_refused: ["未被接受：{reason}", "Not accepted: {reason}"],
  pt_new: ["结束本次巡查，开始新的一次", "End this patrol and start another"],
};
