//! The ai-gateway's API tests: one binary, one module per concern. Each test starts the real
//! service on port 0 against its own database and NATS, with fake LLM providers of its own.

mod completions;
mod faults;
mod guardrails;
mod lifecycle;
mod memory;
mod quota;
mod routing;
mod support;
mod usage;
