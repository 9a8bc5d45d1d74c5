//! `keelctl admins`: platform admins.
//!
//! Identity has no stored platform role: a user is a platform admin when their *verified* email
//! is in `app.platform_admins` of identity's config (see identity's `grpc/sessions.rs`), and
//! their next login or refresh carries the platform rights. So making an admin is a config change
//! plus an identity rollout; `admins create` prints it, or with `--write` makes it in the file.

use std::path::Path;

use serde_json::json;

use crate::cli::{AdminsCommand, Global};
use crate::error::{Failure, Outcome};
use crate::output::{Report, Table};

pub fn run(_global: &Global, command: AdminsCommand) -> Outcome<Report> {
    match command {
        AdminsCommand::List { identity_config } => {
            let admins = current(&read(&identity_config)?, &identity_config)?;
            let mut table = Table::new(["EMAIL"]).when_empty("no platform admins configured");
            for admin in &admins {
                table.row([admin.clone()]);
            }
            Ok(Report {
                table,
                json: json!({ "platformAdmins": admins }),
                unreachable: Vec::new(),
            })
        }
        AdminsCommand::Create {
            email,
            identity_config,
            write,
        } => create(&email, &identity_config, write),
    }
}

fn read(path: &Path) -> Outcome<String> {
    std::fs::read_to_string(path)
        .map_err(|err| Failure::failed(format!("cannot read {}: {err}", path.display())))
}

/// `app.platform_admins` of the config text.
fn current(text: &str, path: &Path) -> Outcome<Vec<String>> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text)
        .map_err(|err| Failure::failed(format!("{}: {err}", path.display())))?;
    Ok(doc["app"]["platform_admins"]
        .as_sequence()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

/// The same rough shape identity accepts: one `@`, a dotted domain, no spaces.
fn check_email(email: &str) -> Outcome<String> {
    let email = email.trim();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    };
    if valid {
        Ok(email.to_owned())
    } else {
        Err(Failure::failed(format!(
            "`{email}` is not an email address"
        )))
    }
}

fn create(email: &str, path: &Path, write: bool) -> Outcome<Report> {
    let email = check_email(email)?;
    let text = read(path)?;
    let mut admins = current(&text, path)?;
    let already = admins.iter().any(|a| a.eq_ignore_ascii_case(&email));
    if !already {
        admins.push(email.clone());
    }
    let flow = format!(
        "platform_admins: [{}]",
        admins
            .iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let written = if write && !already {
        let updated = rewrite(&text, &flow).ok_or_else(|| {
            Failure::failed(format!(
                "{}: no single `platform_admins:` line under `app:` to rewrite; set it by hand to\n  {flow}",
                path.display()
            ))
        })?;
        // The result must still be the config it was, plus the admin.
        if current(&updated, path)? != admins {
            return Err(Failure::failed(format!(
                "{}: rewriting `platform_admins` did not give the expected list; set it by hand to\n  {flow}",
                path.display()
            )));
        }
        std::fs::write(path, updated)
            .map_err(|err| Failure::failed(format!("cannot write {}: {err}", path.display())))?;
        true
    } else {
        false
    };
    let mut lines = Vec::new();
    if already {
        lines.push(format!(
            "{email} is already a platform admin in {}",
            path.display()
        ));
    } else if written {
        lines.push(format!("{}: app.{flow}", path.display()));
    } else {
        lines.push(format!("set in {} (under app:):", path.display()));
        lines.push(format!("  {flow}"));
    }
    let next = [
        "roll out identity with this config (it reads platform_admins at start);",
        "the user registers with this address, if not yet, and verifies it (an unverified address never counts);",
        "their next login (`keelctl login --email ...`) returns a token with the platform rights.",
    ];
    if !already {
        lines.push("then:".into());
        lines.extend(next.iter().map(|line| format!("  - {line}")));
    }
    Ok(Report {
        table: Table::lines(lines),
        json: json!({
            "email": email,
            "alreadyAdmin": already,
            "written": written,
            "platformAdmins": admins,
            "config": format!("app.{flow}"),
            "next": if already { Vec::new() } else { next.to_vec() },
        }),
        unreachable: Vec::new(),
    })
}

/// Replace the one `platform_admins:` line (a flow list, `[]` or `[a, b]`) with `flow`, keeping
/// its indentation and everything else in the file. None when there is not exactly one such line
/// or it is a block list.
fn rewrite(text: &str, flow: &str) -> Option<String> {
    let matching: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with("platform_admins:"))
        .map(|(i, _)| i)
        .collect();
    let [index] = matching.as_slice() else {
        return None;
    };
    let mut out = String::with_capacity(text.len() + flow.len());
    for (i, line) in text.lines().enumerate() {
        if i == *index {
            let value = line
                .trim_start()
                .trim_start_matches("platform_admins:")
                .trim();
            if !value.starts_with('[') {
                return None;
            }
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(indent);
            out.push_str(flow);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str =
        "service: identity\napp:\n  signing:\n    active_kid: a\n  platform_admins: []\n";

    #[test]
    fn an_admin_is_added_to_the_flow_list_in_place() {
        let updated = rewrite(CONFIG, "platform_admins: [\"ops@example.com\"]").expect("rewritten");
        assert_eq!(
            current(&updated, Path::new("x")).expect("parses"),
            vec!["ops@example.com".to_owned()]
        );
        assert!(updated.contains("  platform_admins: [\"ops@example.com\"]\n"));
        assert!(updated.starts_with("service: identity\napp:\n  signing:\n"));
    }

    #[test]
    fn a_block_list_is_left_for_a_person() {
        let block = "app:\n  platform_admins:\n    - a@example.com\n";
        assert!(rewrite(block, "platform_admins: [\"b@example.com\"]").is_none());
    }

    #[test]
    fn a_bad_email_is_refused() {
        for bad in [
            "",
            "ops",
            "ops@",
            "@example.com",
            "ops@example",
            "o ps@example.com",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
        assert!(check_email("ops@example.com").is_ok());
    }
}
