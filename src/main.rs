use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "smhfs",
    version,
    about = "Mount a Tencent Cloud SMH media library, or serve one from local disk"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an SMH-compatible server on local disk.
    Serve(smhfs::server::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => smhfs::server::run(args),
    }
}
