//! Which events concern whom, and what to tell them: every consumed event type that is worth a
//! message becomes an [`Intent`]; every other event is `None`. The projections (`subjects`) that
//! later events depend on are written here too, in the event's transaction.
//!
//! Mapped from what a context publishes today where the name has no event of its own:
//! "payment failed" is `billing.invoice.uncollectible` (dunning gave up), "plan changed" is
//! `billing.subscription.changed` when the price changed, "approval requested" is
//! `delivery.task.submitted`, "offer received" is `marketplace.offer.created`.

use chrono::{DateTime, Utc};
use keel_kernel::consumer::{Event, EventTx};
use keel_kernel::money::Currency;
use keel_kernel::{Error, UserId};
use keel_proto::billing::v1 as billing;
use keel_proto::delivery::v1 as delivery;
use keel_proto::identity::v1 as identity;
use keel_proto::marketplace::v1 as marketplace;
use keel_proto::tenancy::v1 as tenancy;
use serde::{Deserialize, Serialize};

use crate::domain::Category;
use crate::render::Content;
use crate::repo;

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum To {
    /// A user: address, name and language from identity at send time.
    User(UserId),
    /// The tenant's owner (its creator), looked up in tenancy.
    TenantOwner,
    /// Someone who may have no account yet (an invitee): the address the owning service
    /// confirms when it issues the message's token.
    Address(String),
}

/// The link of a message. Links holding a secret are made at send time, with a token the owning
/// service issues then; only the id of what it is for is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    None,
    /// A path of the web app.
    Path(String),
    VerifyEmail {
        verification_id: String,
    },
    Invitation {
        invitation_id: String,
    },
    PasswordReset {
        reset_id: String,
    },
}

/// What an event should tell whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub category: Category,
    pub content: Content,
    pub recipients: Vec<To>,
    pub link: Link,
    /// Whether the message belongs in the recipients' inbox in the event's tenant (not for an
    /// invitee who is no member yet, nor for someone who just left).
    pub inbox: bool,
    /// The `Accept-Language` of the request that caused the event, when it carried one.
    pub accept_language: String,
}

impl Intent {
    fn new(category: Category, content: Content, recipients: Vec<To>, link: Link) -> Intent {
        Intent {
            category,
            content,
            recipients,
            link,
            inbox: true,
            accept_language: String::new(),
        }
    }

    fn email_only(mut self) -> Intent {
        self.inbox = false;
        self
    }

    /// The language of the request that caused the event (`Accept-Language`'s first choice).
    fn requested_in(mut self, locale: String) -> Intent {
        self.accept_language = locale;
        self
    }
}

fn user(value: &str) -> Option<UserId> {
    UserId::parse_field("user_id", value).ok()
}

fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, Error> {
    uuid::Uuid::try_parse(value).map_err(|_| Error::invalid(field, "is not a UUID"))
}

fn amount(minor: i64, currency: &str) -> String {
    match Currency::parse("currency", currency) {
        Ok(currency) => currency.format(minor),
        Err(_) => format!("{minor} {currency}"),
    }
}

/// Whole units of `unit` from `now` until `until`, at least 1 (for "expires in N hours").
pub fn units_until(until: DateTime<Utc>, now: DateTime<Utc>, unit: chrono::Duration) -> i64 {
    let left = (until - now).num_seconds().max(0);
    let unit = unit.num_seconds().max(1);
    ((left + unit - 1) / unit).max(1)
}

fn task_path(tenant: &str, project: &str, task: &str) -> Link {
    Link::Path(format!("/tenants/{tenant}/projects/{project}/tasks/{task}"))
}

