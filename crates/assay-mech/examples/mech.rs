//! Stand-alone `mech` command: the same subcommands `assay mech ...` mounts, for use and
//! testing without the main binary.
//!
//! `cargo run -p assay-mech --example mech -- probe --model M --data D.jsonl --out DIR`

use clap::Parser;

/// Mechanistic evidence on open-weight models.
#[derive(Parser)]
#[command(name = "mech")]
struct Cli {
    #[command(subcommand)]
    cmd: assay_mech::cli::MechCommand,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Recorded as the equivalent `assay mech ...` command line.
    let argv: Vec<String> = ["assay".to_string(), "mech".to_string()]
        .into_iter()
        .chain(
            std::env::args_os()
                .skip(1)
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    let code = assay_mech::cli::run(cli.cmd, &argv)?;
    std::process::exit(code)
}
