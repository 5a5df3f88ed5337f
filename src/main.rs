fn main() -> std::process::ExitCode {
    wandash::cli::main()
}
