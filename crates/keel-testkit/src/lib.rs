//! Test kit.
#![forbid(unsafe_code)]
