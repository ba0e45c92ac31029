//! The binary: parses the command line, then serves, runs a report command
//! (`check`, `routes`) or a storage command (`storage dump|restore`).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use aiwebengine::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(_) => run_server(cli),
        Command::Storage(command) => aiwebengine::storage::backup::run(command),
        report => match run_report(&report) {
            Ok(code) => std::process::exit(code),
            Err(e) => Err(e),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and why (locked or corrupt database, bad flag...).
            eprintln!("aiwebengine: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(cli: Cli) -> Result<()> {
    let Command::Serve(args) = &cli.command else {
        return Ok(());
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers())
        .thread_name("http")
        .enable_all()
        .build()
        .context("starting the tokio runtime")?
        .block_on(serve(cli))
}

/// Runs `check` or `routes` and returns the exit status.
fn run_report(command: &Command) -> Result<i32> {
    aiwebengine::logging::init_for_reports();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut out = std::io::stdout().lock();
    runtime.block_on(async {
        match command {
            Command::Check(args) => aiwebengine::check::run(args, &mut out).await,
            Command::Routes(args) => aiwebengine::route_list::run(args, &mut out).await,
            Command::Serve(_) | Command::Storage(_) => bail!("not a report command"),
        }
    })
}

async fn serve(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => {
            aiwebengine::logging::init(args.log_format);
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            aiwebengine::run(listener, args.settings(), shutdown_signal()).await
        }
        Command::Check(_) | Command::Routes(_) | Command::Storage(_) => Ok(()),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}
