//! The `instabrand` binary: parses the command line and hands over to the library.

/// Records cross threads (read by a source, applied by the pipeline, written by the
/// archive, freed there); mimalloc's per-thread heaps take cross-thread frees without
/// the lock and consolidation passes that cost glibc's malloc a third of the pipeline
/// thread's time under Kafka.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    instabrand_server::cli::main()
}
