//! The `instabrand` binary: parses the command line and hands over to the library.

fn main() -> anyhow::Result<()> {
    instabrand_server::cli::main()
}
