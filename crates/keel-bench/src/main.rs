//! `make bench`: measures the platform's hot paths on this machine, against the same real Postgres
//! and NATS JetStream the tests use, and writes the figures to BENCHMARKS.md.
//!
//! Usage: `keel-bench [--write BENCHMARKS.md] [--quick] [--only gateway]`
#![forbid(unsafe_code)]

mod ai;
mod billing;
mod delivery;
mod events;
mod gateway;
mod identity;
mod marketplace;
mod report;

use report::Report;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(path) = std::env::var_os(gateway::SERVE_GATEWAY) {
        return gateway::serve_child(path.into()).await;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only gateway`: one section (a release build of everything else is not needed to rerun it).
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    if only.as_deref() == Some("gateway") {
        let mut report = Report::new();
        gateway::direct_vs_gateway(
            &mut report,
            if quick { 200 } else { 2_000 },
            if quick { 50 } else { 400 },
        )
        .await?;
        println!("{}", report.markdown());
        return Ok(());
    }
    let output = args
        .iter()
        .position(|a| a == "--write")
        .and_then(|i| args.get(i + 1))
        .cloned();

    let mut report = Report::new();
    events::relay_throughput(&mut report, if quick { 2_000 } else { 20_000 }).await?;
    events::commit_to_effect_latency(&mut report, if quick { 100 } else { 1_000 }).await?;
    gateway::direct_vs_gateway(
        &mut report,
        if quick { 200 } else { 2_000 },
        if quick { 50 } else { 400 },
    )
    .await?;
    ai::gateway_overhead(
        &mut report,
        if quick { 200 } else { 2_000 },
        if quick { 10 } else { 100 },
        if quick { 100 } else { 1_000 },
    )
    .await?;
    billing::usage_and_period_close(
        &mut report,
        if quick { 2_000 } else { 20_000 },
        if quick { 100 } else { 1_000 },
    )
    .await?;
    identity::login_and_verification(
        &mut report,
        if quick { 10 } else { 100 },
        if quick { 1_000 } else { 20_000 },
    )
    .await?;
    marketplace::orders_hot_vs_spread(&mut report, if quick { 50 } else { 500 }).await?;

    delivery::transitions_and_watch_latency(
        &mut report,
        if quick { 10 } else { 100 },
        if quick { 50 } else { 500 },
    )
    .await?;

    let markdown = report.markdown();
    println!("{markdown}");
    if let Some(path) = output {
        std::fs::write(&path, markdown)?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
