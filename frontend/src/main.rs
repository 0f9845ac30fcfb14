//! The Instabrand dashboard (placeholder until the dashboard lands).
fn main() {}
