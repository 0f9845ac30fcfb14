//! The `instabrand` binary: parses the command line and hands over to the library.

/// See the note on `mimalloc` in Cargo.toml: memory comes back after a wave of
/// connections leaves.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    instabrand_server::cli::main()
}
