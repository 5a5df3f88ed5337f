use clap::{Parser, Subcommand};
use wandash::simulator;

#[derive(Parser)]
#[command(
    name = "wandash",
    version,
    about = "A terminal dashboard and durable job engine for DashScope image generation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the loopback DashScope simulator.
    Sim(simulator::SimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("wandash: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Sim(args) => runtime.block_on(simulator::run_cli(args)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wandash: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
