//! `skerry`: the cloud server and the operator's client.

fn main() -> std::process::ExitCode {
    skerry_cloud::cli::main()
}
