# 中文（简体）。Chinese has one plural form (CLDR: other).

email-greeting = { $name }，您好：
email-footer = 您收到此邮件是因为您在 Keel 上的账户。您可以在通知偏好设置中选择接收哪些消息。

## Security

verify-email-subject = 请确认您的电子邮件地址
verify-email-body = 请确认这是您的电子邮件地址，以完成 Keel 账户的设置。
verify-email-action = 确认我的电子邮件地址
verify-email-note = { $hours ->
   *[other] 此链接将在 { $hours } 小时后失效。如果您没有创建账户，请忽略此邮件。
}

password-reset-subject = 重置您的密码
password-reset-body = 有人请求重置您 Keel 账户的密码。如果是您本人，请通过下面的链接设置新密码。
password-reset-action = 设置新密码
password-reset-note = { $minutes ->
   *[other] 此链接将在 { $minutes } 分钟后失效。如果不是您本人请求，请忽略此邮件，您的密码不会改变。
}

new-sign-in-subject = 您的账户有新的登录
new-sign-in-body = 您的账户在一台新设备上登录（{ $device }，{ $address }）。如果不是您本人，请立即修改密码。
new-sign-in-action = 查看您的会话

## Membership

invitation-subject = 邀请您加入 { $tenant }
invitation-body = { $inviter } 邀请您以 { $role } 身份加入 Keel 上的 { $tenant }。
invitation-action = 接受邀请
invitation-note = { $days ->
   *[other] 邀请将在 { $days } 天后失效。
}

member-added-subject = 您已加入 { $tenant }
member-added-body = 您现在是 { $tenant } 的成员，角色为 { $role }。
member-added-action = 打开 { $tenant }

member-removed-subject = 您已离开 { $tenant }
member-removed-body = 您不再是 { $tenant } 的成员。
member-removed-action = 打开 Keel

tenant-approved-subject = { $tenant } 已获批准
tenant-approved-body = { $tenant } 已获批准，可以开始使用。
tenant-approved-action = 打开 { $tenant }

tenant-suspended-subject = { $tenant } 已被暂停
tenant-suspended-body = { $tenant } 已被暂停：{ $reason }
tenant-suspended-action = 打开 Keel

## Work

task-assigned-subject = 分配给您的任务：{ $task }
task-assigned-body = 任务“{ $task }”已分配给您。
task-assigned-action = 打开任务

approval-requested-subject = 请求审批：{ $task }
approval-requested-body = 任务“{ $task }”已提交，等待审批。
approval-requested-action = 审阅任务

task-approved-subject = 任务已批准：{ $task }
task-approved-body = 您的任务“{ $task }”已获批准。
task-approved-action = 打开任务

task-rejected-subject = 任务被退回：{ $task }
task-rejected-body = 您的任务“{ $task }”已被退回修改。
task-rejected-action = 打开任务

task-overdue-subject = 任务已逾期：{ $task }
task-overdue-body = 任务“{ $task }”已超过截止日期。
task-overdue-action = 打开任务

task-escalated-subject = 审批已逾期：{ $task }
task-escalated-body = 任务“{ $task }”等待审批的时间已超过项目允许的时限。
task-escalated-action = 审阅任务

## Billing

invoice-finalized-subject = 新发票
invoice-finalized-body = 一张金额为 { $amount } 的新发票已生成。
invoice-finalized-action = 查看发票

payment-failed-subject = 付款失败
payment-failed-body = 我们无法收取金额为 { $amount } 的发票款项。请更新您的付款方式。
payment-failed-action = 查看发票

plan-changed-subject = 您的套餐已变更
plan-changed-body = 您的订阅现在使用新的套餐。
plan-changed-action = 查看订阅

## Marketplace

offer-received-subject = 新报价
offer-received-body = 您收到一份 { $quantity ->
   *[other] { $quantity } 件
}商品的报价，单价 { $price }。
offer-received-action = 查看报价

order-placed-subject = 新订单
order-placed-body = 已有一笔 { $quantity ->
   *[other] { $quantity } 件
}商品的订单，金额 { $amount }。
order-placed-action = 打开订单

order-fulfilled-subject = 订单已完成
order-fulfilled-body = 您的订单已完成交付。
order-fulfilled-action = 打开订单

dispute-opened-subject = 已发起争议
dispute-opened-body = 一笔订单被发起争议：{ $reason }
dispute-opened-action = 打开争议

dispute-resolved-subject = 争议已解决
dispute-resolved-body = 您订单上的争议已解决：{ $resolution }
dispute-resolved-action = 打开订单

## Digest

digest-subject = { $count ->
   *[other] 您的每日摘要：{ $count } 条通知
}
digest-body = { $count ->
   *[other] 以下是自上次摘要以来的 { $count } 条动态：
}
digest-action = 打开收件箱
