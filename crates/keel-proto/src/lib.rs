//! Generated protobuf messages and tonic stubs for every package in `proto/`, plus the encoded
//! descriptor set (for reflection and REST transcoding).
#![forbid(unsafe_code)]
#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/packages.rs"));

/// The encoded `google.protobuf.FileDescriptorSet` of every file in `proto/`, including imports of
/// well-known types, with custom options kept (`google.api.http`, `keel.v1.access`). Feed it to
/// `tonic-reflection`, the gateway's transcoder and `keel_kernel::contract`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/descriptor_set.bin"));
