//! A dynamic-backends run-fit links llama.cpp's shared libraries (libllama.so.0, libggml-base.so.0 …),
//! which llama-cpp-sys-2 leaves in its build folder without telling the binary where. Look beside the
//! binary first (a folder copied whole, as the GPU kit's), then in that build folder, so that
//! `target-gpu/release/run-fit` runs as it is. The static CPU build links nothing at run time.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DYNAMIC_BACKENDS").is_none() {
        return;
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN");
    // llama-cpp-sys-2 (links = "llama") names its backends folder; its libraries are in ../lib.
    if let Some(backends) = std::env::var_os("DEP_LLAMA_BACKENDS_DIR") {
        let lib = std::path::Path::new(&backends).with_file_name("lib");
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,{}", lib.display());
    }
}
