//! The run's figures as a Markdown section, written into BENCHMARKS.md between markers so a
//! re-run replaces its own section and leaves the others alone.

use std::fmt::Write as _;

use crate::ledger::{LoadFigures, TenantCheck};

/// The verification totals over every tenant.
#[derive(Debug, Default, Clone)]
pub struct Verification {
    pub tenants: u64,
    pub acknowledged: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub billed_excess_tokens: i64,
    pub billed_missing_tokens: i64,
    /// Tenants whose data could not be read back within the settle time.
    pub unverifiable: u64,
}

impl Verification {
    pub fn add(&mut self, check: &TenantCheck) {
        self.tenants += 1;
        self.acknowledged += check.acknowledged;
        self.lost += check.lost;
        self.duplicated += check.duplicated;
        // Billing behind or ahead of the log after the settle time: an effect lost or doubled.
        if check.billed_excess > 0 {
            self.duplicated += 1;
        }
        if check.billed_missing > 0 {
            self.lost += 1;
        }
        self.billed_excess_tokens += check.billed_excess;
        self.billed_missing_tokens += check.billed_missing;
    }
}

pub fn render(
    command: &str,
    load: &LoadFigures,
    verification: Option<&Verification>,
    cross_tenant_reads: u64,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: {command}\n");
    let _ = writeln!(out, "| figure | value |\n|---|---|");
    let _ = writeln!(out, "| requests | {} |", load.requests);
    let _ = writeln!(
        out,
        "| throughput | {:.0} req/s over {:.1} s |",
        load.throughput, load.seconds
    );
    let _ = writeln!(
        out,
        "| latency p50 / p95 / p99 / max | {:.1} / {:.1} / {:.1} / {:.1} ms |",
        load.p50_ms, load.p95_ms, load.p99_ms, load.max_ms
    );
    let statuses: Vec<String> = load
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    let _ = writeln!(
        out,
        "| answers by status | {} (599 = no answer) |",
        statuses.join(", ")
    );
    let _ = writeln!(out, "| non-2xx answers | {} |", load.errors);
    let _ = writeln!(
        out,
        "| acknowledged writes | {} |",
        load.acknowledged_writes
    );
    if let Some(v) = verification {
        let _ = writeln!(
            out,
            "| completions verified (usage log + billing) | {} over {} tenants |",
            v.acknowledged, v.tenants
        );
        let _ = writeln!(out, "| lost | {} |", v.lost);
        let _ = writeln!(out, "| duplicated effects | {} |", v.duplicated);
        let _ = writeln!(
            out,
            "| billing vs AI usage log (tokens over / under) | {} / {} |",
            v.billed_excess_tokens, v.billed_missing_tokens
        );
        if v.unverifiable > 0 {
            let _ = writeln!(
                out,
                "| tenants not verifiable in time | {} |",
                v.unverifiable
            );
        }
    }
    let _ = writeln!(out, "| cross-tenant reads | {cross_tenant_reads} |");
    out
}

/// Put `body` under `## <section>` between `<!-- keel-load:<section> -->` markers in `path`,
/// replacing an earlier run's section of the same name.
pub fn write_section(path: &str, section: &str, body: &str) -> anyhow::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let begin = format!("<!-- keel-load:{section} -->");
    let end = format!("<!-- /keel-load:{section} -->");
    let block = format!("{begin}\n## {section}\n\n{body}\n{end}");
    let updated = match (existing.find(&begin), existing.find(&end)) {
        (Some(start), Some(stop)) if stop > start => format!(
            "{}{block}{}",
            &existing[..start],
            &existing[stop + end.len()..]
        ),
        _ => format!("{}\n\n{block}\n", existing.trim_end()),
    };
    std::fs::write(path, updated)?;
    Ok(())
}
