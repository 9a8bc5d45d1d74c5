//! What the generator saw: every answer's status and latency, and every write the mesh
//! acknowledged, kept to be checked against the mesh afterwards.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A tenant of the run and the tenant-scoped token of its owner.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub token: String,
}

#[derive(Default)]
pub struct Ledger {
    latencies_us: Mutex<Vec<u32>>,
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// Per tenant: acknowledged completions (id, total tokens).
    completions: Mutex<HashMap<String, Vec<(String, i64)>>>,
    invitations: AtomicU64,
    acknowledged: AtomicU64,
    cross_tenant: AtomicU64,
}

/// Figures of the load phase.
#[derive(Debug, Clone)]
pub struct LoadFigures {
    pub requests: u64,
    pub acknowledged_writes: u64,
    pub errors: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub seconds: f64,
}

impl Ledger {
    pub fn observe(&self, status: u16, latency: Duration) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(micros);
        *self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }

    /// Forget the set-up phase's answers: the figures are the load phase's.
    pub fn reset_latencies(&self) {
        self.latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    pub fn completion(&self, tenant: &str, id: &str, tokens: i64) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        self.completions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_owned())
            .or_default()
            .push((id.to_owned(), tokens));
    }

    pub fn invitation(&self, _tenant: &str, _id: &str) {
        self.acknowledged.fetch_add(1, Ordering::Relaxed);
        self.invitations.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cross_tenant_read(&self) {
        self.cross_tenant.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cross_tenant_reads(&self) -> u64 {
        self.cross_tenant.load(Ordering::Relaxed)
    }

    pub fn completions_of(&self, tenant: &str) -> Vec<(String, i64)> {
        self.completions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    pub fn load_figures(&self, elapsed: Duration) -> LoadFigures {
        let mut latencies = self
            .latencies_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        latencies.sort_unstable();
        let statuses = self
            .statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let percentile = |p: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * latencies.len() as f64).ceil() as usize;
            f64::from(latencies[rank.clamp(1, latencies.len()) - 1]) / 1000.0
        };
        let requests = latencies.len() as u64;
        let errors = statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(_, count)| count)
            .sum();
        LoadFigures {
            requests,
            acknowledged_writes: self.acknowledged.load(Ordering::Relaxed),
            errors,
            statuses,
            throughput: requests as f64 / elapsed.as_secs_f64().max(0.001),
            p50_ms: percentile(50.0),
            p95_ms: percentile(95.0),
            p99_ms: percentile(99.0),
            max_ms: percentile(100.0),
            seconds: elapsed.as_secs_f64(),
        }
    }
}

/// One tenant's acknowledged completions against its AI usage log and billing's count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TenantCheck {
    /// Acknowledged completions missing from the usage log.
    pub lost: u64,
    /// Usage-log records present more than once for one acknowledged completion.
    pub duplicated: u64,
    /// Tokens billing counted beyond the usage log (a doubled event) or short of it (one not yet
    /// or never applied).
    pub billed_excess: i64,
    pub billed_missing: i64,
    pub acknowledged: u64,
}

impl TenantCheck {
    /// Nothing is outstanding: every acknowledged write is there once and billing agrees.
    pub fn settled(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.billed_excess == 0
            && self.billed_missing == 0
    }
}

/// Compare what was acknowledged with what the mesh holds. Acknowledged completions are
/// deduplicated by id first: a retried request with the same idempotency key may be answered
/// twice with the same completion, which is one write.
pub fn compare(acknowledged: &[(String, i64)], log: &[(String, i64)], billed: i64) -> TenantCheck {
    let mut in_log: HashMap<&str, u64> = HashMap::new();
    for (id, _) in log {
        *in_log.entry(id.as_str()).or_default() += 1;
    }
    let mut check = TenantCheck::default();
    let mut seen = std::collections::HashSet::new();
    for (id, _) in acknowledged {
        if !seen.insert(id.as_str()) {
            continue;
        }
        check.acknowledged += 1;
        match in_log.get(id.as_str()) {
            None => check.lost += 1,
            Some(&n) if n > 1 => check.duplicated += n - 1,
            Some(_) => {}
        }
    }
    let logged: i64 = log.iter().map(|(_, tokens)| tokens).sum();
    check.billed_excess = (billed - logged).max(0);
    check.billed_missing = (logged - billed).max(0);
    check
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(items: &[(&str, i64)]) -> Vec<(String, i64)> {
        items.iter().map(|(id, t)| ((*id).to_owned(), *t)).collect()
    }

    #[test]
    fn a_clean_run_is_settled() {
        let acknowledged = rows(&[("a", 10), ("b", 5)]);
        let check = compare(&acknowledged, &acknowledged, 15);
        assert!(check.settled(), "{check:?}");
        assert_eq!(check.acknowledged, 2);
    }

    #[test]
    fn a_missing_record_is_lost_and_a_doubled_one_duplicated() {
        let acknowledged = rows(&[("a", 10), ("b", 5)]);
        let log = rows(&[("a", 10), ("a", 10)]);
        let check = compare(&acknowledged, &log, 20);
        assert_eq!(check.lost, 1);
        assert_eq!(check.duplicated, 1);
        assert!(!check.settled());
    }

    #[test]
    fn billing_ahead_of_the_log_is_a_doubled_effect_and_behind_it_a_missing_one() {
        let acknowledged = rows(&[("a", 10)]);
        assert_eq!(compare(&acknowledged, &acknowledged, 20).billed_excess, 10);
        assert_eq!(compare(&acknowledged, &acknowledged, 4).billed_missing, 6);
    }

    #[test]
    fn the_same_completion_acknowledged_twice_by_a_retry_is_one_write() {
        let acknowledged = rows(&[("a", 10), ("a", 10)]);
        let log = rows(&[("a", 10)]);
        let check = compare(&acknowledged, &log, 10);
        assert!(check.settled(), "{check:?}");
        assert_eq!(check.acknowledged, 1);
    }

    #[test]
    fn percentiles_come_from_the_observed_latencies() {
        let ledger = Ledger::default();
        for ms in 1..=100 {
            ledger.observe(200, Duration::from_millis(ms));
        }
        ledger.observe(503, Duration::from_millis(1));
        let figures = ledger.load_figures(Duration::from_secs(1));
        assert_eq!(figures.requests, 101);
        assert_eq!(figures.errors, 1);
        assert!((figures.p50_ms - 50.0).abs() < 1.01, "{figures:?}");
        assert!((figures.p99_ms - 99.0).abs() < 1.01, "{figures:?}");
    }
}
