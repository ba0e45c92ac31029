use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use aiwebengine::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(_) => run_server(cli),
        Command::Storage(command) => aiwebengine::storage::backup::run(command),
        tool => match aiwebengine::check::main(&tool) {
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
