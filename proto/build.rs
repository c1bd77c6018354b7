//! Compiles `protos/*.proto` with protox (pure Rust), so no `protoc` binary is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "protos/waku.proto",
        "protos/gossipsub.proto",
        "protos/mvds.proto",
        "protos/secure.proto",
        "protos/status.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["protos"])?;
    let mut config = prost_build::Config::new();
    // Maps iterate in key order, so encodings are deterministic.
    config.btree_map(["."]);
    // Fuzzers and property tests build arbitrary values of every wire type.
    config.type_attribute(
        ".",
        "#[cfg_attr(any(test, feature = \"arbitrary\"), derive(arbitrary::Arbitrary))]",
    );
    config.compile_fds(descriptors)?;
    Ok(())
}
