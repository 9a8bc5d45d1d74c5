//! `keelctl dead-letters`: the admin ports' `/dead-letters` and `/dead-letters/{id}/replay`.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin_http::AdminClient;
use crate::cli::{DeadLettersCommand, Global};
use crate::error::{Failure, Outcome};
use crate::output::{Report, Table, clip};

/// A dead letter as the kernel's admin port lists it.
#[derive(Debug, Deserialize)]
struct DeadLetter {
    id: i64,
    consumer: String,
    event_id: String,
    subject: String,
    error: String,
    deliveries: i32,
    failed_at: String,
    replayed_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    dead_letters: Vec<DeadLetter>,
}

pub async fn run(global: &Global, command: DeadLettersCommand) -> Outcome<Report> {
    let token = global.token()?;
    match command {
        DeadLettersCommand::List {
            service,
            include_replayed,
        } => {
            let targets = global.admin_targets(service.as_deref())?;
            let single = targets.len() == 1;
            let mut rows: Vec<(String, DeadLetter)> = Vec::new();
            let mut unreachable: Vec<String> = Vec::new();
            for (service, url) in targets {
                let admin = AdminClient::new(&service, &url, Some(token))?;
                match list(&admin, include_replayed).await {
                    Ok(found) => rows.extend(found.into_iter().map(|d| (service.clone(), d))),
                    // Listing every service: one that is down must not hide the others.
                    Err(Failure::Unreachable(why)) if !single => {
                        eprintln!("keelctl: warning: {why}");
                        unreachable.push(service);
                    }
                    Err(other) => return Err(other),
                }
            }
            let mut table = Table::new([
                "SERVICE",
                "ID",
                "CONSUMER",
                "SUBJECT",
                "DELIVERIES",
                "FAILED AT",
                "REPLAYED",
                "ERROR",
            ])
            .when_empty("no dead letters");
            for (service, d) in &rows {
                table.row([
                    service.clone(),
                    d.id.to_string(),
                    d.consumer.clone(),
                    d.subject.clone(),
                    d.deliveries.to_string(),
                    d.failed_at.clone(),
                    d.replayed_at.clone().unwrap_or_else(|| "-".into()),
                    clip(&d.error, 60),
                ]);
            }
            if !unreachable.is_empty() {
                table.note(format!("not reached: {}", unreachable.join(", ")));
            }
            let listed: Vec<Value> = rows
                .iter()
                .map(|(service, d)| {
                    json!({
                        "service": service,
                        "id": d.id,
                        "consumer": d.consumer,
                        "eventId": d.event_id,
                        "subject": d.subject,
                        "error": d.error,
                        "deliveries": d.deliveries,
                        "failedAt": d.failed_at,
                        "replayedAt": d.replayed_at,
                    })
                })
                .collect();
            Ok(Report {
                table,
                json: json!({ "deadLetters": listed, "unreachable": unreachable }),
                unreachable,
            })
        }
        DeadLettersCommand::Replay { service, ids, all } => {
            let (service, url) = global
                .admin_targets(Some(&service))?
                .into_iter()
                .next()
                .ok_or_else(|| Failure::failed("no such service"))?;
            let admin = AdminClient::new(&service, &url, Some(token))?;
            let ids = if all {
                list(&admin, false)
                    .await?
                    .into_iter()
                    .map(|d| d.id)
                    .collect()
            } else {
                ids
            };
            for id in &ids {
                let _: Value = admin
                    .post_json(&format!("/dead-letters/{id}/replay"))
                    .await?;
            }
            let table = Table::lines([match ids.len() {
                0 => format!("{service}: nothing to replay"),
                n => format!(
                    "{service}: replay requested for {n} dead letter(s): {}; its consumer runs them shortly (see `keelctl dead-letters list -s {service} --include-replayed`)",
                    ids.iter()
                        .map(i64::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }]);
            Ok(Report {
                table,
                json: json!({ "service": service, "replayRequested": ids }),
                unreachable: Vec::new(),
            })
        }
    }
}

async fn list(admin: &AdminClient, include_replayed: bool) -> Outcome<Vec<DeadLetter>> {
    let listing: Listing = admin
        .get_json(&format!(
            "/dead-letters?include_replayed={include_replayed}"
        ))
        .await?;
    Ok(listing.dead_letters)
}
