//! Generates a Rust client for the Campus API from the committed spec
//! (`openapi/openapi.json`) with progenitor, into `$OUT_DIR/campus_client.rs`, which
//! `src/generated.rs` includes. The spec is taken as it is: a client that does not
//! generate, or does not compile, means the spec changed in a way clients would notice.

use std::path::Path;

fn main() {
    let spec_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    println!("cargo:rerun-if-changed={}", spec_path.display());
    let text = std::fs::read_to_string(&spec_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", spec_path.display()));
    let spec: openapiv3::OpenAPI = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "{} is not an OpenAPI 3.0 document: {e}",
            spec_path.display()
        )
    });

    // Builder style (`client.list_tasks().status(..).send()`): a call names only the
    // parameters it sets, so parameters the spec gains later break no call.
    let mut settings = progenitor::GenerationSettings::default();
    settings
        .with_interface(progenitor::InterfaceStyle::Builder)
        .with_tag(progenitor::TagStyle::Merged);
    let tokens = progenitor::Generator::new(&settings)
        .generate_tokens(&spec)
        .unwrap_or_else(|e| panic!("progenitor cannot generate a client from the spec: {e}"));
    let file: syn::File = syn::parse2(tokens).expect("progenitor's output parses as Rust");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("campus_client.rs");
    std::fs::write(&out, prettyplease::unparse(&file))
        .unwrap_or_else(|e| panic!("write {}: {e}", out.display()));
}