/// The intent of `event`, after updating the projections it feeds.
pub async fn interpret(tx: &mut EventTx, event: &Event) -> Result<Option<Intent>, Error> {
    let envelope = &event.envelope;
    let tenant = envelope.tenant_id.clone();
    let intent = match envelope.event_type.as_str() {
        // -- identity --
        "identity.user.verification_requested" => {
            let requested: identity::UserVerificationRequested = event.payload()?;
            let Some(user_id) = user(&requested.user_id) else {
                return Err(Error::invalid("user_id", "is not a user id"));
            };
            Some(
                Intent::new(
                    Category::Security,
                    Content::new("verify-email"),
                    vec![To::User(user_id)],
                    Link::VerifyEmail {
                        verification_id: requested.verification_id,
                    },
                )
                .email_only()
                .requested_in(requested.request_locale),
            )
        }
        "identity.user.password_reset_requested" => {
            let requested: identity::PasswordResetRequested = event.payload()?;
            let Some(user_id) = user(&requested.user_id) else {
                return Err(Error::invalid("user_id", "is not a user id"));
            };
            Some(
                Intent::new(
                    Category::Security,
                    Content::new("password-reset"),
                    vec![To::User(user_id)],
                    Link::PasswordReset {
                        reset_id: requested.reset_id,
                    },
                )
                .email_only()
                .requested_in(requested.request_locale),
            )
        }
        "identity.session.new_device_sign_in" => {
            let signed_in: identity::NewDeviceSignIn = event.payload()?;
            let Some(user_id) = user(&signed_in.user_id) else {
                return Err(Error::invalid("user_id", "is not a user id"));
            };
            Some(
                Intent::new(
                    Category::Security,
                    Content::new("new-sign-in")
                        .arg("device", signed_in.user_agent.as_str())
                        .arg("address", signed_in.ip_address.as_str()),
                    vec![To::User(user_id)],
                    Link::Path("/account/sessions".to_owned()),
                )
                .email_only()
                .requested_in(signed_in.request_locale),
            )
        }
        // -- tenancy --
        "tenancy.tenant.created" => {
            let created: tenancy::TenantCreated = event.payload()?;
            repo::tenants::created(tx.tenant()?, &created.name, user(&created.created_by)).await?;
            None
        }
        "tenancy.tenant.updated" => {
            let updated: tenancy::TenantUpdated = event.payload()?;
            repo::tenants::updated(tx.tenant()?, &updated.name, &updated.default_locale).await?;
            None
        }
        "tenancy.invitation.created" => {
            let created: tenancy::InvitationCreated = event.payload()?;
            let mut content = Content::new("invitation").arg("role", created.role.as_str());
            content = content.arg("inviter_id", created.invited_by.as_str());
            Some(
                Intent::new(
                    Category::Membership,
                    content,
                    vec![To::Address(created.email)],
                    Link::Invitation {
                        invitation_id: created.invitation_id,
                    },
                )
                .email_only()
                // The invitee may have no account, so no language of their own: the tenant's
                // default when the invitation was made, else the inviter's request's.
                .requested_in(if created.tenant_default_locale.is_empty() {
                    created.locale
                } else {
                    created.tenant_default_locale
                }),
            )
        }
        "tenancy.member.added" => {
            let added: tenancy::MemberAdded = event.payload()?;
            // The creator joins their own new tenant: no news (its approval is).
            let owner = repo::tenants::get(tx.tenant()?).await?.owner;
            user(&added.user_id).filter(|u| Some(*u) != owner).map(|u| {
                Intent::new(
                    Category::Membership,
                    Content::new("member-added").arg("role", added.role.as_str()),
                    vec![To::User(u)],
                    Link::Path(format!("/tenants/{tenant}")),
                )
            })
        }
        "tenancy.member.removed" => {
            let removed: tenancy::MemberRemoved = event.payload()?;
            user(&removed.user_id).map(|u| {
                Intent::new(
                    Category::Membership,
                    Content::new("member-removed"),
                    vec![To::User(u)],
                    Link::Path("/".to_owned()),
                )
                .email_only()
            })
        }
        "tenancy.tenant.approved" => Some(Intent::new(
            Category::Membership,
            Content::new("tenant-approved"),
            vec![To::TenantOwner],
            Link::Path(format!("/tenants/{tenant}")),
        )),
        "tenancy.tenant.suspended" => {
            let suspended: tenancy::TenantSuspended = event.payload()?;
            Some(
                Intent::new(
                    Category::Membership,
                    Content::new("tenant-suspended").arg("reason", suspended.reason.as_str()),
                    vec![To::TenantOwner],
                    Link::Path("/".to_owned()),
                )
                .email_only(),
            )
        }
        // -- delivery --
        "delivery.task.created" => {
            let created: delivery::TaskCreated = event.payload()?;
            let tx = tx.tenant()?;
            let id = uuid("task_id", &created.task_id)?;
            let assignee = user(&created.assignee_id);
            repo::subjects::task_created(
                tx,
                id,
                &created.title,
                user(&created.created_by),
                assignee,
            )
            .await?;
            let creator = user(&created.created_by);
            match assignee {
                // Assigning to oneself is no news.
                Some(assignee) if Some(assignee) != creator => Some(Intent::new(
                    Category::Work,
                    Content::new("task-assigned").arg("task", created.title.as_str()),
                    vec![To::User(assignee)],
                    task_path(&tenant, &created.project_id, &created.task_id),
                )),
                _ => None,
            }
        }
        "delivery.task.assigned" => {
            let assigned: delivery::TaskAssigned = event.payload()?;
            let tx = tx.tenant()?;
            let id = uuid("task_id", &assigned.task_id)?;
            let assignee = user(&assigned.assignee_id);
            repo::subjects::task_assignee(tx, id, assignee).await?;
            let title = repo::subjects::get(tx, id).await?.unwrap_or_default().title;
            let actor = envelope.actor.as_ref().map(|a| a.id.as_str()).unwrap_or("");
            match assignee {
                Some(assignee) if assignee.to_string() != actor => Some(Intent::new(
                    Category::Work,
                    Content::new("task-assigned").arg("task", title),
                    vec![To::User(assignee)],
                    task_path(&tenant, &assigned.project_id, &assigned.task_id),
                )),
                _ => None,
            }
        }
        "delivery.task.unassigned" => {
            let unassigned: delivery::TaskUnassigned = event.payload()?;
            let id = uuid("task_id", &unassigned.task_id)?;
            repo::subjects::task_assignee(tx.tenant()?, id, None).await?;
            None
        }
        "delivery.task.submitted" => {
            let submitted: delivery::TaskSubmitted = event.payload()?;
            let id = uuid("task_id", &submitted.task_id)?;
            let task = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            task.creator
                .filter(|creator| Some(*creator) != user(&submitted.assignee_id))
                .map(|creator| {
                    Intent::new(
                        Category::Work,
                        Content::new("approval-requested").arg("task", task.title.as_str()),
                        vec![To::User(creator)],
                        task_path(&tenant, &submitted.project_id, &submitted.task_id),
                    )
                })
        }
        "delivery.task.approved" | "delivery.task.rejected" | "delivery.task.overdue" => {
            let (task_id, project_id, kind) = match envelope.event_type.as_str() {
                "delivery.task.approved" => {
                    let approved: delivery::TaskApproved = event.payload()?;
                    (approved.task_id, approved.project_id, "task-approved")
                }
                "delivery.task.rejected" => {
                    let rejected: delivery::TaskRejected = event.payload()?;
                    (rejected.task_id, rejected.project_id, "task-rejected")
                }
                _ => {
                    let overdue: delivery::TaskOverdue = event.payload()?;
                    (overdue.task_id, overdue.project_id, "task-overdue")
                }
            };
            let id = uuid("task_id", &task_id)?;
            let task = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            task.assignee.map(|assignee| {
                Intent::new(
                    Category::Work,
                    Content::new(kind).arg("task", task.title.as_str()),
                    vec![To::User(assignee)],
                    task_path(&tenant, &project_id, &task_id),
                )
            })
        }
        "delivery.task.escalated" => {
            let escalated: delivery::TaskEscalated = event.payload()?;
            let id = uuid("task_id", &escalated.task_id)?;
            let task = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            task.creator.map(|creator| {
                Intent::new(
                    Category::Work,
                    Content::new("task-escalated").arg("task", task.title.as_str()),
                    vec![To::User(creator)],
                    task_path(&tenant, &escalated.project_id, &escalated.task_id),
                )
            })
        }
        // -- billing --
        "billing.invoice.finalized" | "billing.invoice.uncollectible" => {
            let (invoice, kind) = if envelope.event_type == "billing.invoice.finalized" {
                let finalized: billing::InvoiceFinalized = event.payload()?;
                (finalized.invoice, "invoice-finalized")
            } else {
                let failed: billing::InvoiceUncollectible = event.payload()?;
                (failed.invoice, "payment-failed")
            };
            invoice.map(|invoice| {
                Intent::new(
                    Category::Billing,
                    Content::new(kind).arg("amount", amount(invoice.total, &invoice.currency)),
                    vec![To::TenantOwner],
                    Link::Path(format!("/tenants/{tenant}/invoices/{}", invoice.id)),
                )
            })
        }
        "billing.subscription.changed" => {
            let changed: billing::SubscriptionChanged = event.payload()?;
            changed
                .subscription
                .filter(|s| s.price_id != changed.previous_price_id)
                .map(|_| {
                    Intent::new(
                        Category::Billing,
                        Content::new("plan-changed"),
                        vec![To::TenantOwner],
                        Link::Path(format!("/tenants/{tenant}/subscription")),
                    )
                })
        }
        // -- marketplace --
        "marketplace.offer.created" => {
            let offer: marketplace::OfferCreated = event.payload()?;
            // The party who did not propose it receives it.
            let to = if offer.proposed_by == offer.seller_id {
                user(&offer.buyer_id)
            } else {
                user(&offer.seller_id)
            };
            to.map(|to| {
                Intent::new(
                    Category::Marketplace,
                    Content::new("offer-received")
                        .arg("quantity", offer.quantity)
                        .arg("price", amount(offer.unit_price, &offer.currency)),
                    vec![To::User(to)],
                    Link::Path(format!("/tenants/{tenant}/offers/{}", offer.offer_id)),
                )
            })
        }
        "marketplace.order.placed" => {
            let order: marketplace::OrderPlaced = event.payload()?;
            let id = uuid("order_id", &order.order_id)?;
            let (buyer, seller) = (user(&order.buyer_id), user(&order.seller_id));
            repo::subjects::order_placed(tx.tenant()?, id, buyer, seller).await?;
            seller.map(|seller| {
                Intent::new(
                    Category::Marketplace,
                    Content::new("order-placed")
                        .arg("quantity", order.quantity)
                        .arg("amount", amount(order.total_amount, &order.currency)),
                    vec![To::User(seller)],
                    Link::Path(format!("/tenants/{tenant}/orders/{}", order.order_id)),
                )
            })
        }
        "marketplace.order.fulfilled" => {
            let fulfilled: marketplace::OrderFulfilled = event.payload()?;
            let id = uuid("order_id", &fulfilled.order_id)?;
            let order = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            order.buyer.map(|buyer| {
                Intent::new(
                    Category::Marketplace,
                    Content::new("order-fulfilled"),
                    vec![To::User(buyer)],
                    Link::Path(format!("/tenants/{tenant}/orders/{}", fulfilled.order_id)),
                )
            })
        }
        "marketplace.dispute.opened" => {
            let opened: marketplace::DisputeOpened = event.payload()?;
            let id = uuid("order_id", &opened.order_id)?;
            let order = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            let opener = user(&opened.opened_by);
            let parties: Vec<To> = [order.buyer, order.seller]
                .into_iter()
                .flatten()
                .filter(|party| Some(*party) != opener)
                .map(To::User)
                .collect();
            (!parties.is_empty()).then(|| {
                Intent::new(
                    Category::Marketplace,
                    Content::new("dispute-opened").arg("reason", opened.reason.as_str()),
                    parties,
                    Link::Path(format!("/tenants/{tenant}/disputes/{}", opened.dispute_id)),
                )
            })
        }
        "marketplace.dispute.resolved" => {
            let resolved: marketplace::DisputeResolved = event.payload()?;
            let id = uuid("order_id", &resolved.order_id)?;
            let order = repo::subjects::get(tx.tenant()?, id)
                .await?
                .unwrap_or_default();
            let parties: Vec<To> = [order.buyer, order.seller]
                .into_iter()
                .flatten()
                .map(To::User)
                .collect();
            (!parties.is_empty()).then(|| {
                Intent::new(
                    Category::Marketplace,
                    Content::new("dispute-resolved")
                        .arg("resolution", resolved.resolution.as_str()),
                    parties,
                    Link::Path(format!("/tenants/{tenant}/orders/{}", resolved.order_id)),
                )
            })
        }
        _ => None,
    };
    Ok(intent)
}
