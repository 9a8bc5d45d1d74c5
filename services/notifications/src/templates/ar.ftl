# العربية. Plural forms follow CLDR: zero, one, two, few (3-10), many (11-99), other.

email-greeting = مرحبًا { $name }،
email-footer = تصلك هذه الرسالة بسبب حسابك على Keel. اختر الرسائل التي تصلك من إعدادات الإشعارات.

## Security

verify-email-subject = أكِّد عنوان بريدك الإلكتروني
verify-email-body = يُرجى تأكيد أن هذا عنوان بريدك الإلكتروني لإكمال إعداد حسابك على Keel.
verify-email-action = تأكيد عنوان بريدي الإلكتروني
verify-email-note = { $hours ->
    [zero] تنتهي صلاحية هذا الرابط الآن. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
    [one] تنتهي صلاحية هذا الرابط خلال ساعة واحدة. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
    [two] تنتهي صلاحية هذا الرابط خلال ساعتين. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
    [few] تنتهي صلاحية هذا الرابط خلال { $hours } ساعات. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
    [many] تنتهي صلاحية هذا الرابط خلال { $hours } ساعة. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
   *[other] تنتهي صلاحية هذا الرابط خلال { $hours } ساعة. إن لم تُنشئ حسابًا فتجاهل هذه الرسالة.
}

password-reset-subject = إعادة تعيين كلمة المرور
password-reset-body = طلب أحدهم إعادة تعيين كلمة مرور حسابك على Keel. إن كنت أنت، فاختر كلمة مرور جديدة من الرابط أدناه.
password-reset-action = اختيار كلمة مرور جديدة
password-reset-note = { $minutes ->
    [zero] تنتهي صلاحية هذا الرابط الآن. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
    [one] تنتهي صلاحية هذا الرابط خلال دقيقة واحدة. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
    [two] تنتهي صلاحية هذا الرابط خلال دقيقتين. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
    [few] تنتهي صلاحية هذا الرابط خلال { $minutes } دقائق. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
    [many] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
   *[other] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة. إن لم تطلبه فتجاهل هذه الرسالة: تبقى كلمة مرورك كما هي.
}

new-sign-in-subject = تسجيل دخول جديد إلى حسابك
new-sign-in-body = سُجِّل الدخول إلى حسابك من جهاز جديد ({ $device }، { $address }). إن لم تكن أنت، فغيِّر كلمة مرورك الآن.
new-sign-in-action = مراجعة جلساتك

## Membership

invitation-subject = أنت مدعو للانضمام إلى { $tenant }
invitation-body = دعاك { $inviter } للانضمام إلى { $tenant } على Keel بدور { $role }.
invitation-action = قبول الدعوة
invitation-note = { $days ->
    [zero] تنتهي صلاحية الدعوة اليوم.
    [one] تنتهي صلاحية الدعوة خلال يوم واحد.
    [two] تنتهي صلاحية الدعوة خلال يومين.
    [few] تنتهي صلاحية الدعوة خلال { $days } أيام.
    [many] تنتهي صلاحية الدعوة خلال { $days } يومًا.
   *[other] تنتهي صلاحية الدعوة خلال { $days } يوم.
}

member-added-subject = انضممت إلى { $tenant }
member-added-body = أصبحت الآن عضوًا في { $tenant } بدور { $role }.
member-added-action = فتح { $tenant }

member-removed-subject = غادرت { $tenant }
member-removed-body = لم تعد عضوًا في { $tenant }.
member-removed-action = فتح Keel

tenant-approved-subject = تمت الموافقة على { $tenant }
tenant-approved-body = تمت الموافقة على { $tenant } وأصبح جاهزًا للاستخدام.
tenant-approved-action = فتح { $tenant }

tenant-suspended-subject = تم تعليق { $tenant }
tenant-suspended-body = تم تعليق { $tenant }: { $reason }
tenant-suspended-action = فتح Keel

## Work

task-assigned-subject = مهمة مُسندة إليك: { $task }
task-assigned-body = أُسندت إليك المهمة «{ $task }».
task-assigned-action = فتح المهمة

approval-requested-subject = طلب موافقة: { $task }
approval-requested-body = قُدِّمت المهمة «{ $task }» وهي بانتظار الموافقة.
approval-requested-action = مراجعة المهمة

task-approved-subject = تمت الموافقة على المهمة: { $task }
task-approved-body = تمت الموافقة على مهمتك «{ $task }».
task-approved-action = فتح المهمة

task-rejected-subject = أُعيدت المهمة: { $task }
task-rejected-body = أُعيدت مهمتك «{ $task }» لإعادة العمل عليها.
task-rejected-action = فتح المهمة

task-overdue-subject = مهمة متأخرة: { $task }
task-overdue-body = تجاوزت المهمة «{ $task }» تاريخ استحقاقها.
task-overdue-action = فتح المهمة

task-escalated-subject = موافقة متأخرة: { $task }
task-escalated-body = انتظرت المهمة «{ $task }» الموافقة أطول مما يسمح به المشروع.
task-escalated-action = مراجعة المهمة

## Billing

invoice-finalized-subject = فاتورة جديدة
invoice-finalized-body = فاتورة جديدة بمبلغ { $amount } جاهزة.
invoice-finalized-action = عرض الفاتورة

payment-failed-subject = فشل الدفع
payment-failed-body = تعذّر تحصيل دفعة فاتورة بمبلغ { $amount }. يُرجى تحديث وسيلة الدفع.
payment-failed-action = عرض الفاتورة

plan-changed-subject = تغيّرت خطتك
plan-changed-body = يستخدم اشتراكك الآن خطة جديدة.
plan-changed-action = عرض الاشتراك

## Marketplace

offer-received-subject = عرض جديد
offer-received-body = تلقيت عرضًا على { $quantity ->
    [zero] لا شيء
    [one] قطعة واحدة
    [two] قطعتين
    [few] { $quantity } قطع
    [many] { $quantity } قطعة
   *[other] { $quantity } قطعة
} بسعر { $price } للقطعة.
offer-received-action = مراجعة العرض

order-placed-subject = طلب جديد
order-placed-body = تم تقديم طلب { $quantity ->
    [zero] بلا قطع
    [one] لقطعة واحدة
    [two] لقطعتين
    [few] لـ { $quantity } قطع
    [many] لـ { $quantity } قطعة
   *[other] لـ { $quantity } قطعة
} بمبلغ { $amount }.
order-placed-action = فتح الطلب

order-fulfilled-subject = تم تنفيذ الطلب
order-fulfilled-body = تم تنفيذ طلبك.
order-fulfilled-action = فتح الطلب

dispute-opened-subject = فُتح نزاع
dispute-opened-body = فُتح نزاع على طلب: { $reason }
dispute-opened-action = فتح النزاع

dispute-resolved-subject = حُلَّ النزاع
dispute-resolved-body = حُلَّ النزاع على طلبك: { $resolution }
dispute-resolved-action = فتح الطلب

## Digest

digest-subject = { $count ->
    [zero] ملخصك اليومي: لا إشعارات
    [one] ملخصك اليومي: إشعار واحد
    [two] ملخصك اليومي: إشعاران
    [few] ملخصك اليومي: { $count } إشعارات
    [many] ملخصك اليومي: { $count } إشعارًا
   *[other] ملخصك اليومي: { $count } إشعار
}
digest-body = { $count ->
    [one] إليك ما حدث منذ ملخصك الأخير:
    [two] إليك الأمران اللذان حدثا منذ ملخصك الأخير:
   *[other] إليك ما حدث منذ ملخصك الأخير ({ $count }):
}
digest-action = فتح صندوق الوارد
