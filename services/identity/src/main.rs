//! The identity service (not built yet: its contract lives in proto/).
#![forbid(unsafe_code)]

fn main() {}
