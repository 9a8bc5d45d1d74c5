//! `keelctl`: what the platform team does by hand, over the services' gRPC APIs (with a platform
//! admin's token) and their admin HTTP ports. Tables for people, `--json` for scripts.
//!
//! Exit status: 0 done; 1 failed; 2 bad usage or a rejected config; 3 the token was refused;
//! 4 a service could not be reached.
#![forbid(unsafe_code)]

mod admin_http;
mod admins;
mod cli;
mod dead_letters;
mod error;
mod grpc;
mod keys;
mod login;
mod ops;
mod output;
mod tenants;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.global.json;
    match run(cli).await {
        Ok(report) => {
            report.print(json);
            if report.unreachable.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "keelctl: incomplete: not reached: {}",
                    report.unreachable.join(", ")
                );
                ExitCode::from(error::EXIT_UNREACHABLE)
            }
        }
        Err(failure) => {
            eprintln!("keelctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(cli: Cli) -> error::Outcome<output::Report> {
    let global = &cli.global;
    match cli.command {
        Command::Login(args) => login::run(global, args).await,
        Command::Tenants(command) => tenants::run(global, command).await,
        Command::DeadLetters(command) => dead_letters::run(global, command).await,
        Command::Outbox(command) => ops::outbox(global, command).await,
        Command::Lag(args) => ops::lag(global, args).await,
        Command::Keys(command) => keys::run(global, command).await,
        Command::Admins(command) => admins::run(global, command),
    }
}
