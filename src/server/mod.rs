//! `smhfs serve`: an SMH-compatible server on local disk.

/// Arguments of `smhfs serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs) -> anyhow::Result<()> {
    todo!()
}
