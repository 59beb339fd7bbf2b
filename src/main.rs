//! The `causerie` command (see `causerie --help`).

#[tokio::main]
async fn main() {
    std::process::exit(causerie::cli::main().await);
}
