//! `keelctl outbox status` (the admin port's `/outbox`) and `keelctl lag` (each service's
//! `/metrics`: `keel_consumer_lag` and `keel_dead_letters` by consumer).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::admin_http::AdminClient;
use crate::cli::{Global, LagArgs, OutboxCommand};
use crate::error::{Failure, Outcome};
use crate::output::{Report, Table};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct OutboxStatus {
    service: String,
    backlog: i64,
    oldest_age_seconds: Option<f64>,
    retrying: i64,
}

pub async fn outbox(global: &Global, command: OutboxCommand) -> Outcome<Report> {
    let OutboxCommand::Status { service } = command;
    let token = global.token()?;
    let targets = global.admin_targets(service.as_deref())?;
    let single = targets.len() == 1;
    let mut table = Table::new(["SERVICE", "BACKLOG", "OLDEST", "RETRYING"]);
    let mut rows: Vec<Value> = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    for (service, url) in targets {
        let admin = AdminClient::new(&service, &url, Some(token))?;
        match admin.get_json::<OutboxStatus>("/outbox").await {
            Ok(status) => {
                table.row([
                    status.service.clone(),
                    status.backlog.to_string(),
                    status
                        .oldest_age_seconds
                        .map(age)
                        .unwrap_or_else(|| "-".into()),
                    status.retrying.to_string(),
                ]);
                rows.push(json!({
                    "service": status.service,
                    "backlog": status.backlog,
                    "oldestAgeSeconds": status.oldest_age_seconds,
                    "retrying": status.retrying,
                }));
            }
            Err(Failure::Unreachable(why)) if !single => {
                eprintln!("keelctl: warning: {why}");
                unreachable.push(service);
            }
            Err(other) => return Err(other),
        }
    }
    if !unreachable.is_empty() {
        table.note(format!("not reached: {}", unreachable.join(", ")));
    }
    Ok(Report {
        table,
        json: json!({ "outbox": rows, "unreachable": unreachable }),
        unreachable,
    })
}

pub async fn lag(global: &Global, args: LagArgs) -> Outcome<Report> {
    let targets = global.admin_targets(args.service.as_deref())?;
    let single = targets.len() == 1;
    let mut table =
        Table::new(["SERVICE", "CONSUMER", "LAG", "DEAD LETTERS"]).when_empty("no consumers");
    let mut rows: Vec<Value> = Vec::new();
    let mut unreachable: Vec<String> = Vec::new();
    for (service, url) in targets {
        // `/metrics` is open to scrapers; no token is sent.
        let admin = AdminClient::new(&service, &url, None)?;
        match admin.metrics().await {
            Ok(text) => {
                for consumer in consumers(&text) {
                    table.row([
                        service.clone(),
                        consumer.name.clone(),
                        consumer
                            .lag
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                        consumer
                            .dead_letters
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "-".into()),
                    ]);
                    rows.push(json!({
                        "service": service,
                        "consumer": consumer.name,
                        "lag": consumer.lag,
                        "deadLetters": consumer.dead_letters,
                    }));
                }
            }
            Err(Failure::Unreachable(why)) if !single => {
                eprintln!("keelctl: warning: {why}");
                unreachable.push(service);
            }
            Err(other) => return Err(other),
        }
    }
    if !unreachable.is_empty() {
        table.note(format!("not reached: {}", unreachable.join(", ")));
    }
    Ok(Report {
        table,
        json: json!({ "consumers": rows, "unreachable": unreachable }),
        unreachable,
    })
}

/// `4.2s`, `3m07s`, `2h05m`: the age of the oldest unpublished event.
fn age(seconds: f64) -> String {
    let whole = seconds.max(0.0) as u64;
    match whole {
        0..60 => format!("{seconds:.1}s"),
        60..3600 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

/// One consumer's series in a service's `/metrics`.
#[derive(Debug, PartialEq)]
struct ConsumerSeries {
    name: String,
    lag: Option<i64>,
    dead_letters: Option<i64>,
}

/// The consumers named in Prometheus text, with their `keel_consumer_lag` and
/// `keel_dead_letters` values, in the order first seen.
fn consumers(text: &str) -> Vec<ConsumerSeries> {
    let mut found: Vec<ConsumerSeries> = Vec::new();
    for line in text.lines() {
        let (metric, rest) = match line.split_once('{') {
            Some(split) => split,
            None => continue,
        };
        let is_lag = metric == "keel_consumer_lag";
        if !is_lag && metric != "keel_dead_letters" {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(name) = label(labels, "consumer") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let index = match found.iter().position(|c| c.name == name) {
            Some(index) => index,
            None => {
                found.push(ConsumerSeries {
                    name,
                    lag: None,
                    dead_letters: None,
                });
                found.len() - 1
            }
        };
        let slot = &mut found[index];
        if is_lag {
            slot.lag = Some(value as i64);
        } else {
            slot.dead_letters = Some(value as i64);
        }
    }
    found
}

/// The value of `name` in a label set such as `service="billing",consumer="billing-x"`.
fn label(labels: &str, name: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"').to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_series_are_read_from_prometheus_text() {
        let text = "\
# HELP keel_consumer_lag Events not yet processed.
# TYPE keel_consumer_lag gauge
keel_consumer_lag{service=\"billing\",consumer=\"billing-from-tenancy\"} 3
keel_outbox_backlog{service=\"billing\"} 7
keel_dead_letters{service=\"billing\",consumer=\"billing-from-tenancy\"} 1
keel_dead_letters{service=\"billing\",consumer=\"billing-from-marketplace\"} 0
";
        assert_eq!(
            consumers(text),
            vec![
                ConsumerSeries {
                    name: "billing-from-tenancy".into(),
                    lag: Some(3),
                    dead_letters: Some(1)
                },
                ConsumerSeries {
                    name: "billing-from-marketplace".into(),
                    lag: None,
                    dead_letters: Some(0)
                },
            ]
        );
    }

    #[test]
    fn ages_read_at_a_glance() {
        assert_eq!(age(4.31), "4.3s");
        assert_eq!(age(187.0), "3m07s");
        assert_eq!(age(7500.0), "2h05m");
    }
}
