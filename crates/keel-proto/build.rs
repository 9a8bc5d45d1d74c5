//! Compiles every `.proto` under the workspace's `proto/` with protox (a pure-Rust protobuf
//! compiler, so no system `protoc`), generates prost messages and tonic stubs, and writes the
//! encoded `FileDescriptorSet` for gRPC reflection, the edge gateway's transcoder and the
//! contracts (`keel.v1.access`) the kernel's auth layer and the gateway read.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read when the script runs, not baked in when it is compiled: worktrees sharing one target
    // dir share this script's binary, and each must compile its own `proto/`.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut files = Vec::new();
    collect_protos(&proto_root, &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([&proto_root])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    // Encoded from protox's own pool: re-encoding through `prost_types` would drop extension
    // options, and with them the `google.api.http` rules the gateway transcodes by and the
    // `keel.v1.access` contracts.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;
    let descriptors = compiler.file_descriptor_set();

    // Type names let events be packed into `google.protobuf.Any` by their full proto name.
    let mut prost_config = prost_build::Config::new();
    prost_config.enable_type_names();

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        // One generated file that nests every package as a module (`identity::v1`, ...), so a new
        // package needs no change here.
        .include_file("packages.rs")
        .compile_fds_with_config(descriptors, prost_config)?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
