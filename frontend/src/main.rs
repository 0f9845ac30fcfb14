//! Entry point of the dashboard's wasm binary: installs the panic hook and the console
//! tracing subscriber, then mounts the app. On the host it does nothing, so the
//! workspace still builds and the pure modules' tests run without a browser.

#[cfg(target_arch = "wasm32")]
fn main() {
    console_error_panic_hook::set_once();
    tracing_wasm::set_as_global_default_with_config(
        tracing_wasm::WASMLayerConfigBuilder::new()
            .set_max_level(tracing::Level::INFO)
            .build(),
    );
    instabrand_frontend::app::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "the Instabrand dashboard runs in a browser: build it with scripts/build-frontend.sh"
    );
}
