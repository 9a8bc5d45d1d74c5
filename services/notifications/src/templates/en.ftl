# English: the reference. Every message here exists in ar.ftl, zh.ftl and ko.ftl (a test checks).
# A kind of message is a group: <kind>-subject (also the inbox title), <kind>-body, and
# optionally <kind>-action (the link's label) and <kind>-note.

email-greeting = Hello { $name },
email-footer = You receive this email because of your account on Keel. Choose which messages you get in your notification preferences.

## Security (cannot be turned off)

verify-email-subject = Confirm your email address
verify-email-body = Please confirm that this is your email address to finish setting up your Keel account.
verify-email-action = Confirm my email address
verify-email-note = { $hours ->
    [one] This link expires in one hour. If you did not create an account, ignore this email.
   *[other] This link expires in { $hours } hours. If you did not create an account, ignore this email.
}

password-reset-subject = Reset your password
password-reset-body = Someone asked to reset the password of your Keel account. If it was you, choose a new password with the link below.
password-reset-action = Choose a new password
password-reset-note = { $minutes ->
    [one] This link expires in one minute. If you did not ask for it, ignore this email: your password stays the same.
   *[other] This link expires in { $minutes } minutes. If you did not ask for it, ignore this email: your password stays the same.
}

new-sign-in-subject = New sign-in to your account
new-sign-in-body = Your account was signed in to from a new device ({ $device }, { $address }). If this was not you, change your password now.
new-sign-in-action = Review your sessions

## Membership

invitation-subject = You are invited to join { $tenant }
invitation-body = { $inviter } invited you to join { $tenant } on Keel as { $role }.
invitation-action = Accept the invitation
invitation-note = { $days ->
    [one] The invitation expires in one day.
   *[other] The invitation expires in { $days } days.
}

member-added-subject = You joined { $tenant }
member-added-body = You are now a member of { $tenant } with the role { $role }.
member-added-action = Open { $tenant }

member-removed-subject = You left { $tenant }
member-removed-body = You are no longer a member of { $tenant }.
member-removed-action = Open Keel

tenant-approved-subject = { $tenant } is approved
tenant-approved-body = { $tenant } was approved and is ready to use.
tenant-approved-action = Open { $tenant }

tenant-suspended-subject = { $tenant } is suspended
tenant-suspended-body = { $tenant } was suspended: { $reason }
tenant-suspended-action = Open Keel

## Work (delivery)

task-assigned-subject = Task assigned to you: { $task }
task-assigned-body = The task “{ $task }” was assigned to you.
task-assigned-action = Open the task

approval-requested-subject = Approval requested: { $task }
approval-requested-body = The task “{ $task }” was submitted and waits for an approval.
approval-requested-action = Review the task

task-approved-subject = Task approved: { $task }
task-approved-body = Your task “{ $task }” was approved.
task-approved-action = Open the task

task-rejected-subject = Task sent back: { $task }
task-rejected-body = Your task “{ $task }” was sent back for rework.
task-rejected-action = Open the task

task-overdue-subject = Task overdue: { $task }
task-overdue-body = The task “{ $task }” is past its due date.
task-overdue-action = Open the task

task-escalated-subject = Approval overdue: { $task }
task-escalated-body = The task “{ $task }” has waited for an approval longer than the project allows.
task-escalated-action = Review the task

## Billing

invoice-finalized-subject = New invoice
invoice-finalized-body = A new invoice for { $amount } is ready.
invoice-finalized-action = View the invoice

payment-failed-subject = Payment failed
payment-failed-body = We could not collect the payment of an invoice for { $amount }. Please update your payment method.
payment-failed-action = View the invoice

plan-changed-subject = Your plan changed
plan-changed-body = Your subscription now uses a new plan.
plan-changed-action = View the subscription

## Marketplace

offer-received-subject = New offer
offer-received-body = You received an offer for { $quantity ->
    [one] one item
   *[other] { $quantity } items
} at { $price } each.
offer-received-action = Review the offer

order-placed-subject = New order
order-placed-body = An order of { $quantity ->
    [one] one item
   *[other] { $quantity } items
} was placed, for { $amount }.
order-placed-action = Open the order

order-fulfilled-subject = Order fulfilled
order-fulfilled-body = Your order was fulfilled.
order-fulfilled-action = Open the order

dispute-opened-subject = Dispute opened
dispute-opened-body = A dispute was opened on an order: { $reason }
dispute-opened-action = Open the dispute

dispute-resolved-subject = Dispute resolved
dispute-resolved-body = The dispute on your order was resolved: { $resolution }
dispute-resolved-action = Open the order

## Digest

digest-subject = { $count ->
    [one] Your daily summary: 1 notification
   *[other] Your daily summary: { $count } notifications
}
digest-body = { $count ->
    [one] Here is what happened since your last summary:
   *[other] Here are the { $count } things that happened since your last summary:
}
digest-action = Open your inbox
