# 한국어. Korean has one plural form (CLDR: other).

email-greeting = { $name }님, 안녕하세요.
email-footer = Keel 계정 때문에 이 이메일을 받으셨습니다. 알림 설정에서 받을 메시지를 선택할 수 있습니다.

## Security

verify-email-subject = 이메일 주소를 확인해 주세요
verify-email-body = Keel 계정 설정을 마치려면 이 이메일 주소가 본인의 것인지 확인해 주세요.
verify-email-action = 이메일 주소 확인
verify-email-note = { $hours ->
   *[other] 이 링크는 { $hours }시간 후에 만료됩니다. 계정을 만들지 않으셨다면 이 이메일을 무시하세요.
}

password-reset-subject = 비밀번호 재설정
password-reset-body = 누군가 Keel 계정의 비밀번호 재설정을 요청했습니다. 본인이 요청하셨다면 아래 링크에서 새 비밀번호를 설정하세요.
password-reset-action = 새 비밀번호 설정
password-reset-note = { $minutes ->
   *[other] 이 링크는 { $minutes }분 후에 만료됩니다. 요청하지 않으셨다면 이 이메일을 무시하세요. 비밀번호는 바뀌지 않습니다.
}

new-sign-in-subject = 계정에 새 로그인이 있습니다
new-sign-in-body = 새 기기에서 계정에 로그인했습니다 ({ $device }, { $address }). 본인이 아니라면 지금 비밀번호를 변경하세요.
new-sign-in-action = 세션 확인

## Membership

invitation-subject = { $tenant }에 초대되었습니다
invitation-body = { $inviter }님이 Keel의 { $tenant }에 { $role } 역할로 초대했습니다.
invitation-action = 초대 수락
invitation-note = { $days ->
   *[other] 초대는 { $days }일 후에 만료됩니다.
}

member-added-subject = { $tenant }에 가입했습니다
member-added-body = 이제 { $role } 역할로 { $tenant }의 구성원입니다.
member-added-action = { $tenant } 열기

member-removed-subject = { $tenant }에서 나갔습니다
member-removed-body = 더 이상 { $tenant }의 구성원이 아닙니다.
member-removed-action = Keel 열기

tenant-approved-subject = { $tenant }이(가) 승인되었습니다
tenant-approved-body = { $tenant }이(가) 승인되어 사용할 준비가 되었습니다.
tenant-approved-action = { $tenant } 열기

tenant-suspended-subject = { $tenant }이(가) 정지되었습니다
tenant-suspended-body = { $tenant }이(가) 정지되었습니다: { $reason }
tenant-suspended-action = Keel 열기

## Work

task-assigned-subject = 할당된 작업: { $task }
task-assigned-body = “{ $task }” 작업이 할당되었습니다.
task-assigned-action = 작업 열기

approval-requested-subject = 승인 요청: { $task }
approval-requested-body = “{ $task }” 작업이 제출되어 승인을 기다리고 있습니다.
approval-requested-action = 작업 검토

task-approved-subject = 작업 승인됨: { $task }
task-approved-body = “{ $task }” 작업이 승인되었습니다.
task-approved-action = 작업 열기

task-rejected-subject = 작업 반려됨: { $task }
task-rejected-body = “{ $task }” 작업이 재작업을 위해 반려되었습니다.
task-rejected-action = 작업 열기

task-overdue-subject = 기한이 지난 작업: { $task }
task-overdue-body = “{ $task }” 작업의 마감일이 지났습니다.
task-overdue-action = 작업 열기

task-escalated-subject = 승인 지연: { $task }
task-escalated-body = “{ $task }” 작업이 프로젝트에서 허용하는 시간보다 오래 승인을 기다렸습니다.
task-escalated-action = 작업 검토

## Billing

invoice-finalized-subject = 새 청구서
invoice-finalized-body = { $amount } 금액의 새 청구서가 준비되었습니다.
invoice-finalized-action = 청구서 보기

payment-failed-subject = 결제 실패
payment-failed-body = { $amount } 금액의 청구서 결제를 받지 못했습니다. 결제 수단을 업데이트해 주세요.
payment-failed-action = 청구서 보기

plan-changed-subject = 요금제가 변경되었습니다
plan-changed-body = 구독에 새 요금제가 적용되었습니다.
plan-changed-action = 구독 보기

## Marketplace

offer-received-subject = 새 제안
offer-received-body = 상품 { $quantity ->
   *[other] { $quantity }개
}에 대해 개당 { $price }의 제안을 받았습니다.
offer-received-action = 제안 검토

order-placed-subject = 새 주문
order-placed-body = 상품 { $quantity ->
   *[other] { $quantity }개
}의 주문이 { $amount }에 접수되었습니다.
order-placed-action = 주문 열기

order-fulfilled-subject = 주문 처리 완료
order-fulfilled-body = 주문이 처리되었습니다.
order-fulfilled-action = 주문 열기

dispute-opened-subject = 분쟁 접수
dispute-opened-body = 주문에 분쟁이 접수되었습니다: { $reason }
dispute-opened-action = 분쟁 열기

dispute-resolved-subject = 분쟁 해결
dispute-resolved-body = 주문의 분쟁이 해결되었습니다: { $resolution }
dispute-resolved-action = 주문 열기

## Digest

digest-subject = { $count ->
   *[other] 일일 요약: 알림 { $count }개
}
digest-body = { $count ->
   *[other] 지난 요약 이후 { $count }건의 소식이 있습니다:
}
digest-action = 받은 편지함 열기
